"""Construction and act(), on every environment whose spaces the algorithm declares."""

from __future__ import annotations

import numpy as np
from polyrl import AgentSpec
from polyrl.backend import EffectiveHyperparameters
from polyrl.envs import space_kind

from polyrl_conformance.cases import make_env
from polyrl_conformance.scenario import EnvScenario, actions_equal


def test_construct(env_scenario: EnvScenario) -> None:
    """The suite's spec validates and survives a JSON round trip, and Agent(spec) builds an untrained
    agent whose spec and spaces are the given ones, with env_steps and iterations at 0 and
    effective_hyperparameters() answering."""
    spec = env_scenario.spec
    assert AgentSpec.model_validate_json(spec.model_dump_json()) == spec
    agent = env_scenario.agent()
    assert agent.spec == spec
    env = make_env(env_scenario.case.env)
    try:
        assert agent.observation_space == env.observation_space
        assert agent.action_space == env.action_space
    finally:
        env.close()
    assert (agent.env_steps, agent.iterations, agent.episodes) == (0, 0, 0)
    effective = agent.effective_hyperparameters()
    assert isinstance(effective, EffectiveHyperparameters)
    assert effective.n_envs == spec.n_envs
    assert effective.iteration_steps > 0


def test_act_in_space(env_scenario: EnvScenario) -> None:
    """act() returns actions inside the env's action space, for single observations and for a batch,
    deterministic and stochastic; a batch of N observations gives N actions."""
    agent = env_scenario.agent()
    singles, batch = env_scenario.observations()
    space = agent.action_space
    for deterministic in (True, False):
        for index, observation in enumerate(singles):
            action = agent.act(observation, deterministic=deterministic)
            assert space.contains(action), (
                f"act(observation #{index}, deterministic={deterministic}) returned {action!r}, "
                f"which is not in {space}"
            )
        actions = agent.act(batch, deterministic=deterministic)
        assert len(actions) == len(singles), (
            f"a batch of {len(singles)} observations gave {len(actions)} actions "
            f"(deterministic={deterministic})"
        )
        outside = [(i, a) for i, a in enumerate(actions) if not space.contains(a)]
        assert not outside, f"batch actions outside {space} (deterministic={deterministic}): {outside[:3]}"


def test_act_shape_dtype(env_scenario: EnvScenario) -> None:
    """A single Discrete action is a Python int; a single Box action an array of the space's shape and
    dtype; a batch of N is an array of shape (N,) for Discrete or (N, *shape) for Box, of the
    space's dtype."""
    agent = env_scenario.agent()
    singles, batch = env_scenario.observations()
    space = agent.action_space
    kind = space_kind(space)
    single = agent.act(singles[0])
    actions = agent.act(batch)
    assert isinstance(actions, np.ndarray), f"a batch gave {type(actions).__name__}, not numpy.ndarray"
    if kind == "discrete":
        assert isinstance(single, int) and not isinstance(single, bool), (
            f"a single Discrete action is {type(single).__name__}, not int"
        )
        assert actions.shape == (len(singles),)
    else:
        assert isinstance(single, np.ndarray), f"a single {kind} action is {type(single).__name__}"
        assert single.shape == space.shape and single.dtype == space.dtype, (
            f"single action shape/dtype {single.shape}/{single.dtype}, space {space.shape}/{space.dtype}"
        )
        assert actions.shape == (len(singles), *space.shape)
    assert actions.dtype == space.dtype, f"batch dtype {actions.dtype}, space dtype {space.dtype}"


def test_act_deterministic(env_scenario: EnvScenario) -> None:
    """deterministic=True gives the same action twice for the same observation (a stochastic call in
    between changes nothing), and acting on one observation gives the same action as acting on
    it within a batch."""
    agent = env_scenario.agent()
    singles, batch = env_scenario.observations()
    first = agent.act(batch, deterministic=True)
    agent.act(batch, deterministic=False)
    second = agent.act(batch, deterministic=True)
    assert actions_equal(first, second), f"deterministic batch actions changed: {first!r} then {second!r}"
    for index, observation in enumerate(singles):
        once = agent.act(observation, deterministic=True)
        again = agent.act(observation, deterministic=True)
        assert actions_equal(once, again), f"observation #{index}: {once!r} then {again!r}"
        assert actions_equal(once, first[index], atol=1e-5), (
            f"observation #{index}: alone {once!r}, in a batch {first[index]!r}"
        )
