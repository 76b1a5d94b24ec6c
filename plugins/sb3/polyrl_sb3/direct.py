"""Stable-Baselines3 called directly, for `polyrl bench`'s polyrl-vs-direct time ratio.

Imports stable_baselines3 and torch only inside the hook, so registering it from the plugin's
`__init__` keeps `import polyrl_sb3` light.
"""

from __future__ import annotations

import time

from polyrl import AgentSpec
from polyrl.backend import EnvSource, hookimpl


@hookimpl
def polyrl_direct_training(spec: AgentSpec, total_steps: int) -> float | None:
    """Seconds SB3 alone takes to build the model polyrl would build and run one learn() call."""
    if spec.backend != "sb3":
        return None
    from polyrl_sb3.driver import Sb3Driver
    from polyrl_sb3.params import algorithm_class, apply_torch_threads, sb3_kwargs

    began = time.perf_counter()
    env = EnvSource.from_spec(spec, guard=False)  # the library alone: without polyrl's env guard
    kwargs = sb3_kwargs(spec, env.action_space, env.observation_space)
    apply_torch_threads(spec)  # the same torch threads as the driver uses
    # The same constructor arguments, policy and vectorised env as the driver, then SB3's own
    # loop in one call: what a user of SB3 would write for this configuration.
    model = algorithm_class(spec.algorithm)(
        Sb3Driver._policy_name(env), Sb3Driver._vec_env(spec, env), **kwargs
    )
    model.learn(total_timesteps=total_steps, progress_bar=False)
    seconds = time.perf_counter() - began
    vec_env = model.get_env()
    if vec_env is not None:  # always: the model was built with one
        vec_env.close()
    return seconds
