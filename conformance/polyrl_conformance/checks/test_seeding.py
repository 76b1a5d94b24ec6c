"""Seeding: same spec and seed, same first iteration."""

from __future__ import annotations

import pytest

from polyrl_conformance.scenario import AlgorithmScenario

_COMPARED = (
    "iteration_env_steps",
    "iteration_episodes",
    "return_mean",
    "return_min",
    "return_max",
    "episode_length_mean",
)


def test_seeding(scenario: AlgorithmScenario) -> None:
    """Two agents built from the same spec and seed produce identical first-iteration statistics (env
    steps, episodes, returns, lengths and losses, to 6 significant digits), for backends that
    declare determinism (BackendInfo.deterministic); for the others the report shows the check
    as declared unsupported."""
    first = scenario.trained().result.records[0]
    second = scenario.twin().result.records[0]
    for name in _COMPARED:
        a, b = getattr(first, name), getattr(second, name)
        if a is None or b is None:
            assert a is b, f"{name}: {a!r} vs {b!r}"
        else:
            assert a == pytest.approx(b, rel=1e-6), f"{name}: {a!r} vs {b!r}"
    assert sorted(first.losses) == sorted(second.losses)
    for name, value in first.losses.items():
        assert value == pytest.approx(second.losses[name], rel=1e-6, abs=1e-9), (
            f"loss {name}: {value!r} vs {second.losses[name]!r}"
        )
