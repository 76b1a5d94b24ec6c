"""The Evaluation schedule: eval_* statistics in their own names, seen by every callback."""

from __future__ import annotations

from callbacks_support import backend_fixture, make_agent
from polyrl.callbacks import Evaluation, ModelCheckpoint

backend = backend_fixture()


def test_evaluation_every_n_iterations_with_its_own_seed(backend, tmp_path):
    agent = make_agent(backend)
    # The checkpoint comes first in the list yet sees the evaluation of the same iteration.
    checkpoint = ModelCheckpoint(tmp_path, monitor="eval_return", save_best_only=True)
    evaluation = Evaluation(every=2, episodes=2, max_steps=30, seed=123)
    result = agent.train(iterations=4, callbacks=[checkpoint, evaluation])

    evaluated = [r.iteration for r in result.records if "eval_return_mean" in r.metrics]
    assert evaluated == [2, 4]
    assert [e["iteration"] for e in result.evaluations] == [2, 4]
    assert evaluation.results == result.evaluations
    for record in result.records:
        if record.iteration in evaluated:
            assert set(record.metrics) >= {
                "eval_return_mean",
                "eval_return_std",
                "eval_return_min",
                "eval_return_max",
                "eval_length_mean",
            }
            assert record.metrics["eval_return_mean"] <= 30.0  # CartPole: 1 per step, max_steps 30
    assert checkpoint.best_iteration in (2, 4)
    assert checkpoint.best_value == max(e["eval_return_mean"] for e in result.evaluations)
    # Deterministic play with the same seed in a fresh env gives the last evaluation again.
    again = agent.evaluate(episodes=2, max_steps=30, seed=123)
    assert again.return_mean == result.evaluations[-1]["eval_return_mean"]


def test_final_evaluation(fake_backend):
    agent = make_agent("fake")
    evaluation = Evaluation(every=5, episodes=3, final=True, max_steps=10)
    result = agent.train(iterations=2, callbacks=[evaluation])
    assert result.evaluations == [] and evaluation.results == []
    assert evaluation.final_result is not None and len(evaluation.final_result.episodes) == 3
