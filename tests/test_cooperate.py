"""polyrl.cooperate: agents on different backends train side by side and share experience."""

from __future__ import annotations

import csv
import json

import numpy as np
import polyrl
import pytest
from polyrl import Agent, AgentSpec, TrainConfig
from polyrl.errors import ConfigurationError, ExperienceError

pytest.importorskip("stable_baselines3")
pytest.importorskip("tianshou")

STEPS = 64  # env steps per iteration of every agent here
ROUNDS = 3


def explorer_spec(**fields) -> AgentSpec:
    """An on-policy explorer: SB3 PPO, 64 steps per iteration."""
    return AgentSpec(
        backend="sb3",
        algorithm="ppo",
        env="CartPole-v1",
        seed=0,
        iteration_steps=STEPS,
        batch_size=32,
        **fields,
    )


def learner_spec(backend: str = "tianshou", seed: int = 1) -> AgentSpec:
    """An off-policy learner whose updates start late (the buffer is what the tests read)."""
    return AgentSpec(
        backend=backend,
        algorithm="dqn",
        env="CartPole-v1",
        seed=seed,
        iteration_steps=STEPS,
        batch_size=32,
        dqn={"buffer_size": 5_000, "learning_starts": 10_000, "train_freq": 4, "gradient_steps": 1},
    )


def _rows(path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_the_learner_takes_the_explorers_transitions_and_each_keeps_its_run_directory(tmp_path):
    explorer, learner = Agent(explorer_spec()), Agent(learner_spec())
    result = polyrl.cooperate(
        {"explorer": explorer, "learner": learner}, TrainConfig(iterations=ROUNDS), out=str(tmp_path)
    )
    assert result.rounds == ROUNDS
    # PPO takes no external transitions: only the learner appears as a taker.
    assert result.shared == {"learner": {"explorer": ROUNDS * STEPS}}
    assert learner.env_steps == ROUNDS * STEPS and explorer.env_steps == ROUNDS * STEPS
    assert learner.replay_size == 2 * ROUNDS * STEPS  # its own rows and the explorer's
    assert {name: r.iterations for name, r in result.results.items()} == {
        "explorer": ROUNDS,
        "learner": ROUNDS,
    }
    for name in ("explorer", "learner"):
        rows = _rows(tmp_path / name / "progress.csv")
        assert [int(r["env_steps"]) for r in rows] == [STEPS * (i + 1) for i in range(ROUNDS)]
        assert json.loads((tmp_path / name / "run.json").read_text())["spec"]["backend"] == (
            "sb3" if name == "explorer" else "tianshou"
        )
    explorer.close(), learner.close()


def test_sharing_off_leaves_every_buffer_to_its_own_agent():
    learner = Agent(learner_spec())
    result = polyrl.cooperate(
        {"explorer": explorer_spec(), "learner": learner}, TrainConfig(iterations=2), share=False
    )
    assert result.shared == {} and learner.replay_size == 2 * STEPS
    learner.close()


def test_a_follower_copies_the_leaders_parameters_every_round():
    leader, follower = Agent(learner_spec("sb3", seed=3)), Agent(learner_spec("sb3", seed=4))
    before = follower.parameters()
    result = polyrl.cooperate(
        {"leader": leader, "follower": follower}, TrainConfig(iterations=2), follow={"follower": "leader"}
    )
    assert result.syncs == 2
    after, lead = follower.parameters(), leader.parameters()
    assert after.keys() == lead.keys()
    assert all(np.array_equal(after[k], lead[k]) for k in lead)
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    leader.close(), follower.close()


def test_plans_that_cannot_run_are_refused_before_training():
    with pytest.raises(ConfigurationError, match="at least two agents"):
        polyrl.cooperate({"only": explorer_spec()}, TrainConfig(iterations=1))
    with pytest.raises(ConfigurationError, match="no agent named"):
        polyrl.cooperate(
            {"a": explorer_spec(), "b": learner_spec()}, TrainConfig(iterations=1), follow={"c": "a"}
        )
    other_env = learner_spec().model_copy(update={"env": "Acrobot-v1"})
    with pytest.raises(ExperienceError, match="does not fit"):
        polyrl.cooperate({"a": explorer_spec(), "b": other_env}, TrainConfig(iterations=1))
    with pytest.raises(ExperienceError, match="cannot"):
        polyrl.cooperate(
            {"a": explorer_spec(), "b": learner_spec("sb3")}, TrainConfig(iterations=1), follow={"b": "a"}
        )


COOPERATE_ON_RAY = """
import json, sys
import polyrl
from polyrl import AgentSpec, TrainConfig
explorer, learner = (AgentSpec.model_validate_json(text) for text in sys.argv[1:3])
result = polyrl.cooperate(
    {"explorer": explorer, "learner": learner}, TrainConfig(iterations=3),
    address=sys.argv[4], out=sys.argv[3],
)
print(result.model_dump_json())
"""


def test_on_a_ray_cluster_each_agent_is_an_actor_and_the_exchange_is_the_same(ray_head, tmp_path):
    """A local head node; the client in a fresh process (Ray's connection is per process)."""
    import os
    import subprocess
    import sys

    from ray_support import NO_TOKEN_AUTH

    pytest.importorskip("ray")
    script = tmp_path / "cooperate.py"
    script.write_text(COOPERATE_ON_RAY)
    command = [
        sys.executable, str(script), explorer_spec().model_dump_json(), learner_spec().model_dump_json(),
        str(tmp_path / "out"), ray_head,
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**NO_TOKEN_AUTH, "CI": "true"},
        cwd=os.getcwd(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rounds"] == ROUNDS
    assert result["shared"] == {"learner": {"explorer": ROUNDS * STEPS}}
    assert {n: r["env_steps"] for n, r in result["results"].items()} == {
        "explorer": ROUNDS * STEPS,
        "learner": ROUNDS * STEPS,
    }
    for name in ("explorer", "learner"):
        assert len(_rows(tmp_path / "out" / name / "progress.csv")) == ROUNDS
        assert (tmp_path / "out" / name / "checkpoint" / "polyrl.json").is_file()
    learner = Agent.load(tmp_path / "out" / "learner" / "checkpoint")
    assert learner.replay_size == 2 * ROUNDS * STEPS  # what it collected and what it was given
    learner.close()
