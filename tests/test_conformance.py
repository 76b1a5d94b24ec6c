"""The conformance suite itself: third-party plugins installed for real, a broken one caught, sb3.

The example plugins under conformance/examples/ are built and installed with pip into a
temporary directory (registered through their own entry points, exactly as an installed
plugin), then the suite runs as a plugin author's CI would: `python -m pytest --pyargs
polyrl_conformance --polyrl-backend NAME` from a copy of the plugin's own directory.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from polyrl_conformance.report import CHECK_NAMES

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT / "conformance"
EXAMPLES = CONFORMANCE / "examples"
CHECKS_DIR = CONFORMANCE / "polyrl_conformance" / "checks"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two example plugins, pip-installed (wheels built from their pyproject) into one dir."""
    root = tmp_path_factory.mktemp("plugins")
    for name in ("polyrl_numpy_cem", "polyrl_broken"):
        shutil.copytree(EXAMPLES / name, root / name)
    # A third "installed" plugin the quick way an entry point really works: a module plus a
    # dist-info directory with entry_points.txt on sys.path. It declares unsupported checks.
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(root / "polyrl_numpy_cem"),
            str(root / "polyrl_broken"),
        ],
        check=True,
        cwd=root,
    )
    (site / "polyrl_cem_partial.py").write_text(
        "import polyrl\n"
        "from polyrl_numpy_cem import BACKEND\n\n"
        "PARTIAL = BACKEND.model_copy(update={\n"
        "    'name': 'cem_partial', 'deterministic': False,\n"
        "    'unsupported': {'resume': 'counters are not saved (example)', 'no_such_check': 'typo'},\n"
        "})\n\n"
        "@polyrl.backend.hookimpl\n"
        "def polyrl_backends():\n"
        "    return [PARTIAL]\n"
    )
    dist_info = site / "polyrl_cem_partial-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: polyrl-cem-partial\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[polyrl]\ncem_partial = polyrl_cem_partial\n")
    return site


def run_suite_as_plugin_ci(site: Path, cwd: Path, report: Path, *options: str) -> subprocess.CompletedProcess:
    """`python -m pytest --pyargs polyrl_conformance ...` with the plugins importable from `site`."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "polyrl_conformance",
        "-p",
        "no:cacheprovider",
        "--tb=line",
        f"--polyrl-report={report}",
        *options,
    ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def read_report(directory: Path) -> dict:
    assert (directory / "conformance.md").is_file()
    return json.loads((directory / "conformance.json").read_text())


def cells(report: dict, backend: str, algorithm: str) -> dict[str, str]:
    (row,) = [r for r in report["matrix"] if (r["backend"], r["algorithm"]) == (backend, algorithm)]
    return row["cells"]


def test_example_plugin_passes_every_check(plugin_site: Path, tmp_path: Path) -> None:
    repo = plugin_site.parent / "polyrl_numpy_cem"
    done = run_suite_as_plugin_ci(plugin_site, repo, tmp_path, "--polyrl-backend", "cem")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    report = read_report(tmp_path)
    assert report["passed"] and report["summary"]["fail"] == 0
    assert [(r["backend"], r["algorithm"], r["algorithm_env"]) for r in report["matrix"]] == [
        ("cem", "cem", "custom-boxobs-discrete")
    ]
    # image_observations included: cem declares no "image", and images are refused at creation.
    assert cells(report, "cem", "cem") == dict.fromkeys(CHECK_NAMES, "pass")
    (backend,) = report["backends"]
    assert backend["plugin"] == "polyrl-numpy-cem 0.1.0" and backend["deterministic"] is True
    assert backend["unsupported"] == {}  # every check earned, none declared away
    # Every env the algorithm declares was acted on, and the undeclared ones refused. Dict
    # observations reach every backend encoded into a Box vector, so a "box" algorithm takes them.
    acted = {r["env"] for r in report["results"] if r["check"] == "act_in_space"}
    refused = {r["env"] for r in report["results"] if r["check"] == "space_mismatch"}
    assert acted == {
        "custom-boxobs-discrete",
        "custom-boxobs-box",
        "CartPole-v1",
        "Acrobot-v1",
        "MountainCar-v0",
        "Pendulum-v1",
        "MountainCarContinuous-v0",
        "custom-dictobs-discrete",
        "custom-dictobs-box",
    }
    assert refused == {"custom-boxobs-tuple"}
    markdown = (tmp_path / "conformance.md").read_text()
    assert "| cem / cem (custom-boxobs-discrete) | pass |" in markdown
    assert "polyrl conformance: PASSED" in done.stdout  # the matrix printed at the end


def test_broken_plugin_fails_exactly_the_checks_it_violates(plugin_site: Path, tmp_path: Path) -> None:
    repo = plugin_site.parent / "polyrl_broken"
    done = run_suite_as_plugin_ci(plugin_site, repo, tmp_path, "--polyrl-backend", "broken")
    assert done.returncode == 1, done.stdout[-4000:]
    report = read_report(tmp_path)
    failed = {check for check, cell in cells(report, "broken", "cem").items() if cell == "fail"}
    # Bug 1 (1-based Discrete actions: also caught acting on Discrete and Dict observations) and
    # bug 2 (counters restart after load), nothing else: resume_exact passes, since CEM's updates
    # do not depend on the env-step counter.
    assert failed == {
        "act_in_space",
        "save_load_actions",
        "resume",
        "resume_equivalence",
        "discrete_observations",
        "dict_observations",
    }
    envs_out_of_space = {
        r["env"] for r in report["results"] if r["check"] == "act_in_space" and r["outcome"] == "fail"
    }
    assert envs_out_of_space == {
        "custom-boxobs-discrete",
        "CartPole-v1",
        "Acrobot-v1",
        "MountainCar-v0",
        "custom-dictobs-discrete",
    }
    for check in ("resume", "resume_equivalence"):
        (resume,) = [r for r in report["results"] if r["check"] == check]
        assert "env_steps" in resume["reason"], (check, resume["reason"])
    assert "## Failures" in (tmp_path / "conformance.md").read_text()


def test_plugin_ignoring_its_declared_schedules_fails_the_schedules_check(
    plugin_site: Path, tmp_path: Path
) -> None:
    """polyrl_broken's second backend declares clip-range and entropy schedules and drops every
    value the core sets: exactly `schedules` fails, saying which value stayed where."""
    repo = plugin_site.parent / "polyrl_broken"
    done = run_suite_as_plugin_ci(plugin_site, repo, tmp_path, "--polyrl-backend", "broken_schedule")
    assert done.returncode == 1, done.stdout[-4000:]
    report = read_report(tmp_path)
    row = cells(report, "broken_schedule", "ppo")
    assert {check for check, cell in row.items() if cell == "fail"} == {"schedules"}
    (result,) = [r for r in report["results"] if r["check"] == "schedules"]
    # The learning rate (set by the core through set_learning_rate) passes; clip_range is the
    # first declared value and stays at the schedule's start, 0.3, where 0.25, 0.2, 0.15 were due.
    reason = result["reason"]
    assert "clip_range follows" in reason, reason
    assert "expected per iteration [0.3, 0.25, 0.2, 0.15], the library held [0.3, 0.3, 0.3, 0.3]" in reason


def test_declared_unsupported_checks_are_reported_with_their_reason(
    plugin_site: Path, tmp_path: Path
) -> None:
    done = run_suite_as_plugin_ci(
        plugin_site,
        plugin_site.parent,
        tmp_path,
        "--polyrl-backend=cem_partial",
        "--polyrl-env=custom-boxobs-box",
    )
    assert done.returncode == 0, done.stdout[-4000:]
    report = read_report(tmp_path)
    row = cells(report, "cem_partial", "cem")
    assert row["resume"] == "unsupported" and row["seeding"] == "unsupported"
    assert row["space_mismatch"] == "-"  # the env selection left no mismatching env
    reasons = {r["check"]: r["reason"] for r in report["results"] if r["outcome"] == "unsupported"}
    assert reasons["resume"] == "counters are not saved (example)"
    assert "deterministic=False" in reasons["seeding"]
    assert any("no_such_check" in w for w in report["warnings"])
    markdown = (tmp_path / "conformance.md").read_text()
    assert "- cem_partial: `resume` — counters are not saved (example)" in markdown


def test_sb3_subset_passes_through_the_polyrl_conformance_command(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    import typer
    from polyrl_conformance.cli import conformance
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command()(conformance)
    app.command("other")(lambda: None)  # two commands: typer keeps `conformance` as a subcommand
    result = CliRunner().invoke(
        app,
        [
            "conformance",
            "--backend",
            "sb3",
            "--algorithm",
            "ppo",
            "--env",
            "custom-boxobs-discrete,CartPole-v1",
            "--report-dir",
            str(tmp_path),
            "--",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "polyrl conformance: PASSED" in result.output.splitlines()
    report = read_report(tmp_path)
    row = cells(report, "sb3", "ppo")
    assert {c for c, cell in row.items() if cell != "pass"} == {
        "space_mismatch"
    }  # no mismatching env selected
    assert {r["env"] for r in report["results"]} == {"custom-boxobs-discrete", "CartPole-v1"}


def test_every_check_is_one_documented_test() -> None:
    """CHECK_NAMES, the test functions in checks/ and the README's rules name the same checks."""
    functions = []
    for module in sorted(CHECKS_DIR.glob("test_*.py")):
        tree = ast.parse(module.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                assert ast.get_docstring(node), f"{module.name}::{node.name} has no docstring (its rule)"
                functions.append(node.name.removeprefix("test_"))
    assert sorted(functions) == sorted(CHECK_NAMES)
    readme = (CONFORMANCE / "README.md").read_text()
    undocumented = [name for name in CHECK_NAMES if f"- `{name}` — " not in readme]
    assert not undocumented


def test_the_pytest11_entry_point_is_cheap_and_inert(request: pytest.FixtureRequest) -> None:
    """Loaded in every pytest run: it adds options, imports nothing heavy, registers nothing."""
    code = (
        "import sys, polyrl_conformance.pytest_plugin\n"
        "print([m for m in ('polyrl', 'numpy', 'gymnasium', 'torch', 'rich') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert request.config.getoption("polyrl_backend") == []
    assert request.config.pluginmanager.get_plugin("polyrl-conformance-session") is None
