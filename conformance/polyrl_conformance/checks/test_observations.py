"""Observations of every kind, the spec's device, and normalisation, for every algorithm.

The core hands a driver Box observations only: a vector (Discrete, Dict... encoded into one) or
an image (a rank-3 Box). These checks run the suite's own env as an image, a Discrete grid cell
and a Dict; each is proven by a planted bug that fails it (tests/test_conformance_planted.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polyrl
import pytest
from gymnasium import spaces
from polyrl.manifest import NATIVE_DIR
from polyrl.observations.network import resolve_network
from polyrl.observations.normalize import NORMALIZATION_FILE

from polyrl_conformance.observations import (
    IMAGE_CONV,
    UNAVAILABLE_DEVICE,
    ObservationRuns,
    act_in_space,
    normalized_run,
    raw_observations,
    train_one,
)
from polyrl_conformance.scenario import AlgorithmScenario, actions_equal, spy_on_driver


@pytest.fixture(scope="session")
def observation_runs(scenario: AlgorithmScenario) -> ObservationRuns:
    """Specs and agents of the observation checks of one backend x algorithm."""
    return ObservationRuns(scenario)


def test_image_observations(observation_runs: ObservationRuns, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the suite's env as a 12x12x3 uint8 image, an algorithm that declares "image" observations
    builds a CNN: effective_hyperparameters().encoder is a "cnn" equal to what
    polyrl.observations.network.resolve_network(spec.network, agent.observation_space) describes
    (conv layers, input shape, scaling, conv features), with polyrl's default conv layers and with
    network.conv = [[8, 3, 1], [8, 3, 1]], followed by the resolved hidden layers; it trains an
    iteration, acts inside the action space on single images and on a batch, and an agent loaded
    from its checkpoint acts identically. An algorithm that does not declare "image" is refused
    with UnsupportedSpaceError before its driver is asked to create anything."""
    runs = observation_runs
    if "image" not in runs.declared_observations:
        create = spy_on_driver(monkeypatch, runs.scenario.info.name, "create")
        with pytest.raises(polyrl.errors.UnsupportedSpaceError):
            runs.build(runs.image_spec())
        assert create.calls == [], "the driver's create() ran for images the algorithm does not declare"
        return
    agents = {}
    for label, conv in (("default conv", None), (f"network.conv={IMAGE_CONV}", IMAGE_CONV)):
        spec = runs.image_spec(conv)
        agent = agents[label] = runs.build(spec)
        expected = resolve_network(spec.network, agent.observation_space)
        effective = agent.effective_hyperparameters()
        assert effective.encoder is not None, f"{label}: effective_hyperparameters() reports no encoder"
        assert effective.encoder.kind == "cnn", (
            f"{label}: the image went into a {effective.encoder.kind!r} encoder, not a CNN: "
            f"{effective.encoder}"
        )
        assert effective.encoder == expected.encoder, (
            f"{label}: built {effective.encoder}\nresolve_network describes {expected.encoder}"
        )
        assert effective.hidden == expected.hidden, (
            f"{label}: hidden layers {effective.hidden} after the convs; resolve_network says "
            f"{expected.hidden}"
        )
    agent = agents["default conv"]
    train_one(agent, "12x12x3 uint8 image")
    _, singles = raw_observations(runs.action_kind, "image")
    batch = np.stack(singles)
    actions = act_in_space(agent, singles, batch, "image")
    _, loaded = runs.reload(agent)
    assert actions_equal(actions, loaded.act(batch, deterministic=True)), "the loaded agent acts differently"
    assert loaded.effective_hyperparameters().encoder == agent.effective_hyperparameters().encoder


def test_discrete_observations(observation_runs: ObservationRuns) -> None:
    """On the suite's env with Discrete(81) observations (the grid cell of the point), the agent trains
    an iteration (polyrl hands the driver one-hot vectors); act() on a raw int and on its one-hot
    float32 vector gives the same action, inside the action space, alone and in a batch (a list of
    ints, and the one-hot matrix); an agent loaded from its checkpoint acts identically."""
    runs = observation_runs
    agent = runs.build(runs.spec("discrete"))
    train_one(agent, "Discrete(81)")
    space, cells = raw_observations(runs.action_kind, "discrete")
    assert isinstance(space, spaces.Discrete)
    one_hot = np.eye(int(space.n), dtype=np.float32)[cells]
    acts_alike_raw_and_encoded(runs, agent, cells, one_hot, "grid cell", ("int", "one-hot"))


def acts_alike_raw_and_encoded(
    runs: ObservationRuns, agent: Any, raw: Any, encoded: np.ndarray, what: str, words: tuple[str, str]
) -> None:
    """act() on each raw observation equals act() on its encoding, alone and as a batch, inside the
    action space; an agent loaded from its checkpoint acts identically on the raw batch."""
    actions = act_in_space(agent, raw, raw, what)
    for index, (observation, vector) in enumerate(zip(raw, encoded, strict=True)):
        from_raw, from_encoded = agent.act(observation), agent.act(vector)
        assert actions_equal(from_raw, from_encoded), (
            f"{what} #{index}: act({words[0]}) {from_raw!r}, act({words[1]}) {from_encoded!r}"
        )
    assert actions_equal(actions, agent.act(encoded)), (
        f"a batch of {words[0]} observations and its {words[1]} matrix act differently"
    )
    _, loaded = runs.reload(agent)
    assert actions_equal(actions, loaded.act(raw)), "the loaded agent acts differently"


def test_dict_observations(observation_runs: ObservationRuns) -> None:
    """On the suite's env with Dict observations {"body": (4,), "goal": (3,)}, the agent trains an
    iteration; act() on a raw dict and on its flattened float32 vector
    (gymnasium.spaces.flatten) gives the same action, inside the action space, alone and in a
    batch (a list of dicts); an agent loaded from its checkpoint acts identically."""
    runs = observation_runs
    agent = runs.build(runs.spec("dict"))
    train_one(agent, "Dict")
    space, observations = raw_observations(runs.action_kind, "dict")
    flat = np.stack([np.asarray(spaces.flatten(space, o), dtype=np.float32) for o in observations])
    acts_alike_raw_and_encoded(runs, agent, observations, flat, "dict observation", ("dict", "flattened"))


def test_device(observation_runs: ObservationRuns) -> None:
    """With device="cpu" the agent's networks are on the CPU (effective_hyperparameters().device is
    "cpu", read from the built model); device="cuda:7" is refused at creation with
    polyrl.errors.DeviceUnavailableError naming it (a ConfigurationError), never silently run on
    the CPU — unless torch sees at least 8 GPUs here, where that half cannot be checked."""
    runs = observation_runs
    effective = runs.build(runs.spec(device="cpu")).effective_hyperparameters()
    assert effective.device.startswith("cpu"), f'device="cpu", yet the networks are on {effective.device!r}'
    try:
        built = runs.build(runs.spec(device=UNAVAILABLE_DEVICE))
    except polyrl.errors.DeviceUnavailableError as exc:
        assert UNAVAILABLE_DEVICE in str(exc), f"the error does not name the device: {exc}"
        return
    if _visible_gpus() >= 8:
        return  # cuda:7 exists here: nothing to refuse
    raise AssertionError(
        f"device={UNAVAILABLE_DEVICE!r} on a machine without it built an agent on "
        f"{built.effective_hyperparameters().device!r} instead of raising DeviceUnavailableError"
    )


def _visible_gpus() -> int:
    """GPUs torch sees (0 without torch); imported only here, after a build that should have failed."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def test_normalize(observation_runs: ObservationRuns) -> None:
    """With normalize={"observations": true, "rewards": true} on the suite's Box env the agent trains
    (2 iterations, more until an episode ended); every iteration record reports the raw episodes
    the env paid out in that iteration — their number, mean, min and max return and mean length
    equal the env's own log — not the normalised rewards the driver trained on; the checkpoint
    holds native/polyrl_normalization.json, and the loaded agent acts identically on raw
    observations."""
    runs = observation_runs
    run = normalized_run(runs)
    assert any(paid for _, paid in run.iterations), (
        f"no episode of the env ended in {len(run.iterations)} iterations: are the training envs "
        "built with EnvSource.make()?"
    )
    for record, paid in run.iterations:
        where = f"iteration {record.iteration}"
        assert record.iteration_episodes == len(paid), (
            f"{where}: {record.iteration_episodes} episodes reported, the env ended {len(paid)}"
        )
        if not paid:
            continue
        returns, lengths = [r for r, _ in paid], [n for _, n in paid]
        reported = (record.return_mean, record.return_min, record.return_max)
        assert reported == pytest.approx((np.mean(returns), min(returns), max(returns)), rel=1e-6), (
            f"{where}: reported returns (mean, min, max) {reported}; the env paid out {returns}"
        )
        assert record.episode_length_mean == pytest.approx(np.mean(lengths))
    path, loaded = runs.reload(run.agent)
    assert (path / NATIVE_DIR / NORMALIZATION_FILE).is_file(), (
        f"the checkpoint lacks {NATIVE_DIR}/{NORMALIZATION_FILE}"
    )
    _, observations = raw_observations(runs.action_kind, "box")
    batch = np.stack(observations)
    assert actions_equal(run.agent.act(batch), loaded.act(batch)), "the loaded agent acts differently"
