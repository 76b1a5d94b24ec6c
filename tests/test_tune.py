"""`polyrl.tune` on the "tunable" fake backend (tests/tune_backend.py): the loop, pruning, failures,
storage, resume, results and the comparison across backends, all in this process.

The backend balances CartPole (episodes cut at 50 steps) when the learning rate is >= 0.01 and
scores about 9 otherwise, so the learning rate decides a trial's value.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import polyrl
import pytest
from polyrl.cli.app import build_documents
from polyrl.experiments.plan import RunPlan, RunStatus
from polyrl.experiments.results import find_runs, group_runs, summarize
from polyrl.experiments.runner import rerun
from polyrl.tuning import study as study_module
from polyrl.tuning.study import distinct_seeds, make_storage

optuna = pytest.importorskip("optuna")

from tune_backend import INTERRUPT_VARIABLE, plugin  # noqa: E402 - after the skip: the module is the test's plugin

BASE = {
    "backend": "tunable",
    "algorithm": "linear",
    "env": "CartPole-v1",
    "env_kwargs": {"max_episode_steps": 50},
    "iteration_steps": 100,
}
GOOD, BAD = 0.1, 0.001
SMALL = {"steps": 300, "eval_every": 100, "eval_episodes": 2, "fresh_seeds": 0, "sampler": "random"}
RUN_FILES = {"plan.json", "config.json", "progress.csv", "records.jsonl", "status.json", "checkpoint"}


@pytest.fixture(autouse=True)
def tunable():
    """Register the tunable backends for one test."""
    polyrl.registry().register(plugin, name="tune-test-plugin")
    try:
        yield "tunable"
    finally:
        polyrl.registry().unregister(plugin)


def quiet(_text: str) -> None:
    """Trial lines are not the subject of these tests."""


def run(out: Path, space: dict | None = None, **settings):
    options = {**SMALL, "pruner": "none", **settings}
    return polyrl.tune(
        "t", BASE, space or {"learning_rate": {"categorical": [BAD, GOOD]}}, out=out, report=quiet, **options
    )


def trials(out: Path, name: str = "t") -> list:
    storage = make_storage(f"sqlite:///{out / 'study.db'}")
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def test_a_study_writes_a_run_directory_per_trial_and_seed_and_its_results(tmp_path):
    report = run(tmp_path, trials=3, seeds=2, fresh_seeds=2)
    (summary,) = report.studies
    assert summary.counts.total == 3 and summary.counts.complete == 3
    directories = sorted((tmp_path / "trials").iterdir())
    assert len(directories) == 6 and {p.name.split("-")[0] for p in directories} == {"0000", "0001", "0002"}
    for directory in directories:
        assert {p.name for p in directory.iterdir()} >= RUN_FILES
        status = RunStatus.read(directory)
        assert status.status == "done" and status.env_steps == 300 and status.eval_return_mean is not None
        header = (directory / "progress.csv").read_text().splitlines()[0]
        assert "eval_return_mean" in header.split(",")
    # The objective is the mean over the trial's seeds of their last evaluation.
    for trial in trials(tmp_path):
        finals = [RunStatus.read(tmp_path / d).eval_return_mean for d in trial.user_attrs["directories"]]
        assert trial.value == pytest.approx(sum(finals) / 2)
        assert sorted(trial.intermediate_values) == [100, 200, 300]
    # The best trial is a good one; its spec is best.json, which `polyrl train --spec` reads.
    assert summary.best.params["learning_rate"] == GOOD and summary.best.value == 50.0
    spec, _ = build_documents(Path(summary.best_spec), None, {"total_steps": 100}, [])
    assert spec.learning_rate == GOOD and spec.backend == "tunable" and spec.env_kwargs == BASE["env_kwargs"]
    # Fresh seeds: never a trial's, each a finished run; their mean and std are in the summary.
    fresh = summary.fresh
    used = {seed for trial in trials(tmp_path) for seed in trial.user_attrs["seeds"]}
    assert len(fresh.seeds) == 2 and not set(fresh.seeds) & used
    assert fresh.returns == [50.0, 50.0] and fresh.mean == 50.0 and fresh.std == 0.0
    assert all(RunStatus.read(tmp_path / d).status == "done" for d in fresh.directories)
    for plot in summary.plots:
        assert Path(plot).read_bytes()[:4] == b"\x89PNG"
    assert (
        json.loads((tmp_path / "report.json").read_text())["studies"][0]["best"]["number"]
        == summary.best.number
    )
    assert summary.dashboard == f"optuna-dashboard sqlite:///{tmp_path / 'study.db'}"


def test_compare_and_rerun_read_trials_like_grid_runs(tmp_path):
    run(tmp_path, trials=2)
    runs = find_runs([tmp_path])
    assert len(runs) == 2
    rows = [
        summarize(label, members, "return_mean")
        for label, members in group_runs(runs, ["learning_rate"]).items()
    ]
    assert sum(row["runs"] for row in rows) == 2 and all(row["eval_mean"] is not None for row in rows)
    trial_dir = next((tmp_path / "trials").iterdir())
    again = rerun(trial_dir, tmp_path / "again")
    assert again.status == "done" and again.env_steps == RunStatus.read(trial_dir).env_steps


def test_trial_seeds_are_reproducible_and_differ_between_trials(tmp_path):
    run(tmp_path / "a", trials=3, seeds=2)
    run(tmp_path / "b", trials=3, seeds=2)
    first = [t.user_attrs["seeds"] for t in trials(tmp_path / "a")]
    assert first == [t.user_attrs["seeds"] for t in trials(tmp_path / "b")]  # same study seed, same seeds
    flat = [seed for seeds in first for seed in seeds]
    assert len(set(flat)) == 6
    assert distinct_seeds(1, (1, 0), 2, set()) != first[0]  # another study seed, other seeds


def test_a_bad_trial_is_pruned_at_its_first_evaluation(tmp_path):
    report = run(tmp_path, trials=6, pruner="median", startup_trials=1, warmup_steps=0, study_seed=3)
    rows = {t.number: t for t in trials(tmp_path)}
    states = [(t.params["learning_rate"], t.state.name) for _, t in sorted(rows.items())]
    first_good = next(i for i, (rate, state) in enumerate(states) if rate == GOOD and state == "COMPLETE")
    later_bad = [i for i, (rate, _) in enumerate(states) if rate == BAD and i > first_good]
    assert later_bad, f"study seed 3 should draw a bad trial after a good one: {states}"
    for number in later_bad:
        trial = rows[number]
        assert trial.state.name == "PRUNED"
        assert trial.user_attrs["pruned_step"] == 100 and trial.user_attrs["pruned_value"] <= 10
        assert list(trial.intermediate_values) == [100]
        (directory,) = trial.user_attrs["directories"]
        status = RunStatus.read(tmp_path / directory)
        assert status.status == "pruned" and status.env_steps == 100
    assert all(state == "COMPLETE" for rate, state in states if rate == GOOD)  # good trials run to the end
    assert report.studies[0].counts.pruned == len([s for _, s in states if s == "PRUNED"]) >= 1


def test_the_mean_objective_is_the_running_mean_of_the_evaluations(tmp_path):
    run(tmp_path, trials=2, objective="mean")
    for trial in trials(tmp_path):
        steps = sorted(trial.intermediate_values)
        assert steps == [100, 200, 300]
        # Each report is the mean of the evaluations so far; the last one is the objective.
        reported = [trial.intermediate_values[s] for s in steps]
        assert trial.value == pytest.approx(reported[-1])
        evaluations = [reported[0], 2 * reported[1] - reported[0], 3 * reported[2] - 2 * reported[1]]
        assert trial.value == pytest.approx(sum(evaluations) / 3)
        (directory,) = trial.user_attrs["directories"]
        assert RunStatus.read(tmp_path / directory).eval_return_mean == pytest.approx(evaluations[-1])


def test_a_trial_is_never_pruned_at_its_last_evaluation(tmp_path):
    # One evaluation per trial (at the budget's end): the bad trials the test above prunes at
    # 100 steps here finish their budget, so their objective is recorded, not thrown away.
    run(tmp_path, trials=6, pruner="median", startup_trials=1, warmup_steps=0, study_seed=3, steps=100)
    states = [(t.params["learning_rate"], t.state.name) for t in trials(tmp_path)]
    assert {rate for rate, _ in states} == {BAD, GOOD}
    assert all(state == "COMPLETE" for _, state in states)


def test_a_failing_trial_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path):
    space = {
        "backend_options.explode": {"categorical": [True, False]},
        "learning_rate": {"float": [0.05, 0.2]},
    }
    report = run(tmp_path, space, trials=4, study_seed=1)
    (summary,) = report.studies
    assert summary.counts.total == 4 and summary.counts.failed >= 1 and summary.counts.complete >= 1
    for row in summary.failed:
        assert row.params["backend_options.explode"] is True
        assert row.reason == "FloatingPointError: the loss became NaN (backend_options.explode)"
        status = RunStatus.read(tmp_path / row.directories[0])
        assert status.status == "failed" and "FloatingPointError" in status.error
    failed = [t for t in trials(tmp_path) if t.state.name == "FAIL"]
    assert [t.user_attrs["failure"] for t in failed] == [row.reason for row in summary.failed]


def test_resume_continues_the_study_and_a_second_start_is_refused(tmp_path):
    run(tmp_path, trials=2)
    before = [(t.number, t.params, t.user_attrs["directories"]) for t in trials(tmp_path)]
    database = (tmp_path / "study.db").stat().st_mtime_ns
    with pytest.raises(
        polyrl.errors.StudyError, match="holds the tuning run 't' already; continue it with --resume"
    ):
        run(tmp_path, trials=2)
    assert (tmp_path / "study.db").stat().st_mtime_ns == database  # nothing was touched
    with pytest.raises(polyrl.errors.StudyError, match=r"steps=400 \(planned: 300\)"):
        polyrl.tune("t", out=tmp_path, resume=True, steps=400, report=quiet)
    report = polyrl.tune("t", out=tmp_path, resume=True, trials=4, report=quiet)
    after = trials(tmp_path)
    assert [t.number for t in after] == [0, 1, 2, 3] and report.studies[0].counts.complete == 4
    assert [(t.number, t.params, t.user_attrs["directories"]) for t in after[:2]] == before
    with pytest.raises(polyrl.errors.StudyError, match="holds the tuning run 't', not 'u'"):
        polyrl.tune("u", out=tmp_path, resume=True, report=quiet)
    with pytest.raises(polyrl.errors.StudyError, match="no tuning run to resume"):
        polyrl.tune("u", out=tmp_path / "none", resume=True, report=quiet)


def test_a_crashed_trial_is_failed_on_resume_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(study_module, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(study_module, "GRACE_SECONDS", 1)
    run(tmp_path, trials=1)
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for optimize()
        warnings.simplefilter("ignore")
        crashed = optuna.load_study(study_name="t", storage=storage).ask()  # a worker that then died
    storage.record_heartbeat(crashed._trial_id)
    time.sleep(2.5)  # SQLite's clock counts whole seconds: more than the 1 s grace period for sure
    report = polyrl.tune("t", out=tmp_path, resume=True, trials=2, report=quiet)
    counts = report.studies[0].counts
    assert (counts.complete, counts.interrupted, counts.total) == (2, 1, 3)
    assert trials(tmp_path)[crashed.number].state.name == "FAIL"


def test_an_interrupted_trial_does_not_count_and_resume_replaces_it(tmp_path, monkeypatch):
    run(tmp_path, trials=1)
    monkeypatch.setenv(INTERRUPT_VARIABLE, "1")
    with pytest.raises(KeyboardInterrupt):
        polyrl.tune("t", out=tmp_path, resume=True, trials=2, report=quiet)
    stopped = trials(tmp_path)[1]
    assert stopped.state.name == "FAIL" and stopped.user_attrs["interrupted"] is True
    assert RunStatus.read(tmp_path / stopped.user_attrs["directories"][0]).status == "interrupted"
    monkeypatch.delenv(INTERRUPT_VARIABLE)
    counts = polyrl.tune("t", out=tmp_path, resume=True, trials=2, report=quiet).studies[0].counts
    assert (counts.complete, counts.interrupted, counts.total) == (2, 1, 3)


def test_several_backends_run_one_study_each_and_are_compared(tmp_path):
    report = run(tmp_path, trials=2, backends=["tunable", "tunable_b"])
    assert [s.study for s in report.studies] == ["t-tunable", "t-tunable_b"]
    for summary in report.studies:
        assert Path(summary.directory) == tmp_path / summary.backend
        assert len(list((tmp_path / summary.backend / "trials").iterdir())) == 2
        assert (tmp_path / summary.backend / "best.json").is_file() or summary.best is None
    assert [(row.backend, row.complete) for row in report.comparison] == [("tunable", 2), ("tunable_b", 2)]
    assert all(row.wall_seconds > 0 for row in report.comparison)
    assert {t.number for t in trials(tmp_path, "t-tunable")} == {0, 1}


def test_trials_follow_the_base_spec_and_the_space_only(tmp_path):
    run(tmp_path, {"gamma": {"float": [0.9, 0.95]}}, trials=2)
    for directory in (tmp_path / "trials").iterdir():
        spec = RunPlan.read(directory).spec
        assert 0.9 <= spec.gamma <= 0.95 and spec.iteration_steps == 100 and spec.backend == "tunable"


def test_an_env_callable_works_for_trials_and_fresh_seeds_in_process(tmp_path):
    import gymnasium as gym

    spec = {**BASE, "env": lambda **kwargs: gym.make("CartPole-v1", **kwargs)}  # importable by no name
    report = polyrl.tune(
        "t", spec, {"learning_rate": {"categorical": [GOOD]}}, out=tmp_path, report=quiet,
        **{**SMALL, "fresh_seeds": 1}, trials=1, pruner="none",
    )  # fmt: skip
    (summary,) = report.studies
    assert summary.counts.complete == 1 and summary.fresh.returns == [50.0]


def test_import_polyrl_does_not_import_optuna():
    import subprocess
    import sys

    code = "import sys, polyrl; print('optuna' in sys.modules, callable(polyrl.tune))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]


# -- what is searched, what is fixed, and what is checked before the first trial --------------------


def test_the_report_names_the_searched_and_the_fixed_fields(tmp_path):
    lines: list[str] = []
    report = polyrl.tune("t", BASE, {"learning_rate": {"categorical": [BAD, GOOD]}}, out=tmp_path,
                         report=lines.append, **SMALL, trials=1, pruner="none")  # fmt: skip
    assert report.searched == ["learning_rate"]
    assert report.fixed == ["env_kwargs.max_episode_steps", "iteration_steps"]
    assert lines[0] == "searched: learning_rate; fixed by you: env_kwargs.max_episode_steps, iteration_steps"
    assert lines[1].startswith("trial 0:")  # said before the first trial
    stored = json.loads((tmp_path / "report.json").read_text())
    assert (stored["searched"], stored["fixed"], stored["warnings"]) == (report.searched, report.fixed, [])


def test_a_field_fixed_by_the_user_is_left_out_of_the_ready_space(tmp_path, monkeypatch):
    ready = {"learning_rate": {"categorical": [BAD, GOOD]}, "iteration_steps": {"categorical": [50, 150]}}
    monkeypatch.setitem(polyrl.tuning.READY_SPACES, "linear", ready)
    report = polyrl.tune("t", BASE, out=tmp_path, report=quiet, **SMALL, trials=3, pruner="none")
    assert report.searched == ["learning_rate"] and "iteration_steps" in report.fixed
    for directory in (tmp_path / "trials").iterdir():
        assert RunPlan.read(directory).spec.iteration_steps == 100  # the user's value, in every trial
    assert all(row.iteration_steps == 100 for row in report.studies[0].top)


def test_a_misspelt_backend_option_is_refused_before_any_trial(tmp_path):
    out = tmp_path / "study"
    space = {
        "backend_options.explod": {"categorical": [True, False]},
        "learning_rate": {"float": [0.05, 0.2]},
    }
    with pytest.raises(polyrl.errors.SearchSpaceError) as caught:
        polyrl.tune("t", BASE, space, out=out, report=quiet, **SMALL)
    message = str(caught.value)
    assert message.startswith("backend_options.explod: the tunable backend refused it")
    assert "('explod': did you mean ['explode']?)" in message  # the backend's own words
    with pytest.raises(polyrl.errors.SearchSpaceError, match=r"^backend_options\.slep: "):
        polyrl.tune("t", {**BASE, "backend_options": {"slep": 1}}, {"learning_rate": {"float": [0.05, 0.2]}},
                    out=out, report=quiet, **SMALL)  # fmt: skip
    assert not out.exists()


def test_the_backend_option_check_builds_an_agent_only_when_options_are_given(monkeypatch):
    import polyrl.agent
    from polyrl.tuning.api import plan_tuning

    built: list[polyrl.AgentSpec] = []

    class Recording(polyrl.agent.Agent):
        def __init__(self, spec: polyrl.AgentSpec) -> None:
            built.append(spec)
            super().__init__(spec)

    monkeypatch.setattr(polyrl.agent, "Agent", Recording)
    settings = polyrl.tuning.TuneSettings()
    plan_tuning("t", BASE, {"learning_rate": {"float": [0.05, 0.2]}}, None, settings, None)
    assert built == []  # no option: no agent (on rllib a build starts Ray)
    space = {"backend_options.sleep": {"categorical": [0.0, 0.1]}, "learning_rate": {"float": [0.05, 0.2]}}
    plan_tuning("t", BASE, space, ["tunable", "tunable_b"], settings, None)
    assert [(spec.backend, spec.backend_options) for spec in built] == [
        ("tunable", {"sleep": 0.0}),
        ("tunable_b", {"sleep": 0.0}),
    ]


def test_an_iteration_larger_than_the_steps_is_warned_of_in_the_first_trial(tmp_path):
    events: list[tuple[str, str]] = []
    base = {key: value for key, value in BASE.items() if key != "iteration_steps"}
    space = {"learning_rate": {"categorical": [GOOD]}, "iteration_steps": {"categorical": [400]}}
    report = polyrl.tune(
        "t", base, space, out=tmp_path, **{**SMALL, "pruner": "none"}, trials=2,
        report=lambda text: events.append(("say", text)), warn=lambda text: events.append(("warn", text)),
    )  # fmt: skip
    warned = [text for kind, text in events if kind == "warn"]
    assert len(warned) == 1  # once per study
    assert warned[0].startswith(
        "warning: trial 0 of study t: 400 env steps per iteration is more than --steps 300"
    )
    assert "--iteration-steps" in warned[0]
    assert events.index(("warn", warned[0])) < next(
        i for i, (_, text) in enumerate(events) if "trial 0:" in text
    )
    (warning,) = report.warnings
    assert warning.startswith(
        "study t: 2 of 2 trials (trial 0, 1) collected up to 400 env steps per iteration"
    )
    assert [row.iteration_steps for row in report.studies[0].top] == [400, 400]
    assert {RunStatus.read(d).env_steps for d in (tmp_path / "trials").iterdir()} == {400}


def test_a_fixed_iteration_larger_than_eval_every_is_warned_of_before_any_trial(tmp_path):
    events: list[tuple[str, str]] = []
    polyrl.tune(
        "t", {**BASE, "iteration_steps": 250}, {"learning_rate": {"categorical": [GOOD]}}, out=tmp_path,
        **{**SMALL, "pruner": "none"}, trials=1,
        report=lambda text: events.append(("say", text)), warn=lambda text: events.append(("warn", text)),
    )  # fmt: skip
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["say", "warn"] and kinds.count("warn") == 1  # the trial's own check stays quiet
    assert events[1][1].startswith("warning: iteration_steps is fixed at 250: 250 env steps per iteration is "
                                   "more than --eval-every 100")  # fmt: skip


def test_when_every_trial_fails_no_plot_is_written(tmp_path):
    failing = polyrl.tune(
        "f", {**BASE, "backend_options": {"explode": True}}, {"learning_rate": {"float": [0.05, 0.2]}},
        out=tmp_path, report=quiet, **{**SMALL, "pruner": "none"}, trials=2,
    )  # fmt: skip
    (summary,) = failing.studies
    assert (summary.counts.failed, summary.counts.total, summary.best) == (2, 2, None)
    assert summary.plots == [] and not list(tmp_path.glob("*.png"))


def test_resume_names_the_fields_that_differ_from_the_plan(tmp_path):
    space = {"learning_rate": {"categorical": [BAD, GOOD]}}
    run(tmp_path, space, trials=1)
    with pytest.raises(polyrl.errors.StudyError) as caught:
        polyrl.tune(
            "t", {**BASE, "iteration_steps": 200, "gamma": 0.9}, out=tmp_path, resume=True, report=quiet
        )
    message = str(caught.value)
    assert "iteration_steps: 200 (planned: 100)" in message and "gamma: 0.9 (planned: null)" in message
    assert "env_kwargs" not in message and "backend" not in message.split("given", 1)[1]  # only what differs
    with pytest.raises(polyrl.errors.StudyError) as caught:
        polyrl.tune(
            "t", out=tmp_path, resume=True, report=quiet, space={"learning_rate": {"categorical": [GOOD]}}
        )
    assert (
        'the space\'s learning_rate: {"categorical": [0.1]} (planned: {"categorical": [0.001, 0.1]})'
        in str(caught.value)
    )
    with pytest.raises(polyrl.errors.StudyError, match="--study-seed 3"):
        polyrl.tune("t", {**BASE, "seed": 3}, out=tmp_path, resume=True, report=quiet)
    # The plan's own spec and space given again are no difference.
    again = polyrl.tune("t", BASE, space, out=tmp_path, resume=True, trials=2, report=quiet)
    assert again.studies[0].counts.complete == 2
