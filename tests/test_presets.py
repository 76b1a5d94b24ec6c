"""Presets at work: the order in which `preset="auto"` picks one, filling only the fields a user left
unset, an agent reporting, saving and loading its preset, and what `parse_book` refuses."""

from __future__ import annotations

from typing import Any

import polyrl
import pytest
from polyrl.errors import ConfigurationError
from polyrl.presets import apply as apply_module
from polyrl.presets import apply_preset, parse_book
from polyrl.spec import AgentSpec

# -- selection --------------------------------------------------------------------------------
ORDER_BOOK = """
[[preset]]
name = "a-exact"
algorithm = "ppo"
match = { envs = ["Foo-v1"] }
source = "a test preset"
settings.gamma = 0.1

[[preset]]
name = "b-older"
algorithm = "ppo"
match = { envs = ["Foo-v0"] }
source = "a test preset"
settings.gamma = 0.2

[[preset]]
name = "c-prefix"
algorithm = "ppo"
match = { env_prefixes = ["Fo"] }
source = "a test preset"
settings.gamma = 0.3

[[preset]]
name = "d-any"
algorithm = "ppo"
match = {}
source = "a test preset"
settings.gamma = 0.4

[[preset]]
name = "e-box"
algorithm = "ppo"
match = { observation = "box" }
source = "a test preset"
settings.gamma = 0.5

[[preset]]
name = "f-box-discrete"
algorithm = "ppo"
match = { observation = "box", action = "discrete" }
source = "a test preset"
settings.gamma = 0.6
"""


@pytest.mark.parametrize(
    ("env", "observation", "action", "name", "rule"),
    [
        ("Foo-v1", "box", "discrete", "a-exact", "env"),  # the id itself
        ("Foo-v0", "box", "discrete", "b-older", "env"),  # the id itself, though another lists Foo-v1
        ("Foo-v7", "box", "discrete", "a-exact", "version"),  # another version: the first listing one
        ("Fox-v1", "box", "discrete", "c-prefix", "prefix"),  # a prefix, before any fallback
        ("Bar-v1", "box", "discrete", "f-box-discrete", "fallback"),  # the fallback naming most kinds
        ("Bar-v1", "box", "box", "e-box", "fallback"),
        ("Bar-v1", "image", "box", "d-any", "fallback"),
        (None, "box", "discrete", "f-box-discrete", "fallback"),  # a factory env: kinds only
    ],
)
def test_selection_order_id_then_other_version_then_prefix_then_kinds(
    env, observation, action, name, rule
) -> None:
    book = parse_book(ORDER_BOOK)
    chosen = book.select("ppo", env, observation, action)
    assert chosen is not None and chosen.name == name
    matched = book.match("ppo", env, observation, action)
    assert matched is not None and (matched[0].name, matched[1]) == (name, rule)
    assert book.select("dqn", env, observation, action) is None  # presets are per algorithm


# -- filling the fields a user left unset -------------------------------------------------------
def backend_info(name: str) -> Any:
    return polyrl.registry().backends()[name]


def resolve(**fields: Any) -> tuple[AgentSpec, Any]:
    """apply_preset as the core calls it for a new agent (with the backend's declared features)."""
    spec = AgentSpec(**{"backend": "sb3", **fields})
    observation = "image" if str(fields.get("env", "")).startswith(("ALE/", "MinAtar/")) else "box"
    env = str(fields.get("env", "CartPole-v1"))
    action = "box" if env.startswith(("Pendulum", "MountainCarContinuous")) else "discrete"
    features = backend_info(spec.backend).algorithms[spec.algorithm].features
    return apply_preset(spec, observation, action, features)


def test_the_preset_fills_only_unset_fields_and_sections_key_by_key() -> None:
    spec, choice = resolve(algorithm="ppo", env="ALE/Pong-v5", gamma=0.95, ppo={"n_epochs": 5}, n_envs=1)
    assert (spec.gamma, spec.n_envs, spec.ppo.n_epochs) == (0.95, 1, 5)  # the user's values
    assert (spec.ppo.gae_lambda, spec.iteration_steps, spec.batch_size) == (0.95, 1024, 256)  # the preset's
    assert spec.learning_rate.model_dump() == {
        "kind": "linear",
        "start": 2.5e-4,
        "end": 0.0,
        "end_fraction": 1.0,
    }
    assert spec.preset == "ppo-atari"
    assert choice.name == "ppo-atari" and choice.source == "rl-zoo3 2.9.2 hyperparams/ppo.yml: atari"
    assert "ppo.gae_lambda" in choice.applied and "learning_rate" in choice.applied
    assert not {"gamma", "n_envs", "ppo.n_epochs"} & set(choice.applied)
    assert choice.applied == sorted(choice.applied)


def test_a_network_is_filled_key_by_key_but_a_schedule_or_normalisation_is_taken_whole() -> None:
    spec, _ = resolve(algorithm="dqn", env="CartPole-v1", network={"hidden": [32]})
    assert (spec.network.hidden, spec.network.activation) == ([32], "relu")
    exponential = {"kind": "exponential", "start": 1e-3, "end": 1e-4}
    spec, _ = resolve(algorithm="ppo", env="CartPole-v1", learning_rate=exponential)
    assert spec.learning_rate.model_dump() == {**exponential, "end_fraction": 1.0}
    spec, _ = resolve(algorithm="ppo", env="Acrobot-v1", normalize={"observations": True})
    assert (spec.normalize.observations, spec.normalize.rewards) == (True, False)  # not the preset's rewards


def test_the_preset_fills_neither_way_of_writing_a_setting_the_user_wrote_one_way() -> None:
    spec, _ = resolve(algorithm="td3", env="Pendulum-v1", td3={"action_noise_std": 0.3})
    assert (spec.td3.action_noise_std, spec.td3.action_noise, spec.td3.learning_starts) == (0.3, None, 10_000)
    epsilon = {"kind": "linear", "start": 1.0, "end": 0.02}
    spec, _ = resolve(algorithm="dqn", env="CartPole-v1", dqn={"epsilon": epsilon})
    assert spec.dqn.epsilon.model_dump()["end"] == 0.02
    assert (spec.dqn.exploration_fraction, spec.dqn.exploration_final_eps, spec.dqn.train_freq) == (
        None,
        None,
        256,
    )


def test_a_user_who_sets_use_sde_decides_its_companions_too() -> None:
    spec, choice = resolve(algorithm="ppo", env="Pendulum-v1", ppo={"use_sde": False})
    assert (spec.ppo.use_sde, spec.ppo.sde_sample_freq, spec.ppo.n_epochs) == (False, None, 10)
    assert "ppo.sde_sample_freq" not in choice.applied and choice.matched_by == "env"
    spec, choice = resolve(algorithm="sac", env="MountainCarContinuous-v0", sac={"use_sde": False})
    assert (spec.sac.use_sde, spec.sac.log_std_init, spec.sac.ent_coef) == (False, None, 0.1)
    spec, choice = resolve(algorithm="dqn", env="CartPole-v0", preset="dqn-cartpole")
    assert choice.matched_by == "name"


def test_a_backend_layer_applies_on_its_backend_only() -> None:
    sb3, choice = resolve(algorithm="ppo", env="Pendulum-v1")
    assert (sb3.ppo.use_sde, sb3.ppo.sde_sample_freq) == (True, 4) and "gSDE" in choice.backend_layer
    tianshou, choice = resolve(algorithm="ppo", env="Pendulum-v1", backend="tianshou")
    # Tianshou's own layer (no gSDE there): its rollout and epochs, not SB3's gSDE.
    assert (tianshou.ppo.use_sde, tianshou.ppo.n_epochs, tianshou.iteration_steps) == (None, 20, 2048)
    assert "no gSDE" in choice.backend_layer
    assert choice.stepped_back == []  # nothing to step back: gSDE is in the sb3 layer only
    plain, choice = resolve(algorithm="dqn", env="CartPole-v1", backend="tianshou")
    assert choice.backend_layer is None and plain.dqn.train_freq == 256  # no layer: the common settings


def test_none_keeps_the_library_defaults_and_a_name_asks_for_one_preset() -> None:
    spec, choice = resolve(algorithm="dqn", env="CartPole-v1", preset="none")
    assert choice is None and spec.preset == "none"
    assert (spec.learning_rate, spec.batch_size, spec.network, spec.dqn) == (None, None, None, None)
    spec, choice = resolve(algorithm="dqn", env="Acrobot-v1", preset="dqn-cartpole")
    assert choice.name == "dqn-cartpole" and spec.learning_rate == 2.3e-3 and spec.dqn.train_freq == 256
    spec, choice = resolve(algorithm="ppo", env="FrozenLake-v1")  # no preset: library defaults
    assert choice is None and spec.preset == "none" and spec.learning_rate is None


def test_a_named_preset_of_another_algorithm_or_an_unknown_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"'dqn-cartpole' is for dqn.*'ppo'.*ppo-cartpole"):
        resolve(algorithm="ppo", env="CartPole-v1", preset="dqn-cartpole")
    with pytest.raises(ConfigurationError, match=r"no preset called 'dqn-cartpol'.*polyrl presets"):
        resolve(algorithm="dqn", env="CartPole-v1", preset="dqn-cartpol")


# -- an agent with its preset: reported, saved and loaded -----------------------------------------
TEST_BOOK = """
[[preset]]
name = "linear-cartpole"
algorithm = "linear"
match = { envs = ["CartPole-v1"] }
source = "a test preset for the fake backend"
budget_steps = 3000
settings.learning_rate = 0.05
settings.gamma = 0.9
settings.iteration_steps = 30
"""


def test_an_agent_reports_saves_and_loads_its_preset(fake_backend, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(apply_module, "preset_book", lambda: parse_book(TEST_BOOK))
    agent = polyrl.Agent(backend=fake_backend, algorithm="linear", env="CartPole-v1", seed=0, gamma=0.95)
    assert (agent.spec.learning_rate, agent.spec.gamma, agent.spec.iteration_steps) == (0.05, 0.95, 30)
    assert agent.preset.name == "linear-cartpole" and agent.preset.applied == [
        "iteration_steps",
        "learning_rate",
    ]
    values = agent.effective_hyperparameters()
    assert (values.preset, values.preset_source) == ("linear-cartpole", "a test preset for the fake backend")
    assert (values.learning_rate, values.iteration_steps) == (0.05, 30)
    agent.train(iterations=1)
    agent.save(tmp_path / "agent")
    loaded = polyrl.Agent.load(tmp_path / "agent")
    assert loaded.spec == agent.spec and loaded.preset.name == "linear-cartpole"
    assert loaded.effective_hyperparameters().preset_source == "a test preset for the fake backend"
    assert loaded.preset == agent.preset  # the checkpoint keeps what the preset filled
    # A polyrl without that preset still loads the settings and the record of the preset.
    monkeypatch.setattr(apply_module, "preset_book", lambda: parse_book(ORDER_BOOK))
    again = polyrl.Agent.load(tmp_path / "agent")
    assert again.spec == agent.spec and again.preset == agent.preset


def test_preset_none_gives_an_agent_without_a_preset(fake_backend, monkeypatch) -> None:
    monkeypatch.setattr(apply_module, "preset_book", lambda: parse_book(TEST_BOOK))
    agent = polyrl.Agent(backend=fake_backend, algorithm="linear", env="CartPole-v1", seed=0, preset="none")
    assert agent.preset is None and agent.spec.learning_rate is None and agent.spec.preset == "none"
    assert agent.effective_hyperparameters().preset is None


def test_sb3_trains_with_the_presets_values_and_keeps_them_after_load(tmp_path) -> None:
    pytest.importorskip("stable_baselines3")
    agent = polyrl.Agent(backend="sb3", algorithm="dqn", env="CartPole-v1", seed=0)
    values = agent.effective_hyperparameters()
    assert (values.preset, values.learning_rate, values.batch_size, values.hidden) == (
        "dqn-cartpole",
        2.3e-3,
        64,
        [256, 256],
    )
    assert (agent.native.train_freq.frequency, agent.native.gradient_steps) == (256, 128)
    agent.save(tmp_path / "dqn")
    loaded = polyrl.Agent.load(tmp_path / "dqn")
    assert loaded.spec == agent.spec and loaded.preset.name == "dqn-cartpole"
    assert loaded.native.gradient_steps == 128


# -- what parse_book refuses ----------------------------------------------------------------------
def one(
    name: str = "x", algorithm: str = "ppo", match: str = '{ envs = ["Foo-v1"] }', settings: str = ""
) -> str:
    return (
        f'[[preset]]\nname = "{name}"\nalgorithm = "{algorithm}"\nmatch = {match}\n'
        f'source = "a test preset"\nsettings.gamma = 0.9\n{settings}\n'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (one("x") + one("x", match='{ envs = ["Bar-v1"] }'), "two presets are called 'x'"),
        (one("x") + one("y"), "presets 'x' and 'y' both claim ppo env Foo-v1"),
        (
            one("x", match='{ env_prefixes = ["ALE/"] }') + one("y", match='{ env_prefixes = ["ALE/"] }'),
            "both claim",
        ),
        (one("x", match='{ observation = "box" }') + one("y", match='{ observation = "box" }'), "both claim"),
        (one("auto"), "may not be called 'auto'"),
        (one("none"), "may not be called 'none'"),
        (one("x", settings='settings.backend = "sb3"'), "may not set 'backend'"),
        (one("x", settings='settings.env = "CartPole-v1"'), "may not set 'env'"),
        (one("x", settings="settings.seed = 1"), "may not set 'seed'"),
        (one("x", match='{ envs = ["Foo-v1"], observation = "box" }'), "narrow fallbacks only"),
        (one("x") + "setting.gamma = 0.5\n", "setting"),  # a misspelt key
        ("[[preset]\n", "invalid"),
    ],
)
def test_parse_book_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match="presets file") as info:
        parse_book(text)
    assert message in str(info.value)


def test_parse_book_lets_two_algorithms_share_an_env() -> None:
    book = parse_book(one("x") + one("y", algorithm="a2c"))
    assert [p.name for p in book.presets] == ["x", "y"]
