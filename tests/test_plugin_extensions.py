"""What a plugin adds beyond backends: `polyrl` commands, hooks of its own, and benchmark tuning.

Each test builds its own PluginRegistry from hand-made `importlib.metadata.EntryPoint`s naming
modules written into a temporary directory on sys.path (nothing is installed), plus the real
conformance plugin where the bench's hooks are needed.
"""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import polyrl
import pytest
import typer
from polyrl import plugins
from polyrl.cli.app import app, build_app
from polyrl.errors import ConfigurationError, PluginLoadWarning
from polyrl.hookspecs import hookspec
from polyrl.plugins import PluginRegistry
from polyrl_conformance.bench.cells import UNTUNED, declared_cells
from polyrl_conformance.bench.matrix import ENV_THRESHOLDS, MATRIX
from polyrl_conformance.bench.tuning import collect_tunings
from typer.testing import CliRunner

PREFIX = "polyrl_test_extension_"
CONFORMANCE = EntryPoint(name="conformance", value="polyrl_conformance.plugin", group="polyrl")


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A directory first on sys.path; its test modules are forgotten afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(plugins, "_warned", set())
    yield root
    for name in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[name]


def plugin_module(site: Path, suffix: str, source: str) -> EntryPoint:
    """Write module PREFIX+suffix and return an entry point naming it."""
    name = PREFIX + suffix
    (site / f"{name}.py").write_text(textwrap.dedent(source))
    return EntryPoint(name=suffix, value=name, group="polyrl")


def outcome_of(registry: PluginRegistry, name: str):
    (found,) = [o for o in registry.outcomes() if o.name == name]
    return found


def command_names(cli: typer.Typer) -> set[str]:
    return set(typer.main.get_command(cli).commands)  # type: ignore[attr-defined]


BACKEND = textwrap.dedent(
    """
    import polyrl

    @polyrl.backend.hookimpl
    def polyrl_backends():
        return [polyrl.backend.BackendInfo(
            name="{backend}", description="test", driver="nowhere:Driver", library="nolib",
            requires=[], install_hint="nolib",
            algorithms={{
                "ppo": polyrl.backend.AlgorithmInfo(action_spaces=["discrete", "box"], on_policy=True),
                "dqn": polyrl.backend.AlgorithmInfo(action_spaces=["discrete"], on_policy=False),
            }},
        )]
"""
)


# -- commands ------------------------------------------------------------------------------------
COMMANDS = """
    import typer
    import polyrl
    from polyrl.cli.guard import guarded


    def greet(name: str = typer.Option("world", help="Who to greet.")) -> None:
        typer.echo(f"hello {name}, from a plugin")


    def refuse() -> None:
        def body() -> None:
            raise ValueError("the plugin's command refused this input")

        guarded(body)


    @polyrl.backend.hookimpl
    def polyrl_register_commands(cli):
        cli.command(name="greet", help="Say hello.")(greet)
        cli.command(name="refuse")(refuse)
"""


def test_a_third_party_plugin_adds_a_command_that_runs(site):
    entry_point = plugin_module(site, "commands", COMMANDS)
    registry = PluginRegistry(entry_points=[entry_point])
    assert outcome_of(registry, "commands").hooks == ("polyrl_register_commands",)
    cli = build_app(registry)
    assert {"greet", "refuse", "train", "plugins", "grid"} <= command_names(cli)
    runner = CliRunner()
    greeted = runner.invoke(cli, ["greet", "--name", "tester"])
    assert greeted.exit_code == 0 and greeted.stdout == "hello tester, from a plugin\n"
    refused = runner.invoke(cli, ["refuse"])
    assert refused.exit_code == 2  # the core's guard: one line, usage status
    assert "error (ValueError): the plugin's command refused this input" in refused.stderr
    # The plugin's commands are its registry's: the installed app does not have them.
    assert "greet" not in command_names(app)


def test_a_plugin_failing_to_add_its_commands_is_reported_and_the_others_still_work(site):
    broken = plugin_module(
        site,
        "brokencmd",
        "import polyrl\n\n@polyrl.backend.hookimpl\n"
        "def polyrl_register_commands(cli):\n    raise RuntimeError('no')\n",
    )
    good = plugin_module(site, "commands", COMMANDS)
    registry = PluginRegistry(entry_points=[broken, good])
    expected = "plugin 'brokencmd' failed in its polyrl_register_commands hook: RuntimeError: no"
    with pytest.warns(PluginLoadWarning, match=expected):
        cli = build_app(registry)
    assert {"greet", "train"} <= command_names(cli)


def test_the_installed_app_has_the_conformance_plugins_commands():
    assert {"bench", "conformance"} <= command_names(app)
    assert outcome_of(plugins.registry(), "conformance").hooks == (
        "polyrl_addhooks",
        "polyrl_register_commands",
    )


# -- hooks of a plugin's own ---------------------------------------------------------------------
TUNED = BACKEND.format(backend="tuned_xyz") + textwrap.dedent(
    """

    @polyrl.backend.hookimpl
    def polyrl_bench_cells():
        from polyrl_conformance.bench.tuning import CellTuning

        return [
            {"backend": "tuned_xyz", "algorithm": "ppo", "env": "CartPole-v1", "min_return": 300.0,
             "note": "measured here, seed 0: 350", "spec": {"gamma": 0.98}},
            CellTuning(
                backend="tuned_xyz", algorithm="dqn", env="CartPole-v1", spec={"dqn": {"train_freq": 4}}
            ),
        ]
"""
)


def test_a_misspelt_bench_hook_fails_its_plugin_loudly(site):
    typo = plugin_module(
        site,
        "typo",
        BACKEND.format(backend="typo_xyz")
        + "\n\n@polyrl.backend.hookimpl\ndef polyrl_bench_cell():\n    return []\n",
    )
    tuned = plugin_module(site, "tuned", TUNED)
    # The conformance plugin comes last: plugins adding hooks still register first.
    with pytest.warns(PluginLoadWarning, match="polyrl_bench_cell'"):
        registry = PluginRegistry(entry_points=[typo, tuned, CONFORMANCE])
    failed = outcome_of(registry, "typo")
    assert (failed.status, failed.stage) == ("failed", "register")
    assert failed.error.startswith("PluginValidationError: unknown hook 'polyrl_bench_cell' in plugin")
    assert "typo_xyz" not in registry.backends()
    assert outcome_of(registry, "tuned").hooks == ("polyrl_bench_cells",)


def test_without_the_plugin_declaring_them_the_bench_hooks_are_unknown(site):
    tuned = plugin_module(site, "tuned", TUNED)
    with pytest.warns(PluginLoadWarning, match="unknown hook 'polyrl_bench_cells'"):
        registry = PluginRegistry(entry_points=[tuned])
    assert outcome_of(registry, "tuned").status == "failed"


def test_a_plugin_whose_addhooks_raises_is_a_failed_plugin(site):
    broken = plugin_module(
        site,
        "addhooks",
        "import polyrl\n\n@polyrl.backend.hookimpl\n"
        "def polyrl_addhooks(pluginmanager):\n    raise RuntimeError('no')\n",
    )
    with pytest.warns(PluginLoadWarning, match="RuntimeError: no"):
        registry = PluginRegistry(entry_points=[broken, CONFORMANCE])
    outcome = outcome_of(registry, "addhooks")
    assert (outcome.status, outcome.stage, outcome.error) == ("failed", "register", "RuntimeError: no")
    assert registry.manager.get_plugin("addhooks") is None
    assert outcome_of(registry, "conformance").ok


def test_addhooks_reaches_a_plugin_registered_by_hand():
    class Specs:
        @hookspec
        def my_extra_hook(self) -> int:  # pragma: no cover - a spec
            raise NotImplementedError

    class Declares:
        @polyrl.backend.hookimpl
        def polyrl_addhooks(self, pluginmanager):
            pluginmanager.add_hookspecs(Specs)

        @polyrl.backend.hookimpl
        def my_extra_hook(self):
            return 7

    registry = PluginRegistry(load_entry_points=False)
    registry.register(Declares(), name="declares")
    assert registry.manager.hook.my_extra_hook() == [7]


# -- benchmark tuning ----------------------------------------------------------------------------
def test_a_plugins_tuning_sets_its_cells_and_an_untuned_backend_gets_generic_cells(site):
    tuned = plugin_module(site, "tuned", TUNED)
    plain = plugin_module(site, "plain", BACKEND.format(backend="plain_xyz"))
    registry = PluginRegistry(entry_points=[tuned, plain, CONFORMANCE])
    cells = {cell.key: cell for cell in declared_cells(registry)}
    ppo = cells["tuned_xyz/ppo/CartPole-v1"]
    assert (ppo.min_return, ppo.note, ppo.spec) == (300.0, "measured here, seed 0: 350", {"gamma": 0.98})
    dqn = cells["tuned_xyz/dqn/CartPole-v1"]
    matrix_dqn = MATRIX[("dqn", "CartPole-v1")].spec.get("dqn", {})  # a default cell: preset only
    assert dqn.spec["dqn"] == {**matrix_dqn, "train_freq": 4}  # laid over the matrix, key by key
    assert dqn.min_return == ENV_THRESHOLDS["CartPole-v1"]  # tuned spec, no measured line
    untuned = [cell for key, cell in cells.items() if key.startswith("plain_xyz/")]
    assert {(c.algorithm, c.env) for c in untuned} == {
        (c.algorithm, c.env) for c in cells.values() if c.backend == "tuned_xyz"
    }
    for cell in untuned:
        assert cell.min_return == cell.solve_threshold == ENV_THRESHOLDS[cell.env]
        assert cell.note == UNTUNED and cell.spec == MATRIX[(cell.algorithm, cell.env)].spec


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        ('{"backend": "other_xyz", "algorithm": "ppo", "env": "CartPole-v1"}', "which it does not declare"),
        ('{"backend": "bad_xyz", "algorithm": "ppo", "env": "CartPole-v9"}', "not in the bench's matrix"),
        ('{"backend": "bad_xyz", "algorithm": "ppo", "env": "CartPole-v1", "min_return": 900}', "above"),
        ('{"backend": "bad_xyz", "algorithm": "ppo", "env": "CartPole-v1", "budget": 5}', "invalid tuning"),
    ],
    ids=["foreign backend", "unknown env", "line above solved", "unknown field"],
)
def test_a_wrong_tuning_is_refused_naming_the_plugin(site, tuning, message):
    source = (
        BACKEND.format(backend="bad_xyz")
        + f"\n\n@polyrl.backend.hookimpl\ndef polyrl_bench_cells():\n    return [{tuning}]\n"
    )
    bad = plugin_module(site, "bad", source)
    registry = PluginRegistry(entry_points=[bad, CONFORMANCE])
    with pytest.raises(ConfigurationError, match="plugin 'bad'") as info:
        collect_tunings(registry)
    assert message in str(info.value)
