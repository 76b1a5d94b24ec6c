"""`polyrl presets`: the list, the --algo and --env filters, and its JSON."""

from __future__ import annotations

import json

from polyrl.cli.app import app
from polyrl.presets import preset_book
from typer.testing import CliRunner

runner = CliRunner()


def presets_json(*args: str) -> list[dict]:
    result = runner.invoke(app, ["presets", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_lists_every_preset_in_the_books_order_with_what_it_is_for() -> None:
    rows = presets_json()
    assert [r["name"] for r in rows] == [p.name for p in preset_book().presets]
    by_name = {r["name"]: r for r in rows}
    pendulum = by_name["ppo-pendulum"]
    assert (pendulum["algorithm"], pendulum["envs"], pendulum["env_prefixes"]) == ("ppo", ["Pendulum-v1"], [])
    assert (pendulum["fallback"], pendulum["budget_steps"]) == (None, 100_000)
    assert sorted(pendulum["backends"]) == ["rllib", "sb3", "tianshou"]  # gSDE on sb3, tuned elsewhere
    assert pendulum["source"] == "rl-zoo3 2.9.2 hyperparams/ppo.yml: Pendulum-v1"
    assert pendulum["settings"]["gamma"] == 0.9
    assert pendulum["layers"]["sb3"]["settings"]["ppo"] == {"use_sde": True, "sde_sample_freq": 4}
    assert pendulum["layers"]["sb3"]["why"].startswith("gSDE")
    assert by_name["ppo-atari"]["env_prefixes"] == ["ALE/"]
    assert by_name["dqn-vector"]["fallback"] == {"observation": "box", "action": "discrete"}
    assert by_name["dqn-vector"]["budget_steps"] is None


def test_algo_keeps_one_algorithms_presets() -> None:
    rows = presets_json("--algo", "DDPG")
    assert rows and {r["algorithm"] for r in rows} == {"ddpg"}
    assert "ddpg-pendulum" in [r["name"] for r in rows]
    assert presets_json("--algo", "appo") == []
    text = runner.invoke(app, ["presets", "--algo", "appo"], catch_exceptions=False)
    assert text.exit_code == 0 and "no presets for appo" in text.stdout


def test_env_gives_the_preset_auto_picks_per_algorithm_and_why() -> None:
    rows = presets_json("--env", "CartPole-v0")
    picked = {r["algorithm"]: (r["preset"] and r["preset"]["name"], r["match"]) for r in rows}
    assert picked["ppo"] == ("ppo-cartpole", "version")
    assert picked["dqn"] == ("dqn-cartpole", "version")
    assert picked["a2c"] == ("a2c-cartpole", "version")
    assert picked["td3"] == (None, None)
    assert all(r["env"] == "CartPole-v0" for r in rows)


def test_env_with_algo_uses_the_envs_spaces_for_a_fallback() -> None:
    rows = presets_json("--env", "FrozenLake-v1", "--algo", "dqn")
    assert [(r["algorithm"], r["preset"]["name"], r["match"]) for r in rows] == [
        ("dqn", "dqn-vector", "fallback")
    ]
    rows = presets_json("--env", "MinAtar/Breakout-v1", "--algo", "ppo")
    assert [(r["preset"]["name"], r["match"]) for r in rows] == [("ppo-minatar", "prefix")]


def test_env_named_by_a_preset_needs_no_installed_env() -> None:
    """Hopper-v5 needs MuJoCo to be made; a preset naming it answers without making it."""
    rows = presets_json("--env", "Hopper-v5", "--algo", "sac")
    assert [(r["preset"]["name"], r["match"], r["unresolved"]) for r in rows] == [("sac-mujoco", "env", None)]


def test_an_env_that_cannot_be_made_leaves_only_the_fallbacks_unresolved() -> None:
    rows = {r["algorithm"]: r for r in presets_json("--env", "polyrl-test/Nowhere-v0")}
    unresolved = {name for name, row in rows.items() if row["unresolved"] is not None}
    assert unresolved == {"dqn", "ppo"}  # the algorithms with fallbacks by observation/action kinds
    assert "cannot make env 'polyrl-test/Nowhere-v0'" in rows["dqn"]["unresolved"]
    assert all(row["preset"] is None for row in rows.values())


def test_the_tables_name_the_presets_their_sources_and_the_rule_that_picked_them() -> None:
    from polyrl.cli.presets import choices_table, presets_table
    from rich.console import Console

    wide = Console(width=400, record=True)
    wide.print(presets_table(presets_json("--algo", "td3")))
    text = wide.export_text()
    assert "td3-mountaincarcontinuous" in text and "rl-zoo3 2.9.2 hyperparams/td3.yml: Pendulum-v1" in text
    wide = Console(width=400, record=True)
    wide.print(choices_table(presets_json("--env", "ALE/Pong-v5", "--algo", "dqn")))
    text = wide.export_text()
    assert "dqn-atari" in text and "prefix" in text
    result = runner.invoke(app, ["presets"], env={"COLUMNS": "40"}, catch_exceptions=False)
    assert result.exit_code == 0  # any width
