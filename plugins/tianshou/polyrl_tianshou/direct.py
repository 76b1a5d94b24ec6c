"""Tianshou called directly, for `polyrl bench`'s polyrl-vs-direct time ratio.

Imports tianshou and torch only inside the hook, so registering it from the plugin's
`__init__` keeps `import polyrl_tianshou` light.
"""

from __future__ import annotations

import dataclasses
import math
import time

from polyrl import AgentSpec
from polyrl.backend import EnvSource, hookimpl


@hookimpl
def polyrl_direct_training(spec: AgentSpec, total_steps: int) -> float | None:
    """Seconds Tianshou's own trainer takes for the spec: build, then `run_training` to `total_steps`.

    The Tianshou objects (algorithm, vectorised env, collector, buffer, trainer parameters) are
    built by the same mapping the driver uses; the loop is Tianshou's `OnPolicyTrainer` /
    `OffPolicyTrainer` (after the `learning_starts` random steps an off-policy run collects
    first, as Tianshou's high-level API does), not polyrl's.
    """
    if spec.backend != "tianshou":
        return None
    from polyrl_tianshou.driver import TianshouDriver

    began = time.perf_counter()
    built = TianshouDriver.create(spec, EnvSource.from_spec(spec, guard=False))  # without polyrl's env guard
    try:
        s = built.settings
        steps = total_steps
        if not s.on_policy and s.learning_starts > 0:
            built.collector.collect(n_step=s.learning_starts, random=True)
            steps = max(total_steps - s.learning_starts, 1)
        params = dataclasses.replace(built.trainer_params, max_epochs=math.ceil(steps / s.iteration_steps))
        built.algorithm.run_training(params)
        return time.perf_counter() - began
    finally:
        built.close()
