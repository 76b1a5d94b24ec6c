"""The presets polyrl ships: every one validates on every built-in backend with its algorithm,
uses only the optional features that backend declares, goes through the backend's mapping to its
library, and the book picks the right one for the issue's environment families."""

from __future__ import annotations

from typing import Any

import numpy as np
import polyrl
import pytest
from polyrl.features import used_features
from polyrl.presets import preset_book
from polyrl.presets.model import Preset
from polyrl.spec import AgentSpec

BOOK = preset_book()
#: The backends this repository ships (a third-party plugin installed beside them is not checked).
BUILTIN = ("sb3", "rllib", "tianshou")
#: Env families whose actions are continuous (Box); the others in the book have Discrete actions.
CONTINUOUS = (
    "Pendulum",
    "MountainCarContinuous",
    "LunarLanderContinuous",
    "BipedalWalker",
    "Ant",
    "HalfCheetah",
    "Hopper",
    "Humanoid",
    "Swimmer",
    "Walker2d",
)


def backend_info(name: str) -> Any:
    return polyrl.registry().backends()[name]


def cases() -> list[Any]:
    """(backend, preset) for every built-in backend that declares the preset's algorithm."""
    found = []
    for backend in BUILTIN:
        algorithms = backend_info(backend).algorithms
        found += [
            pytest.param(backend, p, id=f"{backend}-{p.name}")
            for p in BOOK.presets
            if p.algorithm in algorithms
        ]
    return found


def spec_of(preset: Preset, backend: str, env: str = "polyrl-test/Unknown-v0") -> AgentSpec:
    """The spec a user gets from the preset on `backend` (the layer included), with nothing else set."""
    settings = preset.settings_for(backend)
    return AgentSpec.model_validate(
        {**settings, "backend": backend, "algorithm": preset.algorithm, "env": env}
    )


def kinds_of(preset: Preset) -> list[tuple[str, str]]:
    """The (observation, action) kinds of the envs the preset is for."""
    if preset.match.is_fallback:
        action = preset.match.action or ("box" if preset.algorithm in ("sac", "td3", "ddpg") else "discrete")
        return [(preset.match.observation or "box", action)]
    if preset.match.env_prefixes:  # ALE/ and MinAtar/: images, discrete actions
        return [("image", "discrete")]
    return sorted({("box", "box" if e.startswith(CONTINUOUS) else "discrete") for e in preset.match.envs})


# -- the book ---------------------------------------------------------------------------------
def test_the_book_parses_with_unique_names_and_a_source_for_each() -> None:
    names = [p.name for p in BOOK.presets]
    assert len(names) == len(set(names)) >= 50
    assert all(
        p.source.startswith(("rl-zoo3 2.9.2 hyperparams/", "polyrl measurement")) for p in BOOK.presets
    )
    for preset in BOOK.presets:
        if preset.source.startswith("rl-zoo3"):
            assert f"hyperparams/{preset.algorithm}.yml: " in preset.source, preset.name


@pytest.mark.parametrize(("backend", "preset"), cases())
def test_every_preset_validates_and_uses_only_features_the_backend_declares(
    backend: str, preset: Preset
) -> None:
    """A built-in backend trains the preset as written: nothing it needs is stepped back.

    (apply_preset steps a setting back where a backend lacks its feature: the safety net for
    third-party backends. The shipped presets put such settings in the layers of the backends
    that have them instead.)
    """
    spec = spec_of(preset, backend)
    declared = backend_info(backend).algorithms[preset.algorithm].features
    assert set(used_features(spec)) <= set(declared), f"{preset.name} on {backend}: {used_features(spec)}"


def test_every_backend_layer_is_for_a_builtin_backend_with_the_algorithm() -> None:
    for preset in BOOK.presets:
        for backend in preset.backends:
            assert backend in BUILTIN and preset.algorithm in backend_info(backend).algorithms, preset.name


def test_gsde_is_only_in_sb3_layers() -> None:
    """The base settings run on every backend: gSDE (SB3 only) never is in them."""
    with_gsde = []
    for preset in BOOK.presets:
        assert "gsde" not in used_features(spec_of(preset, "none")), preset.name
        if "gsde" in used_features(spec_of(preset, "sb3")):
            with_gsde.append(preset.name)
    assert "ppo-pendulum" in with_gsde and "sac-mountaincarcontinuous" in with_gsde


def _mapped_gamma(backend: str, spec: AgentSpec, observation: Any, action: Any) -> float:
    """The discount the backend's own mapping gives the library (no env, no driver built)."""
    if backend == "sb3":
        from polyrl_sb3.params import sb3_kwargs

        return float(sb3_kwargs(spec, action, observation)["gamma"])
    if backend == "tianshou":
        from polyrl_tianshou.params import settings

        return float(settings(spec, action, observation).gamma)
    from polyrl_rllib.params import build_config, read_settings

    return float(build_config(spec, "polyrl-test", read_settings(spec), observation).gamma)


@pytest.mark.parametrize("backend", BUILTIN)
def test_every_preset_maps_to_the_backends_library_settings(backend: str) -> None:
    """Each backend's mapping takes every preset (a refused setting would fail here, not in a run)."""
    from gymnasium import spaces

    pytest.importorskip({"sb3": "stable_baselines3", "rllib": "ray.rllib", "tianshou": "tianshou"}[backend])
    space = {
        "box": spaces.Box(-1, 1, (6,), np.float32),
        "image": spaces.Box(0, 255, (84, 84, 4), np.uint8),
    }
    actions = {"box": spaces.Box(-1, 1, (2,), np.float32), "discrete": spaces.Discrete(3)}
    algorithms = backend_info(backend).algorithms
    checked = 0
    for preset in BOOK.presets:
        if preset.algorithm not in algorithms:
            continue
        for observation, action in kinds_of(preset):
            if action not in algorithms[preset.algorithm].action_spaces:
                continue
            spec = spec_of(preset, backend)
            expected = spec.gamma if spec.gamma is not None else None
            gamma = _mapped_gamma(backend, spec, space[observation], actions[action])
            if expected is not None:
                assert gamma == pytest.approx(expected), preset.name
            checked += 1
    assert checked >= 20


# -- the book's choices for the issue's families ---------------------------------------------
@pytest.mark.parametrize(
    ("algorithm", "env", "observation", "action", "name"),
    [
        ("ppo", "CartPole-v1", "box", "discrete", "ppo-cartpole"),
        ("dqn", "CartPole-v0", "box", "discrete", "dqn-cartpole"),  # another version
        ("a2c", "Acrobot-v1", "box", "discrete", "a2c-acrobot"),
        ("dqn", "MountainCar-v0", "box", "discrete", "dqn-mountaincar"),
        ("sac", "MountainCarContinuous-v0", "box", "box", "sac-mountaincarcontinuous"),
        ("td3", "Pendulum-v1", "box", "box", "td3-pendulum"),
        ("ppo", "LunarLander-v3", "box", "discrete", "ppo-lunarlander"),
        ("ppo", "LunarLanderContinuous-v3", "box", "box", "ppo-lunarlander"),
        ("dqn", "LunarLander-v2", "box", "discrete", "dqn-lunarlander"),  # another version
        ("a2c", "BipedalWalker-v3", "box", "box", "a2c-bipedalwalker"),
        ("sac", "HalfCheetah-v5", "box", "box", "sac-mujoco"),
        ("td3", "Ant-v3", "box", "box", "td3-mujoco"),  # another version of a listed id
        ("ppo", "Humanoid-v4", "box", "box", "ppo-humanoid"),
        ("ddpg", "Swimmer-v5", "box", "box", "ddpg-swimmer"),
        ("ppo", "ALE/Pong-v5", "image", "discrete", "ppo-atari"),
        ("dqn", "ALE/Breakout-v5", "image", "discrete", "dqn-atari"),
        ("ppo", "MinAtar/Breakout-v1", "image", "discrete", "ppo-minatar"),
        ("dqn", "MinAtar/SpaceInvaders-v1", "image", "discrete", "dqn-minatar"),
        ("dqn", "FrozenLake-v1", "box", "discrete", "dqn-vector"),  # an env no preset names
        ("dqn", "CarRacing-v3", "image", "discrete", "dqn-images"),
        ("ppo", "CarRacing-v3", "image", "box", "ppo-images"),
        ("ppo", "FrozenLake-v1", "box", "discrete", None),  # the Zoo's default: library defaults
        ("sac", "InvertedPendulum-v5", "box", "box", None),
    ],
)
def test_the_book_picks_the_presets_of_the_issues_families(algorithm, env, observation, action, name) -> None:
    chosen = BOOK.select(algorithm, env, observation, action)
    assert (chosen.name if chosen is not None else None) == name
