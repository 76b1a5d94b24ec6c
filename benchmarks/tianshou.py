"""polyrl's Tianshou backend: its cost over Tianshou called directly, and its CartPole solve time.

    python benchmarks/tianshou.py [--steps 20480] [--repeats 3] [--solve-seeds 0,1,2] [--skip-solve]

(a) Overhead: the same PPO configuration (polyrl's default PPO settings for Tianshou on
CartPole-v1, seed per repeat) trains `--steps` env steps three ways, interleaved, in this
process: through `polyrl.Agent.train`; through Tianshou's own `OnPolicyTrainer` (what a Tianshou
user runs; one epoch = one collect + update step, exactly polyrl's iteration); and through a
hand-written low-level loop (Collector + `algorithm.update`, acting under `torch.no_grad()` as
the polyrl driver does). Each time includes building the networks and envs. The script prints
the median wall time and process CPU time of each and the ratios polyrl/direct (the CPU ratio
is the robust one on a machine shared with other jobs); the goal is at most 1.05.

(b) Solve time: polyrl's default PPO on CartPole-v1 trains one iteration at a time and is
evaluated (10 deterministic episodes) every `--eval-every` iterations until the evaluation mean
reaches 475. Printed per seed: env steps, training seconds (wall and CPU, evaluations
excluded) and wall seconds with the evaluations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import polyrl

# This script is named like the library it measures; run as a script, its folder would come
# first on sys.path and `import tianshou` would find this file.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

ENV = "CartPole-v1"


def _default_ppo():
    """polyrl's default PPO settings for Tianshou (read from the plugin, so both sides agree)."""
    from polyrl_tianshou.params import DEFAULTS

    return DEFAULTS["ppo"]


def _tianshou_parts(seed: int):
    """The networks, algorithm, envs and collector polyrl builds, written with Tianshou alone."""
    import gymnasium as gym
    import numpy as np
    import torch
    from tianshou.algorithm import PPO
    from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic

    d = _default_ppo()
    np.random.seed(seed)
    torch.manual_seed(seed)
    env = gym.make(ENV)
    activation = torch.nn.Tanh

    def net() -> Net:
        return Net(state_shape=env.observation_space.shape, hidden_sizes=d["hidden"], activation=activation)

    actor = DiscreteActor(preprocess_net=net(), action_shape=int(env.action_space.n), softmax_output=False)
    policy = DiscreteActorPolicy(
        actor=actor,
        deterministic_eval=True,
        action_space=env.action_space,
        observation_space=env.observation_space,
    )
    algorithm = PPO(
        policy=policy,
        critic=DiscreteCritic(preprocess_net=net()),
        optim=AdamOptimizerFactory(lr=d["learning_rate"]),
        eps_clip=d["clip_range"],
        gae_lambda=d["gae_lambda"],
        ent_coef=d["ent_coef"],
        vf_coef=d["vf_coef"],
        max_grad_norm=d["max_grad_norm"],
        gamma=d["gamma"],
    )
    venv = DummyVectorEnv([lambda: gym.make(ENV)])
    venv.seed(seed)
    buffer = VectorReplayBuffer(d["iteration_steps"], 1)
    collector = Collector(algorithm, venv, buffer)
    return d, algorithm, collector


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(began: tuple[float, float]) -> tuple[float, float]:
    now = _clock()
    return now[0] - began[0], now[1] - began[1]


def direct_trainer(steps: int, seed: int) -> tuple[float, float]:
    """Wall and CPU seconds for Tianshou's OnPolicyTrainer: one epoch = one collect + update step."""
    from tianshou.trainer import OnPolicyTrainerParams

    began = _clock()
    d, algorithm, collector = _tianshou_parts(seed)
    params = OnPolicyTrainerParams(
        training_collector=collector,
        max_epochs=-(-steps // d["iteration_steps"]),
        epoch_num_steps=d["iteration_steps"],
        collection_step_num_env_steps=d["iteration_steps"],
        batch_size=d["batch_size"],
        update_step_num_repetitions=d["n_epochs"],
        verbose=False,
        show_progress=False,
    )
    algorithm.run_training(params)
    return _since(began)


def direct_loop(steps: int, seed: int) -> tuple[float, float]:
    """Wall and CPU seconds for a hand-written low-level loop doing what the polyrl driver does."""
    import torch
    from tianshou.utils.torch_utils import policy_within_training_step

    began = _clock()
    d, algorithm, collector = _tianshou_parts(seed)
    collector.reset()
    done = 0
    while done < steps:
        with policy_within_training_step(algorithm.policy):
            with torch.no_grad():
                collected = collector.collect(n_step=d["iteration_steps"])
            algorithm.update(buffer=collector.buffer, batch_size=d["batch_size"], repeat=d["n_epochs"])
        collector.reset_buffer(keep_statistics=True)
        done += collected.n_collected_steps
    return _since(began)


def through_polyrl(steps: int, seed: int) -> tuple[float, float]:
    """Wall and CPU seconds for the same configuration through polyrl's core-owned loop."""
    began = _clock()
    agent = polyrl.Agent(backend="tianshou", algorithm="ppo", env=ENV, seed=seed)
    agent.train(total_steps=steps)
    agent.close()
    return _since(began)


def solve(seed: int, eval_every: int, max_steps: int) -> dict[str, float | int | bool]:
    """Train polyrl's default PPO until a deterministic 10-episode evaluation reaches 475."""
    agent = polyrl.Agent(backend="tianshou", algorithm="ppo", env=ENV, seed=seed)
    train_seconds, train_cpu = 0.0, 0.0
    began = time.perf_counter()
    evaluation = None
    while agent.env_steps < max_steps:
        started = _clock()
        agent.train(iterations=eval_every)
        wall, cpu = _since(started)
        train_seconds += wall
        train_cpu += cpu
        evaluation = agent.evaluate(episodes=10).return_mean
        if evaluation is not None and evaluation >= 475:
            break
    return {
        "seed": seed,
        "solved": evaluation is not None and evaluation >= 475,
        "env_steps": agent.env_steps,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "wall_seconds": round(time.perf_counter() - began, 1),
        "eval_return_mean": evaluation or 0.0,
    }


def main() -> None:
    """Run the overhead comparison, then the solve-time measurement."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20_480)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--solve-seeds", default="0,1,2")
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--skip-solve", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # both sides alike; polyrl's driver does the same by default
    through_polyrl(2048, 0)  # warm up imports and numba compilation for every side
    if not args.skip_overhead:
        runners = {"trainer": direct_trainer, "loop": direct_loop, "polyrl": through_polyrl}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
        for repeat in range(args.repeats):
            for name, runner in runners.items():
                runs[name].append(runner(args.steps, repeat))
            print(
                f"repeat {repeat} (wall/cpu s): "
                + "  ".join(
                    f"{name} {wall:.2f}/{cpu:.2f}"
                    for name, (wall, cpu) in ((n, r[-1]) for n, r in runs.items())
                ),
                flush=True,
            )
        print(f"PPO on {ENV}, {args.steps} steps, median of {args.repeats} (wall s / CPU s of this process):")
        median = {
            name: (statistics.median(w for w, _ in times), statistics.median(c for _, c in times))
            for name, times in runs.items()
        }
        labels = {
            "trainer": "tianshou OnPolicyTrainer",
            "loop": "tianshou low-level loop",
            "polyrl": "polyrl (tianshou backend)",
        }
        for name, (wall, cpu) in median.items():
            print(f"  {labels[name] + ':':27s}{wall:6.2f} / {cpu:6.2f}")
        for direct in ("trainer", "loop"):
            wall = median["polyrl"][0] / median[direct][0]
            cpu = median["polyrl"][1] / median[direct][1]
            print(f"  ratio polyrl/{direct + ':':9s}    {wall:.3f} wall, {cpu:.3f} CPU  (goal <= 1.05)")
    if not args.skip_solve:
        results = [solve(int(s), args.eval_every, args.max_steps) for s in args.solve_seeds.split(",")]
        for result in results:
            print(f"solve {result}", flush=True)
        steps = statistics.median(r["env_steps"] for r in results)
        train = statistics.median(r["train_seconds"] for r in results)
        cpu = statistics.median(r["train_cpu_seconds"] for r in results)
        wall = statistics.median(r["wall_seconds"] for r in results)
        solved = sum(bool(r["solved"]) for r in results)
        print(
            f"default PPO to eval 475 on {ENV}: median {steps:.0f} env steps, {train:.1f} s training "
            f"({cpu:.1f} s CPU), {wall:.1f} s with evaluations ({solved}/{len(results)} seeds solved)"
        )


if __name__ == "__main__":
    main()
