"""Where the RLlib agent's networks live: the spec's `device`, in RLlib's resource settings.

RLlib places a Learner's RLModule on a GPU when the config gives Learners GPUs
(`AlgorithmConfig.learners(num_gpus_per_learner=...)`); the local Learner (num_learners 0, the
default) takes CUDA device `local_gpu_idx`, remote Learners the GPU Ray assigns them. Env
runners keep their (inference-only) module copies on the CPU. polyrl resolves the spec's
device first (`polyrl.driverkit.resolve_device`: "cuda" without a GPU is DeviceUnavailableError),
then maps it here; what the Learner really uses is read back by `module_device`.
"""

from __future__ import annotations

from typing import Any


def learner_resources(device: str) -> dict[str, Any]:
    """Keyword arguments of `AlgorithmConfig.learners()` that put the Learners on `device`.

    `device` is resolved: "cpu" (RLlib's default, no GPU) or "cuda"/"cuda:N" (one GPU per
    Learner; a local Learner uses CUDA device N).
    """
    if device == "cpu":
        return {"num_gpus_per_learner": 0}
    index = int(device.partition(":")[2] or 0)
    return {"num_gpus_per_learner": 1, "local_gpu_idx": index}


def module_device(module: Any) -> str:
    """The torch device of a module's parameters, as polyrl reports it ("cpu", "cuda:0")."""
    import torch

    parameter = next(iter(module.parameters()), None)
    if parameter is None:
        return "cpu"
    device = parameter.device
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def learner_device(learner: Any) -> str:
    """The device of a Learner's default-policy module (run on remote Learners by foreach_learner)."""
    from ray.rllib.core import DEFAULT_MODULE_ID

    return module_device(learner.module[DEFAULT_MODULE_ID])


def check_learner_gpus(config: Any) -> None:
    """DeviceUnavailableError when remote Learners want more GPUs than the Ray cluster has.

    A local Learner (num_learners 0) uses this process's GPU, which `resolve_device` checked;
    remote Learners are Ray actors that would wait forever for GPUs the cluster lacks.
    """
    wanted = int(config.num_learners) * float(config.num_gpus_per_learner or 0)
    if not wanted:
        return
    import ray

    available = float(ray.cluster_resources().get("GPU", 0))
    if wanted > available:
        from polyrl.errors import DeviceUnavailableError

        raise DeviceUnavailableError(
            f"{config.num_learners} Learner(s) on a GPU need {wanted:g} GPUs, but the Ray cluster has "
            f"{available:g}; Ray would wait forever. Use device='cpu', fewer num_learners, or a cluster "
            "with GPUs"
        )
