"""`python -m polyrl.experiments.worker RUN_DIR`: execute one planned run in this fresh process."""

from __future__ import annotations

import sys

from polyrl.experiments.runner import execute_run

INTERRUPTED = 130  # the shell's exit status for a process stopped by SIGINT


def main(argv: list[str]) -> int:
    """Run the plan in argv[0]; exit 0 when done, 1 when failed, 130 when interrupted (see status.json)."""
    if len(argv) != 1:
        print("usage: python -m polyrl.experiments.worker RUN_DIR", file=sys.stderr)
        return 2
    try:
        return 0 if execute_run(argv[0]).status == "done" else 1
    except KeyboardInterrupt:  # status.json already says "interrupted"
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
