"""Execute one planned run in the current process, and re-run a finished one from its config.json."""

from __future__ import annotations

import time
import traceback
from datetime import datetime
from pathlib import Path

from polyrl.experiments.naming import run_directory
from polyrl.experiments.plan import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    PLOT_FILE,
    PROGRESS_FILE,
    RECORDS_FILE,
    RunPlan,
    RunStatus,
)
from polyrl.redact import redact_uri


def _callbacks(directory: Path) -> list[object]:
    from polyrl.callbacks.loggers import CSVLogger, JSONLinesLogger, RunConfigLogger
    from polyrl.callbacks.plots import PlotCallback

    return [
        RunConfigLogger(directory / CONFIG_FILE),
        CSVLogger(directory / PROGRESS_FILE),
        JSONLinesLogger(directory / RECORDS_FILE),
        PlotCallback(directory / PLOT_FILE, live=False),
    ]


def execute_run(directory: str | Path, plan: RunPlan | None = None) -> RunStatus:
    """Train, save and evaluate the run planned in `directory`; never raises for a failing run.

    Meant to be called in a fresh process (pool worker or Ray task), so no state leaks between
    runs. A failure is recorded in status.json with the error and its traceback; a
    KeyboardInterrupt is recorded as "interrupted" and raised again. `plan` (the one written
    to the directory, still holding an env callable given in this process) replaces reading it.
    """
    directory = Path(directory)
    plan = plan or RunPlan.read(directory)
    status = RunStatus(status="running", directory=str(directory), name=plan.name, variant=plan.variant)
    status.write()
    began = time.perf_counter()
    try:
        from polyrl.agent import Agent

        with Agent(plan.spec) as agent:
            result = agent.train(plan.train_config, callbacks=_callbacks(directory))
            agent.save(directory / CHECKPOINT_DIR, metadata={"run": plan.name, "variant": plan.variant})
            evaluation = agent.evaluate(episodes=plan.eval_episodes) if plan.eval_episodes else None
        returns = [r.return_mean for r in result.records if r.return_mean is not None]
        status = status.model_copy(
            update={
                "status": "done",
                "env_steps": result.env_steps,
                "iterations": result.iterations,
                "final_return_mean": returns[-1] if returns else None,
                "best_return_mean": max(returns) if returns else None,
                "eval_return_mean": evaluation.return_mean if evaluation else None,
                "eval_return_std": evaluation.return_std if evaluation else None,
            }
        )
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: record it, then stop
        status.model_copy(
            update={"status": "interrupted", "wall_seconds": time.perf_counter() - began}
        ).write()
        raise
    except Exception as exc:  # a failing run is reported, never stops its siblings
        error = redact_uri(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        status = status.model_copy(update={"status": "failed", "error": error})
    status = status.model_copy(update={"wall_seconds": time.perf_counter() - began})
    status.write()
    return status


def rerun(directory: str | Path, out: str | Path | None = None) -> RunStatus:
    """Train again exactly as the run in `directory` did (from its config.json), into a new directory.

    On a deterministic backend the new progress.csv has the same statistics (apart from times).
    """
    from polyrl.callbacks.loggers import RunConfig

    source = Path(directory)
    config_path = source / CONFIG_FILE
    if not config_path.is_file():
        from polyrl.errors import ConfigurationError

        raise ConfigurationError(
            f"{source} holds no {CONFIG_FILE}; give a run directory written by `polyrl grid` or an "
            "ExperimentGrid (it holds config.json, progress.csv and checkpoint/)"
        )
    run = RunConfig.read(config_path)
    if run.start_iteration:
        from polyrl.errors import ConfigurationError

        raise ConfigurationError(
            f"the run in {source} continued an agent that had {run.start_iteration} iterations already; "
            "re-running it needs that starting checkpoint, which config.json does not hold"
        )
    previous = RunPlan.read(source) if (source / "plan.json").is_file() else None
    plan = RunPlan(
        name=previous.name if previous else source.name,
        variant=previous.variant if previous else {},
        spec=run.spec,
        train_config=run.train_config,
        eval_episodes=previous.eval_episodes if previous else 10,
    )
    target = (
        Path(out)
        if out
        else run_directory(source.parent, f"{plan.name}_rerun", run.spec.seed, datetime.now())
    )
    plan.write(target)
    return execute_run(target)
