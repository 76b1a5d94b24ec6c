"""The README's quick start is exactly two commands, and CI runs the second one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", head, flags=re.S)]


def test_readme_starts_with_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert "polyrl train" in commands[0] and "--require-return 475" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == quick_start_commands()[1]


def test_ci_runs_the_tests_narrow_and_under_a_long_temporary_path():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "export COLUMNS=40" in ci and 'export POLYRL_TEST_BASETEMP="$long_tmp/basetemp"' in ci
    folder = re.search(r'long_tmp="\$\(mktemp -d\)(/[^"]+)"', ci)
    assert folder is not None and len("/tmp/tmp.XXXXXXXXXX" + folder.group(1) + "/basetemp") > 120


def test_the_ci_basetemp_reaches_pytest(pytestconfig):
    import os

    wanted = os.environ.get("POLYRL_TEST_BASETEMP")
    if wanted:
        assert str(pytestconfig.option.basetemp) == wanted
