"""`python -m polyrl.experiments.worker RUN_DIR`: execute one planned run in this fresh process."""

from __future__ import annotations

import sys

from polyrl.experiments.runner import execute_run


def main(argv: list[str]) -> int:
    """Run the plan in argv[0]; exit 0 when it finished, 1 when it failed (details in status.json)."""
    if len(argv) != 1:
        print("usage: python -m polyrl.experiments.worker RUN_DIR", file=sys.stderr)
        return 2
    return 0 if execute_run(argv[0]).status == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
