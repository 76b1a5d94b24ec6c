"""The pytest plugin object of a conformance run: selects cases, labels tests, collects outcomes.

Registered by the checks package's conftest, so it exists only when the conformance checks
are collected; the pytest11 entry point itself only adds the command-line options.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from polyrl_conformance.cases import Case, Cases, SelectionError, build_cases
from polyrl_conformance.report import (
    CHECK_NAMES,
    UNSUPPORTED_PREFIX,
    build_report,
    render_details,
    render_matrix,
    verdict_line,
    write_report,
)

#: Checks that compare two runs of one seed: declared unsupported for non-deterministic backends.
DETERMINISTIC_CHECKS = ("seeding", "seeding_interleaved", "resume_exact")
CASE_ARGUMENTS = ("env_case", "mismatch_case", "algo_case")
PROPERTY = "polyrl_conformance"
CHECKS_DIR = (Path(__file__).parent / "checks").resolve()


def check_name(item: pytest.Item) -> str:
    """A check's name: its test function's name without "test_"."""
    name = getattr(item, "originalname", None) or item.name.split("[")[0]
    return name.removeprefix("test_")


def _case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for argument in CASE_ARGUMENTS:
        case = callspec.params.get(argument)
        if isinstance(case, Case):  # not pytest's placeholder of an empty parameter set
            return case
    return None


def _plugin_distributions() -> dict[str, str]:
    """backend name -> "distribution version" of the installed plugin declaring it."""
    import polyrl

    found: dict[str, str] = {}
    manager = polyrl.registry().manager
    for plugin, dist in manager.list_plugin_distinfo():
        declare = getattr(plugin, "polyrl_backends", None)
        if declare is None:
            continue
        try:
            infos = declare() or []
        except Exception:  # a plugin failing here shows up when its backend is used
            continue
        for info in infos:
            name = info["name"] if isinstance(info, dict) else info.name
            found[name] = f"{dist.project_name} {dist.version}"
    return found


def _failure(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else str(report.longrepr)
    return message if report.when == "call" else f"error in {report.when}: {message}"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def limit_threads(threads: int) -> None:
    """Run math kernels on `threads` threads: env vars for libraries imported later, torch now."""
    if threads <= 0:
        return
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    torch = sys.modules.get("torch")  # never imported here: a numpy-only backend stays torch-free
    if torch is not None:
        torch.set_num_threads(threads)


class ConformanceSession:
    """Case selection, per-test labels, and the report of one pytest run of the suite."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        try:
            self.cases: Cases = build_cases(
                config.getoption("polyrl_backend") or [],
                config.getoption("polyrl_algorithm") or [],
                config.getoption("polyrl_env") or [],
            )
        except (SelectionError, ImportError) as exc:
            raise pytest.UsageError(f"polyrl conformance: {exc}") from exc
        self.infos = {info.name: info for info in self.cases.backends}
        limit_threads(config.getoption("polyrl_threads"))
        self.results: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, str] = {}
        self.report: dict[str, Any] | None = None

    # -- collection ------------------------------------------------------------------------
    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize a check over its cases (the argument name says which kind)."""
        if "env_case" in metafunc.fixturenames:
            # Module scope: the checks of one env case run together and share its agent.
            metafunc.parametrize("env_case", self.cases.fitting, ids=str, scope="module")
        if "mismatch_case" in metafunc.fixturenames:
            metafunc.parametrize("mismatch_case", self.cases.mismatched, ids=str)
        if "algo_case" in metafunc.fixturenames:
            # Session scope: every algorithm-level check of one case runs together, across
            # modules, so the runs they share are made once and released before the next case.
            metafunc.parametrize("algo_case", self.cases.algorithms, ids=str, scope="session")

    def unsupported_reason(self, backend: str, check: str) -> str | None:
        """Why the backend declares it does not meet `check`, if it does."""
        info = self.infos[backend]
        if check in info.unsupported:
            return info.unsupported[check]
        if check in DETERMINISTIC_CHECKS and not info.deterministic:
            return "the backend declares seeded runs are not reproducible (BackendInfo.deterministic=False)"
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Label every check with its case; turn declared-unsupported checks into reasoned skips."""
        for item in items:
            case = _case_of(item)
            if case is None or not Path(str(item.path)).resolve().is_relative_to(CHECKS_DIR):
                continue
            check = check_name(item)
            doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
            self.rules.setdefault(check, " ".join(doc.split("\n\n")[0].split()))
            item.user_properties.append(
                (
                    PROPERTY,
                    {
                        "backend": case.backend,
                        "algorithm": case.algorithm,
                        "env": case.env.key,
                        "check": check,
                    },
                )
            )
            reason = self.unsupported_reason(case.backend, check)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=UNSUPPORTED_PREFIX + reason))

    # -- outcomes --------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold each phase's outcome into the check's result (any failing phase fails it)."""
        # The labels pytest_collection_modifyitems attached (a dict), or None for other tests.
        labels = cast("dict[str, Any] | None", dict(report.user_properties).get(PROPERTY))
        if labels is None:
            return
        entry = self.results.setdefault(
            report.nodeid, {**labels, "outcome": None, "reason": "", "seconds": 0.0, "nodeid": report.nodeid}
        )
        entry["seconds"] = round(entry["seconds"] + report.duration, 4)
        if report.failed:
            if entry["outcome"] != "fail":
                entry.update(outcome="fail", reason=_failure(report))
        elif report.skipped:
            reason = _skip_reason(report)
            if reason.startswith(UNSUPPORTED_PREFIX):
                entry.update(outcome="unsupported", reason=reason.removeprefix(UNSUPPORTED_PREFIX))
            else:
                entry.update(outcome="skipped", reason=reason)
        elif report.when == "call" and entry["outcome"] is None:
            entry["outcome"] = "pass"

    # -- the report ------------------------------------------------------------------------
    def _backends(self) -> list[dict[str, Any]]:
        from polyrl.plugins import library_version

        plugins = _plugin_distributions()
        return [
            {
                "name": info.name,
                "library": info.library,
                "library_version": library_version(info),
                "plugin": plugins.get(info.name),
                "deterministic": info.deterministic,
                "unsupported": dict(info.unsupported),
                "algorithms": sorted(info.algorithms),
            }
            for info in self.cases.backends
        ]

    def _warnings(self) -> list[str]:
        warnings = []
        for info in self.cases.backends:
            unknown = sorted(set(info.unsupported) - set(CHECK_NAMES))
            if unknown:
                warnings.append(
                    f"backend {info.name!r} declares unknown check names as unsupported: {unknown} "
                    f"(known checks: {', '.join(CHECK_NAMES)})"
                )
        return warnings

    def build(self, exit_status: int | None) -> dict[str, Any]:
        """The report of what ran so far."""
        results = [r for r in self.results.values() if r["outcome"] is not None]
        rows = [(c.backend, c.algorithm, c.env.key) for c in self.cases.algorithms]
        seen = {(b, a) for b, a, _ in rows}
        for case in self.cases.fitting + self.cases.mismatched:
            if (case.backend, case.algorithm) not in seen:
                seen.add((case.backend, case.algorithm))
                rows.append((case.backend, case.algorithm, "-"))
        rows = [r for r in rows if any(x["backend"] == r[0] and x["algorithm"] == r[1] for x in results)]
        return build_report(results, self._backends(), rows, self.rules, self._warnings(), exit_status)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write conformance.json and conformance.md when --polyrl-report names a directory."""
        self.report = self.build(int(exitstatus))
        directory = self.config.getoption("polyrl_report")
        if directory:
            write_report(self.report, Path(directory))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Print the matrix (and failures, declared reasons) at the end of the run."""
        if self.report is None or not self.report["results"] or self.config.getoption("polyrl_no_matrix"):
            return
        from rich.console import Console

        buffer = io.StringIO()
        console = Console(
            file=buffer, width=max(self.config.get_terminal_writer().fullwidth, 80), force_terminal=False
        )
        console.print(verdict_line(self.report), markup=False, highlight=False, soft_wrap=True)
        console.print(render_matrix(self.report))
        for line in render_details(self.report):
            console.print(line, markup=False, highlight=False)
        terminalreporter.write_sep("=", "polyrl conformance")
        terminalreporter.write(buffer.getvalue())
        directory = self.config.getoption("polyrl_report")
        if directory:
            terminalreporter.write_line(f"report written to {Path(directory) / 'conformance.md'} and .json")
