"""What polyrl costs over Stable-Baselines3 called directly, measured in one run.

    python benchmarks/overhead.py [--steps 20480] [--repeats 3] [--algorithm ppo]

Trains the same configuration (PPO on CartPole-v1, SB3 defaults, seed 0) once through
`stable_baselines3` directly (one learn() call) and once through `polyrl.Agent.train`
(one learn() chunk per iteration), alternating, and prints the median wall time of each and
their ratio. The goal is a ratio of at most 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import time

import polyrl

ENVS = {
    "ppo": "CartPole-v1",
    "a2c": "CartPole-v1",
    "dqn": "CartPole-v1",
    "sac": "Pendulum-v1",
    "td3": "Pendulum-v1",
}


def direct(algorithm: str, steps: int, seed: int) -> float:
    """Seconds for SB3 alone: build the model, then one learn() call."""
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env

    cls = getattr(sb3, algorithm.upper())
    began = time.perf_counter()
    model = cls("MlpPolicy", make_vec_env(ENVS[algorithm], n_envs=1, seed=seed), seed=seed, device="cpu")
    model.learn(total_timesteps=steps)
    return time.perf_counter() - began


def through_polyrl(algorithm: str, steps: int, seed: int) -> float:
    """Seconds for the same configuration through polyrl's core-owned loop."""
    began = time.perf_counter()
    agent = polyrl.Agent(backend="sb3", algorithm=algorithm, env=ENVS[algorithm], seed=seed)
    agent.train(total_steps=steps)
    return time.perf_counter() - began


def main() -> None:
    """Run both alternately and print the ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algorithm", default="ppo", choices=sorted(ENVS))
    parser.add_argument("--steps", type=int, default=20_480)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # both sides alike; 1 thread is as fast as 2 for these nets
    direct(args.algorithm, 2048, 0)  # warm up imports and caches for both sides
    sb3_times, polyrl_times = [], []
    for repeat in range(args.repeats):
        sb3_times.append(direct(args.algorithm, args.steps, repeat))
        polyrl_times.append(through_polyrl(args.algorithm, args.steps, repeat))
        print(f"repeat {repeat}: sb3 {sb3_times[-1]:.2f}s  polyrl {polyrl_times[-1]:.2f}s", flush=True)
    sb3_median, polyrl_median = statistics.median(sb3_times), statistics.median(polyrl_times)
    print(f"{args.algorithm} on {ENVS[args.algorithm]}, {args.steps} steps, median of {args.repeats}:")
    print(f"  stable-baselines3 direct: {sb3_median:.2f} s")
    print(f"  polyrl (sb3 backend):     {polyrl_median:.2f} s")
    print(f"  ratio polyrl/direct:      {polyrl_median / sb3_median:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
