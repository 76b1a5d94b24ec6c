"""Does shared experience help? Learner env steps to a return threshold, three ways.

    python benchmarks/experience.py --task pendulum --seeds 0 1 2 --out benchmarks/results/experience
    python benchmarks/experience.py --task cartpole --seeds 0 1 2 --out benchmarks/results/experience

For each task, an off-policy learner (nothing set but backend, algorithm, env and seed: its
preset) is trained three ways, each seed evaluated deterministically (10 episodes) after every
iteration and stopped at the threshold:

- alone: the learner by itself;
- prefill: the learner created with `prefill=` a dataset recorded (stochastic play,
  `play(record=...)`) from an expert agent trained once, before the arms, on seed 100;
- explorer: the learner cooperating (`polyrl.cooperate`) with a PPO explorer on another
  backend, taking the explorer's transitions every round; the explorer's env steps are
  reported beside the learner's (they are experience the learner did not collect itself).

A seed's count is the learner's env steps at the first evaluation reaching the threshold (None:
not within the budget). Writes TASK.json (every run) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import polyrl
from polyrl import Agent, AgentSpec, TrainConfig
from polyrl.callbacks import EarlyStopping

TASKS: dict[str, dict[str, Any]] = {
    "pendulum": {
        "env": "Pendulum-v1",
        "learner": {"backend": "sb3", "algorithm": "sac"},
        "explorer": {"backend": "tianshou", "algorithm": "ppo"},
        "expert": {"backend": "sb3", "algorithm": "sac", "steps": 8_000},
        "record_episodes": 20,  # 4,000 transitions
        "threshold": -200.0,
        "budget": 20_000,
    },
    "cartpole": {
        "env": "CartPole-v1",
        "learner": {"backend": "sb3", "algorithm": "dqn"},
        "explorer": {"backend": "tianshou", "algorithm": "ppo"},
        "expert": {"backend": "tianshou", "algorithm": "ppo", "steps": 20_000},
        "record_episodes": 20,  # up to 10,000 transitions
        "threshold": 475.0,
        "budget": 50_000,
    },
}
EVAL_EPISODES, EVAL_SEED, EXPERT_SEED = 10, 1_000, 100


def _train_config(task: dict[str, Any]) -> TrainConfig:
    return TrainConfig(
        total_steps=task["budget"], eval_every=1, eval_episodes=EVAL_EPISODES, eval_seed=EVAL_SEED
    )


def _stopper(task: dict[str, Any]) -> EarlyStopping:
    return EarlyStopping(monitor="eval_return_mean", target=task["threshold"], patience=None)


def _reached(evaluations: list[dict[str, Any]], threshold: float) -> int | None:
    for evaluation in evaluations:
        mean = evaluation.get("eval_return_mean")
        if mean is not None and mean >= threshold:
            return int(evaluation["env_steps"])
    return None


def record_dataset(name: str, task: dict[str, Any], out: Path) -> Path:
    """Train the expert once and record its stochastic play; reuse the file when it exists."""
    path = out / f"{name}-expert.npz"
    if path.exists():
        return path
    expert = task["expert"]
    spec = AgentSpec(
        backend=expert["backend"], algorithm=expert["algorithm"], env=task["env"], seed=EXPERT_SEED
    )
    with Agent(spec) as agent:
        agent.train(total_steps=expert["steps"])
        agent.play(episodes=task["record_episodes"], deterministic=False, record=str(path))
    return path


def run_arm(arm: str, task: dict[str, Any], seed: int, dataset: Path) -> dict[str, Any]:
    """One seed of one arm: the learner's env steps to the threshold, and what else it saw."""
    learner = AgentSpec(env=task["env"], seed=seed, **task["learner"])
    found: dict[str, Any] = {"arm": arm, "seed": seed}
    if arm == "explorer":
        explorer = AgentSpec(env=task["env"], seed=seed + 50, **task["explorer"])
        result = polyrl.cooperate(
            {"learner": learner, "explorer": explorer},
            {"learner": _train_config(task), "explorer": TrainConfig(total_steps=task["budget"] * 10)},
            callbacks={"learner": [_stopper(task)]},
            until=["learner"],
        )
        mine, theirs = result.results["learner"], result.results["explorer"]
        found.update(explorer_steps=theirs.env_steps, shared=result.shared.get("learner", {}))
    else:
        spec = learner.model_copy(update={"prefill": str(dataset)}) if arm == "prefill" else learner
        with Agent(spec) as agent:
            mine = agent.train(_train_config(task), callbacks=[_stopper(task)])
            if arm == "prefill":
                found["prefilled"] = agent.replay_size - agent.env_steps
    found.update(
        steps_to_threshold=_reached(mine.evaluations, task["threshold"]),
        learner_steps=mine.env_steps,
        best_eval=max((e["eval_return_mean"] for e in mine.evaluations), default=None),
    )
    return found


def table(name: str, task: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """A Markdown table: per arm, seeds solved, mean steps (solved seeds), per-seed steps."""
    learner, explorer = task["learner"], task["explorer"]
    lines = [
        f"{name}: {learner['backend']} {learner['algorithm']} learner on {task['env']}, threshold "
        f"{task['threshold']:g}, budget {task['budget']:,} learner steps",
        "",
        "| arm | solved | learner steps to threshold (mean) | per seed | other experience |",
        "| --- | :---: | ---: | --- | --- |",
    ]
    for arm in ("alone", "prefill", "explorer"):
        mine = [r for r in runs if r["arm"] == arm]
        steps = [r["steps_to_threshold"] for r in mine]
        solved = [s for s in steps if s is not None]
        mean = f"{statistics.mean(solved):,.0f}" if solved else "never"
        per_seed = ", ".join("never" if s is None else f"{s:,}" for s in steps)
        if arm == "prefill":
            other = f"{mine[0].get('prefilled', 0):,} recorded transitions" if mine else ""
        elif arm == "explorer":
            other = (
                f"{explorer['backend']} {explorer['algorithm']}: "
                + ", ".join(f"{r['explorer_steps']:,}" for r in mine)
                + " steps"
            )
        else:
            other = "-"
        lines.append(f"| {arm} | {len(solved)}/{len(steps)} | {mean} | {per_seed} | {other} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=["alone", "prefill", "explorer"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/experience"))
    args = parser.parse_args()
    task = TASKS[args.task]
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = record_dataset(args.task, task, args.out)
    results = args.out / f"{args.task}.json"
    runs: list[dict[str, Any]] = json.loads(results.read_text()) if results.exists() else []
    for arm in args.arms:
        for seed in args.seeds:
            runs = [r for r in runs if (r["arm"], r["seed"]) != (arm, seed)]
            runs.append(run_arm(arm, task, seed, dataset))
            print(json.dumps(runs[-1]), flush=True)
            results.write_text(json.dumps(runs, indent=1))
    print(table(args.task, task, runs))


if __name__ == "__main__":
    main()
