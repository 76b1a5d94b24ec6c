"""docs/plugin-authors.md documents the whole plugin contract, as the code defines it.

Like datasette's tests/test_docs.py, the lists come from the code, so a new driver method, a new
BackendInfo field, a new hook or a new conformance check fails here until the guide covers it.

The formats the guide must use (and that these tests look for):
- a driver member as a code line `def NAME(PARAMETERS) -> RETURN`, exactly as
  `inspect.signature` gives it with the string annotations unquoted (this module uses
  `from __future__ import annotations`, like core/polyrl/backend.py); a classmethod's line has
  `cls` first and `@classmethod` on the line above, a property's `@property` on the line above;
- a hook as a code line `def NAME(PARAMETERS) -> RETURN`, its hookspec's signature without
  `self` (how a plugin module implements it);
- a BackendInfo / AlgorithmInfo field as a table row "| `field` |" in the section headed
  "### BackendInfo" / "### AlgorithmInfo";
- a conformance check as a table row "| `check` |" (its name in polyrl_conformance.report.CHECK_NAMES).
The pyproject and `__init__.py` snippets are checked to be exact: they parse, declare the entry
point and build a valid BackendInfo. Names of the PyTorch example the walk-through cites
(`DqnDriver.x`, `ReplayBuffer.x`) must exist in its source.
"""

from __future__ import annotations

import ast
import inspect
import re
import tomllib
from pathlib import Path

import pytest
from polyrl import hookspecs
from polyrl.backend import AlgorithmInfo, BackendDriver, BackendInfo
from polyrl_conformance.bench import hookspecs as bench_hookspecs
from polyrl_conformance.report import CHECK_NAMES

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugin-authors.md"
TORCH_EXAMPLE = ROOT / "conformance" / "examples" / "polyrl_torch_dqn" / "polyrl_torch_dqn" / "driver.py"


def guide() -> str:
    return GUIDE.read_text()


def guide_lines() -> list[str]:
    return [line.strip() for line in guide().splitlines()]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", guide(), flags=re.S)


def section(heading: str) -> str:
    """The text under `heading` (a whole line) up to the next heading of any level."""
    text = guide()
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#|\Z)", text, flags=re.S | re.M)
    assert match, f"{GUIDE.name} has no section {heading!r}"
    return match.group(1)


def part(heading: str) -> str:
    """The text under a "## " heading up to the next "## " heading, subsections included."""
    text = guide()
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"{GUIDE.name} has no part {heading!r}"
    return match.group(1)


def table_rows(text: str) -> set[str]:
    """The backticked first cells of a Markdown table's rows."""
    return set(re.findall(r"^\| `(\w+)` \|", text, flags=re.M))


# -- the driver contract --------------------------------------------------------------------------

DRIVER_MEMBERS = sorted(name for name in dir(BackendDriver) if not name.startswith("_"))


def driver_signature(name: str) -> tuple[str, str | None]:
    """`def name(...) -> ...` as the guide must write it, and the decorator line above it."""
    raw = inspect.getattr_static(BackendDriver, name)
    if isinstance(raw, property):
        function, decorator = raw.fget, "@property"
    elif isinstance(raw, classmethod):
        function, decorator = raw.__func__, "@classmethod"  # its signature keeps `cls`
    else:
        function, decorator = raw, None
    return f"def {name}{inspect.signature(function)}".replace("'", ""), decorator


def test_driver_members_are_the_known_ones() -> None:
    """A guard on the inspection itself: the contract has the members the guide describes."""
    assert {"create", "load", "train_iteration", "act", "env_steps", "set_horizon"} <= set(DRIVER_MEMBERS)


@pytest.mark.parametrize("name", DRIVER_MEMBERS)
def test_driver_member_is_documented_with_its_signature(name: str) -> None:
    signature, decorator = driver_signature(name)
    lines = guide_lines()
    found = [i for i, line in enumerate(lines) if line.startswith(signature)]
    assert found, f"{GUIDE.name} has no line `{signature}`"
    if decorator is not None:
        assert any(lines[i - 1] == decorator for i in found), f"`{signature}` is not under {decorator}"


@pytest.mark.parametrize("name", DRIVER_MEMBERS)
def test_driver_member_has_a_heading(name: str) -> None:
    """Beyond the signature: a "###" heading of part 2 names the member in backticks."""
    headings = re.findall(r"^### (.*)$", part("## 2. The driver contract"), flags=re.M)
    assert any(f"`{name}`" in heading for heading in headings), f"no heading of part 2 names `{name}`"


# -- what a plugin declares -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field"),
    [(model, field) for model in (BackendInfo, AlgorithmInfo) for field in model.model_fields],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_info_field_is_documented(model: type, field: str) -> None:
    rows = table_rows(section(f"### {model.__name__}"))
    assert field in rows, f"the {model.__name__} table lacks a row for `{field}`"


@pytest.mark.parametrize("model", [BackendInfo, AlgorithmInfo], ids=lambda model: model.__name__)
def test_info_tables_name_only_real_fields(model: type) -> None:
    rows = table_rows(section(f"### {model.__name__}"))
    assert rows <= set(model.model_fields), f"stale rows: {rows - set(model.model_fields)}"


#: Where hooks are declared: the core's, and the bench's (added by the conformance plugin).
HOOK_MODULES = (hookspecs, bench_hookspecs)


def hookspecs_by_name() -> dict[str, inspect.Signature]:
    found = {}
    for module in HOOK_MODULES:
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name, function in vars(cls).items():
                if hasattr(function, f"{hookspecs.PROJECT}_spec"):  # set by pluggy's HookspecMarker
                    found[name] = inspect.signature(function)
    return found


HOOKSPECS = hookspecs_by_name()


def test_hookspecs_are_found() -> None:
    expected = {"polyrl_backends", "polyrl_addhooks", "polyrl_register_commands", "on_iteration_end"}
    assert expected | {"polyrl_direct_training", "polyrl_bench_cells"} <= set(HOOKSPECS)


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hook_is_documented_with_its_signature(name: str) -> None:
    signature = HOOKSPECS[name]
    without_self = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name != "self"]
    )
    line = f"def {name}{without_self}".replace("'", "")
    assert any(text.startswith(line) for text in guide_lines()), f"{GUIDE.name} has no line `{line}`"


# -- the conformance suite ------------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_check_has_a_row(check: str) -> None:
    assert check in table_rows(guide()), f"{GUIDE.name} has no table row for the check `{check}`"


def test_check_table_names_only_real_checks() -> None:
    rows = table_rows(part("## 3. Running the conformance suite"))
    assert rows <= set(CHECK_NAMES), f"stale checks in the table: {rows - set(CHECK_NAMES)}"


# -- exact snippets -------------------------------------------------------------------------------


def test_pyproject_snippet_declares_the_entry_point() -> None:
    (toml,) = blocks("toml")
    project = tomllib.loads(toml)
    entry_points = project["project"]["entry-points"]["polyrl"]
    assert entry_points == {"mybackend": "polyrl_mybackend"}
    assert project["tool"]["setuptools"]["packages"] == ["polyrl_mybackend"]
    assert "polyrl" in project["project"]["dependencies"]


def test_init_snippet_builds_a_valid_backend() -> None:
    init = next(block for block in blocks("python") if "BACKEND = BackendInfo(" in block)
    namespace: dict = {}
    exec(compile(init, f"{GUIDE.name}[__init__.py]", "exec"), namespace)
    backend = namespace["BACKEND"]
    assert isinstance(backend, BackendInfo) and backend.name == "mybackend"
    assert backend.driver.startswith("polyrl_mybackend.")
    assert namespace["polyrl_backends"]() == [backend]
    # every field is set explicitly, so the snippet shows them all
    assert set(backend.model_fields_set) == set(BackendInfo.model_fields)
    # the overrides are valid AgentSpec fields
    from polyrl import AgentSpec

    for algorithm, fields in backend.conformance_overrides.items():
        AgentSpec.model_validate({**fields, "backend": backend.name, "algorithm": algorithm})


def test_commands_and_cells_snippet_runs() -> None:
    """Part 5's module, imported into the init snippet's module as the guide says, works as shown."""
    import types

    from polyrl.cli.app import build_app
    from polyrl.plugins import PluginRegistry
    from polyrl_conformance import plugin as conformance_plugin
    from polyrl_conformance.bench.cells import declared_cells
    from typer.testing import CliRunner

    init = next(block for block in blocks("python") if "BACKEND = BackendInfo(" in block)
    extras = next(block for block in blocks("python") if "cli.command(name=" in block)
    plugin = types.ModuleType("polyrl_mybackend")
    exec(compile(init, f"{GUIDE.name}[__init__.py]", "exec"), plugin.__dict__)
    exec(compile(extras, f"{GUIDE.name}[extras.py]", "exec"), plugin.__dict__)
    registry = PluginRegistry(load_entry_points=False)
    plugin.registry = lambda: registry  # the snippet's `registry()`: this test's plugins
    registry.register(conformance_plugin, name="conformance")
    registry.register(plugin, name="mybackend")

    printed = CliRunner().invoke(build_app(registry), ["mybackend-info", "--algorithm", "dqn"])
    assert printed.exit_code == 0, printed.output
    assert f"`polyrl mybackend-info --algorithm dqn` then prints `{printed.stdout.strip()}`" in guide()
    refused = CliRunner().invoke(build_app(registry), ["mybackend-info", "--algorithm", "ppo"])
    assert refused.exit_code == 2 and "mybackend has no 'ppo'" in refused.stderr
    cells = {cell.key: cell for cell in declared_cells(registry)}
    assert cells["mybackend/dqn/CartPole-v1"].min_return == 400.0
    assert cells["mybackend/dqn/Acrobot-v1"].spec["batch_size"] == 64


def test_walkthrough_names_exist_in_the_torch_example() -> None:
    tree = ast.parse(TORCH_EXAMPLE.read_text())
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members[node.name] = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
            members[node.name] |= {
                target.id
                for item in node.body
                if isinstance(item, ast.Assign)
                for target in item.targets
                if isinstance(target, ast.Name)
            }
    walkthrough = part("## 4. Walk-through: polyrl_torch_dqn")
    cited = set(re.findall(r"`(DqnDriver|ReplayBuffer)\.(\w+)", walkthrough))
    assert cited, "the walk-through cites no method of the example"
    missing = sorted(f"{cls}.{name}" for cls, name in cited if name not in members.get(cls, set()))
    assert not missing, f"the walk-through cites names the example does not have: {missing}"
