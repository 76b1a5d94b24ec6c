"""CSV and JSON-lines loggers and the run.json that reproduces a run, on every backend."""

from __future__ import annotations

import csv

from callbacks_support import Scripted, backend_fixture, make_agent
from polyrl import COMMON_METRICS, Agent, AgentSpec, TrainConfig
from polyrl.callbacks import CSVLogger, JSONLinesLogger, RunConfig, run_loggers

backend = backend_fixture()


def read_csv(path):
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_run_directory_reproduces_the_run(backend, tmp_path):
    agent = make_agent(backend)
    config = TrainConfig(iterations=3, eval_every=0)
    result = agent.train(config, callbacks=run_loggers(tmp_path))

    columns, rows = read_csv(tmp_path / "progress.csv")
    assert columns[: len(COMMON_METRICS)] == list(COMMON_METRICS) and "loss" in columns
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3]
    for row, record in zip(rows, result.records, strict=True):
        assert int(row["env_steps"]) == record.env_steps
        assert float(row["loss"]) == record.losses["loss"]
        assert (float(row["return_mean"]) if row["return_mean"] else None) == record.return_mean

    assert JSONLinesLogger.read(tmp_path / "records.jsonl") == result.records

    run = RunConfig.read(tmp_path)
    assert run.spec == agent.spec and run.train_config == config
    assert run.start_iteration == 0 and run.effective_hyperparameters == agent.effective_hyperparameters()
    # The file alone trains the same way again (both backends here are deterministic).
    again = Agent(AgentSpec.model_validate_json(run.spec.model_dump_json())).train(run.train_config)
    assert [r.return_mean for r in again.records] == [r.return_mean for r in result.records]
    assert [r.env_steps for r in again.records] == [r.env_steps for r in result.records]


def test_csv_grows_columns_and_appends_on_the_next_train(fake_backend, tmp_path):
    agent = make_agent("fake")
    logger = CSVLogger(tmp_path / "log.csv")
    agent.train(iterations=2, callbacks=[Scripted([None, 7.0], name="late"), logger])
    columns, rows = read_csv(tmp_path / "log.csv")
    assert columns[-1] == "late" and [row["late"] for row in rows] == ["", "7.0"]
    agent.train(iterations=2, callbacks=[logger])  # same logger: appends
    columns, rows = read_csv(tmp_path / "log.csv")
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3, 4] and "late" in columns
    agent.train(iterations=1, callbacks=[CSVLogger(tmp_path / "log.csv")])  # a new logger truncates
    assert [int(row["iteration"]) for row in read_csv(tmp_path / "log.csv")[1]] == [5]
