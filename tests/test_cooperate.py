"""polyrl.cooperate: agents on different backends train side by side and share experience."""

from __future__ import annotations

import csv
import json
import re

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
    assert json.loads((tmp_path / "cooperation.json").read_text()) == {
        "rounds": ROUNDS,
        "shared": {"learner": {"explorer": ROUNDS * STEPS}},
        "syncs": 0,
        "agents": {
            "explorer": {
                "backend": "sb3", "algorithm": "ppo", "iterations": ROUNDS, "env_steps": ROUNDS * STEPS,
                "stop_reason": result.results["explorer"].stop_reason,
            },
            "learner": {
                "backend": "tianshou", "algorithm": "dqn", "iterations": ROUNDS, "env_steps": ROUNDS * STEPS,
                "stop_reason": result.results["learner"].stop_reason,
            },
        },
    }  # fmt: skip
    assert result.results["learner"].stop_reason == "iterations reached"
    # The same `out` again: refused before any training, and nothing of the first run is touched.
    progress = (tmp_path / "learner" / "progress.csv").read_bytes()
    with pytest.raises(ConfigurationError) as caught:
        polyrl.cooperate(
            {"explorer": explorer, "learner": learner}, TrainConfig(iterations=1), out=str(tmp_path)
        )
    message = str(caught.value)
    assert "holds an earlier run's files already" in message and "choose another directory" in message
    assert str(tmp_path / "explorer") in message and str(tmp_path / "learner") in message
    assert learner.env_steps == ROUNDS * STEPS and explorer.env_steps == ROUNDS * STEPS
    assert (tmp_path / "learner" / "progress.csv").read_bytes() == progress
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
    with pytest.raises(ExperienceError) as caught:
        polyrl.cooperate({"a": explorer_spec(), "b": other_env}, TrainConfig(iterations=1))
    message = str(caught.value)
    assert "agents 'a' (env CartPole-v1) and 'b' (env Acrobot-v1) do not see the same spaces" in message
    assert "observation_shape: 'b' has [6] where 'a' has [4]" in message
    assert "action_shape" not in message  # both Discrete: only what differs is named
    assert "train every agent on the same env (with the same observation wrappers), or share=False" in message
    assert "this agent" not in message and "record the transitions" not in message


def test_a_follower_unlike_its_leader_is_refused_before_round_one():
    leader, follower = Agent(explorer_spec()), Agent(learner_spec("sb3"))
    with pytest.raises(ExperienceError) as caught:
        polyrl.cooperate(
            {"a": leader, "b": follower}, TrainConfig(iterations=1), follow={"b": "a"}, share=False
        )
    message = str(caught.value)
    assert message.startswith("agent 'b' (sb3/dqn) cannot follow 'a' (sb3/ppo): their parameters' names")
    assert "only 'a' has" in message  # PPO's value head
    assert re.search(r"' is \(256, 256\) in 'b' and \(64, 64\) in 'a'", message)  # the hidden layers
    assert (leader.iterations, leader.env_steps, follower.iterations, follower.env_steps) == (0, 0, 0, 0)
    leader.close(), follower.close()


def test_arguments_of_the_wrong_shape_are_refused_with_what_to_pass():
    agent = Agent(learner_spec("sb3"))
    with pytest.raises(ConfigurationError) as caught:
        polyrl.cooperate({"a": agent, "b": agent}, TrainConfig(iterations=1))
    assert "agents 'a' and 'b' are the same Agent object" in str(caught.value)
    assert agent.env_steps == 0 and agent.replay_size == 0
    with pytest.raises(
        ConfigurationError, match=r"agents must be a mapping name -> Agent or AgentSpec, not a list"
    ):
        polyrl.cooperate([agent, explorer_spec()], TrainConfig(iterations=1))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"agents\['b'\] is a str, not an Agent or AgentSpec"):
        polyrl.cooperate({"a": agent, "b": "sb3/ppo"}, TrainConfig(iterations=1))  # type: ignore[dict-item]
    pair = {"a": agent, "b": explorer_spec()}
    with pytest.raises(ConfigurationError) as caught:
        polyrl.cooperate(pair, {"iterations": 1})  # type: ignore[dict-item]
    message = str(caught.value)
    assert message.startswith("train must be a TrainConfig or a mapping name -> TrainConfig")
    assert "'iterations' is not an agent name (the agents are ['a', 'b'])" in message
    assert "pass TrainConfig(iterations=1)" in message
    with pytest.raises(ConfigurationError, match=r"train\['b'\] is a dict: give each as a TrainConfig"):
        polyrl.cooperate(pair, {"a": TrainConfig(iterations=1), "b": {"iterations": 1}})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match=r"TrainConfigs for \['c'\], which are not agent names"):
        polyrl.cooperate(pair, {name: TrainConfig(iterations=1) for name in "abc"})
    assert agent.env_steps == 0
    agent.close()


COOPERATE_ON_RAY = """
import json, sys
import polyrl
from polyrl import AgentSpec, TrainConfig
explorer, learner = (AgentSpec.model_validate_json(text) for text in sys.argv[1:3])
try:  # a follower unlike its leader: refused before the actors' first step
    polyrl.cooperate(
        {"explorer": explorer, "learner": learner}, TrainConfig(iterations=3),
        address=sys.argv[4], out=sys.argv[3] + "-refused", follow={"learner": "explorer"},
    )
except polyrl.errors.ExperienceError as error:
    print(json.dumps({"refused": str(error)}))
import ray  # this process is connected now: name the cluster as Ray reports it
result = polyrl.cooperate(
    {"explorer": explorer, "learner": learner}, TrainConfig(iterations=3),
    address=ray.get_runtime_context().gcs_address, out=sys.argv[3],
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
    *_, refused, last = done.stdout.strip().splitlines()
    message = json.loads(refused)["refused"]
    assert message.startswith("agent 'learner' (tianshou/dqn) cannot follow 'explorer' (sb3/ppo)")
    for name in ("explorer", "learner"):
        progress = tmp_path / "out-refused" / name / "progress.csv"
        assert not progress.exists() or _rows(progress) == []  # no iteration ran
    result = json.loads(last)
    assert result["rounds"] == ROUNDS
    assert result["shared"] == {"learner": {"explorer": ROUNDS * STEPS}}
    assert {n: r["env_steps"] for n, r in result["results"].items()} == {
        "explorer": ROUNDS * STEPS,
        "learner": ROUNDS * STEPS,
    }
    for name in ("explorer", "learner"):
        assert len(_rows(tmp_path / "out" / name / "progress.csv")) == ROUNDS
        assert (tmp_path / "out" / name / "checkpoint" / "polyrl.json").is_file()
    summary = json.loads((tmp_path / "out" / "cooperation.json").read_text())
    assert (summary["rounds"], summary["shared"], summary["syncs"]) == (ROUNDS, result["shared"], 0)
    assert {n: (a["backend"], a["algorithm"], a["stop_reason"]) for n, a in summary["agents"].items()} == {
        n: (backend, algorithm, result["results"][n]["stop_reason"])
        for n, backend, algorithm in (("explorer", "sb3", "ppo"), ("learner", "tianshou", "dqn"))
    }
    learner = Agent.load(tmp_path / "out" / "learner" / "checkpoint")
    assert learner.replay_size == 2 * ROUNDS * STEPS  # what it collected and what it was given
    learner.close()
