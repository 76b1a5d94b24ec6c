"""No silent plugin failures (issue 14): every "polyrl" entry point's load outcome is recorded.

The entry points here are real `importlib.metadata` objects read from a tiny distribution
(a `*.dist-info` folder) written into a temporary directory put first on sys.path: nothing is
installed, and the assertions only look at these entry points, whatever else is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint, PathDistribution
from pathlib import Path

import polyrl
import pytest
from polyrl import plugins
from polyrl.errors import PluginError, PluginLoadWarning
from polyrl.plugins import PluginRegistry
from typer.testing import CliRunner

PREFIX = "polyrl_test_loading_"
# The keys of a backend row of `polyrl plugins --json`, unchanged by the problem rows.
BACKEND_ROW_KEYS = {
    "name",
    "description",
    "library",
    "installed",
    "version",
    "install",
    "plugin",
    "algorithms",
    "observations",
}


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A directory first on sys.path; its test modules are forgotten afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(plugins, "_warned", set())  # "once per process" starts afresh per test
    yield root
    for name in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[name]


def distribution(site: Path, entry_points: dict[str, str], name: str = "polyrl-x", version: str = "0.1"):
    """Write `name-version.dist-info` declaring `entry_points` in the polyrl group."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[polyrl]\n{lines}")
    return PathDistribution(info)


def module(site: Path, name: str, source: str) -> None:
    (site / f"{name}.py").write_text(textwrap.dedent(source))


def outcome_of(registry: PluginRegistry, name: str):
    (found,) = [o for o in registry.outcomes() if o.name == name]
    return found


GOOD_BACKEND = """
    import polyrl

    @polyrl.backend.hookimpl
    def polyrl_backends():
        return [polyrl.backend.BackendInfo(
            name="{backend}", description="test", driver="nowhere:Driver", library="nolib",
            requires=["nolib_xyz"], install_hint="nolib",
            algorithms={{"ppo": polyrl.backend.AlgorithmInfo(action_spaces=["discrete"], on_policy=True)}},
        )]
"""


def test_module_failing_to_import_is_recorded_warned_and_named_by_unknown_backend(site):
    name = PREFIX + "broken"
    module(site, name, f"import {name}_driver_missing\n")
    dist = distribution(site, {"x": name})
    with pytest.warns(PluginLoadWarning, match="failed to import"):
        registry = PluginRegistry(entry_points=dist.entry_points)

    outcome = outcome_of(registry, "x")
    assert outcome.status == "failed" and outcome.stage == "import"
    assert outcome.error == f"ModuleNotFoundError: No module named '{name}_driver_missing'"
    assert outcome.entry_point == f"x = {name}" and outcome.distribution == "polyrl-x 0.1"
    assert registry.problems() == [outcome]

    with pytest.raises(polyrl.errors.UnknownBackendError) as info:
        registry.backend("x")
    assert str(info.value).startswith("unknown backend 'x'; installed: [")
    assert (
        f"the entry point 'x = {name}' (distribution polyrl-x 0.1) failed to import: "
        f"ModuleNotFoundError: No module named '{name}_driver_missing'"
    ) in str(info.value)


def test_a_failure_warns_once_per_process(site, recwarn):
    dist = distribution(site, {"x": PREFIX + "absent"})
    for _ in range(2):
        registry = PluginRegistry(entry_points=dist.entry_points)
        registry.backends()
        registry.problems()
    assert [w.category for w in recwarn.list if w.category is PluginLoadWarning] == [PluginLoadWarning]


def test_a_hand_made_entry_point_without_distribution_is_reported():
    entry_point = EntryPoint(name="ghost", value="nonexistent_mod_xyz", group="polyrl")
    with pytest.warns(PluginLoadWarning):
        registry = PluginRegistry(entry_points=[entry_point])
    outcome = outcome_of(registry, "ghost")
    assert (outcome.status, outcome.distribution) == ("failed", None)
    assert outcome.error == "ModuleNotFoundError: No module named 'nonexistent_mod_xyz'"


def test_module_that_registers_nothing_is_reported_as_empty(site):
    name = PREFIX + "nothing"
    module(site, name, "VERSION = 1\n")
    dist = distribution(site, {"nothing": name})
    registry = PluginRegistry(entry_points=dist.entry_points)  # import and registration succeed
    with pytest.warns(PluginLoadWarning, match="registered nothing"):
        outcome = outcome_of(registry, "nothing")
    assert outcome.status == "empty" and outcome.backends == () and outcome.hooks == ()
    assert str(site / f"{name}.py") in outcome.error
    with pytest.raises(polyrl.errors.UnknownBackendError, match="'nothing = polyrl_test_loading_nothing'"):
        registry.backend("nothing")


def test_backends_hook_returning_nothing_is_empty_but_another_hook_is_enough(site):
    module(
        site,
        PREFIX + "none",
        "import polyrl\n\n@polyrl.backend.hookimpl\ndef polyrl_backends():\n    return []\n",
    )
    module(
        site,
        PREFIX + "hooks",
        "import polyrl\n\n@polyrl.backend.hookimpl\ndef on_train_end(result):\n    pass\n",
    )
    module(site, PREFIX + "good", GOOD_BACKEND.format(backend="good_xyz"))
    dist = distribution(site, {"none": PREFIX + "none", "hooks": PREFIX + "hooks", "good": PREFIX + "good"})
    registry = PluginRegistry(entry_points=dist.entry_points)
    with pytest.warns(PluginLoadWarning):
        outcomes = {o.name: o for o in registry.outcomes()}
    assert outcomes["none"].status == "empty"
    assert (outcomes["hooks"].status, outcomes["hooks"].hooks) == ("loaded", ("on_train_end",))
    assert (outcomes["good"].status, outcomes["good"].backends) == ("loaded", ("good_xyz",))
    assert registry.source("good_xyz") == "good"


def test_misspelled_hookimpl_is_a_failed_plugin_not_a_crash(site):
    name = PREFIX + "typo"
    module(
        site,
        name,
        textwrap.dedent(GOOD_BACKEND.format(backend="typo_xyz"))
        + "\n\n@polyrl.backend.hookimpl\ndef on_iteration_ned(record):\n    pass\n",
    )
    dist = distribution(site, {"typo": name})
    with pytest.warns(PluginLoadWarning, match="on_iteration_ned"):
        registry = PluginRegistry(entry_points=dist.entry_points)
    outcome = outcome_of(registry, "typo")
    assert outcome.status == "failed" and outcome.stage == "register"
    assert outcome.error.startswith("PluginValidationError: unknown hook 'on_iteration_ned' in plugin")
    assert "typo_xyz" not in registry.backends()  # rejected as a whole: its hooks are not called
    with pytest.raises(polyrl.errors.UnknownBackendError, match="was rejected: PluginValidationError"):
        registry.backend("typo_xyz")


def test_registering_a_misspelled_hookimpl_by_hand_raises(site):
    class Typo:
        @polyrl.backend.hookimpl
        def on_trian_begin(self, context):
            pass

    registry = PluginRegistry(load_entry_points=False)
    with pytest.raises(PluginError, match="unknown hook 'on_trian_begin'"):
        registry.register(Typo(), name="typo")
    assert registry.manager.get_plugin("typo") is None


def test_backends_hook_that_raises_is_a_failed_plugin(site):
    name = PREFIX + "raises"
    module(
        site,
        name,
        "import polyrl\n\n@polyrl.backend.hookimpl\ndef polyrl_backends():\n    raise RuntimeError('boom')\n",
    )
    module(site, PREFIX + "fine", GOOD_BACKEND.format(backend="fine_xyz"))
    dist = distribution(site, {"raises": name, "fine": PREFIX + "fine"})
    registry = PluginRegistry(entry_points=dist.entry_points)
    with pytest.warns(PluginLoadWarning, match="boom"):
        assert "fine_xyz" in registry.backends()  # one broken plugin does not hide the others
    outcome = outcome_of(registry, "raises")
    assert (outcome.status, outcome.stage, outcome.error) == ("failed", "backends", "RuntimeError: boom")


def test_empty_folder_shadowing_the_module_is_reported_as_registering_nothing(site):
    name = PREFIX + "shadowed"
    (site / name).mkdir()  # what a stray `polyrl_sb3/` folder in the working directory is
    entry_point = EntryPoint(name="shadowed", value=name, group="polyrl")
    registry = PluginRegistry(entry_points=[entry_point])
    with pytest.warns(PluginLoadWarning, match="registered nothing"):
        outcome = outcome_of(registry, "shadowed")
    assert outcome.status == "empty"
    assert str(site / name) in outcome.error and "__init__.py" in outcome.error


def test_builtin_module_shadowed_by_a_folder_in_the_working_directory(tmp_path):
    (tmp_path / "polyrl_sb3").mkdir()  # `python -c` puts the working directory first on sys.path
    code = (
        "import json, polyrl\n"
        "registry = polyrl.registry()\n"
        "outcome = next(o for o in registry.outcomes() if o.value == 'polyrl_sb3')\n"
        "try:\n"
        "    registry.backend('sb3')\n"
        "    error = None\n"
        "except polyrl.errors.UnknownBackendError as exc:\n"
        "    error = str(exc)\n"
        "print(json.dumps([outcome.status, outcome.error, error]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    status, reason, error = json.loads(run.stdout)
    assert status == "empty" and str(tmp_path / "polyrl_sb3") in reason
    assert "the entry point 'sb3 = polyrl_sb3'" in error and "registered nothing" in error
    assert "PluginLoadWarning" in run.stderr


@pytest.fixture
def fresh_registry():
    """The process-wide registry rebuilt (from sys.path as the test leaves it) before and after."""
    plugins.registry.cache_clear()
    yield
    plugins.registry.cache_clear()


def test_plugins_command_lists_failed_entry_points(site, fresh_registry):
    name = PREFIX + "cli"
    module(site, name, f"import {name}_missing\n")
    distribution(site, {"clifail": name}, name="polyrl-clifail", version="0.2")
    runner = CliRunner()
    from polyrl.cli.app import app

    rows = json.loads(runner.invoke(app, ["plugins", "--json"], catch_exceptions=False).output)
    (row,) = [r for r in rows if r["name"] == "clifail"]
    assert row["status"] == "failed" and row["installed"] is False
    assert row["error"] == f"ModuleNotFoundError: No module named '{name}_missing'"
    assert row["entry_point"] == f"clifail = {name}" and row["distribution"] == "polyrl-clifail 0.2"
    assert all(set(r) == BACKEND_ROW_KEYS for r in rows if "status" not in r)  # backend rows are unchanged

    result = runner.invoke(app, ["plugins"], env={"COLUMNS": "60"}, catch_exceptions=False)
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if "clifail" in line]
    assert lines == [f"plugin failed to load: {row['message']}"]  # one line, wider than 60 columns
    assert "PluginLoadWarning" not in result.output
