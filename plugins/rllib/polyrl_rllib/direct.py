"""RLlib called directly, for `polyrl bench`'s polyrl-vs-direct time ratio.

Imports ray and torch only inside the hook, so registering it from the plugin's `__init__`
keeps `import polyrl_rllib` light.
"""

from __future__ import annotations

import math
import time
import uuid

from polyrl import AgentSpec
from polyrl.backend import EnvSource, hookimpl
from polyrl.driverkit import apply_torch_threads


@hookimpl
def polyrl_direct_training(spec: AgentSpec, total_steps: int) -> float | None:
    """Seconds RLlib alone takes: `build_algo()` of the config polyrl maps, then `train()` to `total_steps`.

    The AlgorithmConfig is polyrl's mapping of the spec without polyrl's additions (its episode
    callback and env wrapper): what an RLlib user would write for the same settings. Ray must be
    up already (the first run of a process pays its start, on either side).
    """
    if spec.backend != "rllib":
        return None
    import gymnasium as gym
    from polyrl.driverkit import resolve_device
    from ray.tune.registry import register_env

    from polyrl_rllib import encoders, runtime
    from polyrl_rllib.params import build_config, iteration_steps, read_settings

    began = time.perf_counter()
    env = EnvSource.from_spec(spec, guard=False)  # the library alone: without polyrl's env guard
    settings = read_settings(spec)
    gym_id = env.gym_id
    # RLlib makes a plain id itself, when it would see what polyrl's env gives: no wrappers, no
    # encoding or normalisation, no image (those need the conversion RLlib's CNN takes).
    as_is = not (spec.env_kwargs or spec.wrappers or spec.normalize) and isinstance(
        env.raw_observation_space, gym.spaces.Box
    )
    if gym_id is not None and as_is and encoders.module_space(env.observation_space) is env.observation_space:
        plain, name = True, gym_id
    else:
        plain, name = False, f"polyrl-direct-{uuid.uuid4().hex[:8]}"
    config = build_config(spec, name, settings, env.observation_space, resolve_device(spec.device))
    apply_torch_threads(settings.torch_threads)
    runtime.ensure_ray(settings.address, settings.num_cpus, settings.ray_connect_timeout)
    if not plain:
        register_env(name, lambda _config: encoders.adapt_env(env.make()))
    algo = config.build_algo()
    try:
        for _ in range(math.ceil(total_steps / iteration_steps(config, spec.algorithm))):
            algo.train()
        return time.perf_counter() - began
    finally:
        algo.stop()
