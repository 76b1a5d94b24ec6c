"""What polyrl costs over RLlib called directly, and how fast polyrl's RLlib PPO defaults solve CartPole.

    python benchmarks/rllib.py [--iterations 10] [--repeats 3] [--solve-seeds 0,1,2] [--skip-solve]

1. Overhead: the same PPO configuration on CartPole-v1 (polyrl's RLlib defaults, seed r) is built
   and trained for N iterations once as an RLlib `PPOConfig` -> `build_algo()` -> N x `train()`
   and once through `polyrl.Agent(backend="rllib").train(iterations=N)`, alternating; the median
   wall times (build + training) and their ratio are printed. Goal: ratio <= 1.05. The script
   first checks that both configurations hold the same values.
2. Solve: polyrl's default PPO (no hyperparameter given) trains on CartPole-v1 until a
   deterministic evaluation over 10 episodes reaches a mean return of 475 (checked after every
   iteration whose training episodes averaged >= 450). Prints env steps and seconds per seed:
   training time (evaluations excluded) and wall time (evaluations and build included).

Both parts share one local Ray instance, started before any timing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import polyrl

ENV = "CartPole-v1"
#: Config keys compared between the two sides before timing.
COMPARED = (
    "lr",
    "gamma",
    "train_batch_size_per_learner",
    "minibatch_size",
    "num_epochs",
    "lambda_",
    "clip_param",
    "vf_clip_param",
    "vf_loss_coeff",
    "entropy_coeff",
    "use_kl_loss",
    "num_env_runners",
    "num_envs_per_env_runner",
    "num_learners",
    "seed",
)


def direct_config(seed: int):
    """polyrl's RLlib PPO defaults written as a plain RLlib PPOConfig."""
    from polyrl_rllib.params import DEFAULTS
    from ray.rllib.algorithms.ppo import PPOConfig

    return (
        PPOConfig()
        .environment(ENV)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .learners(num_learners=0)
        .training(**DEFAULTS["ppo"]["training"])
        .rl_module(
            model_config={
                "fcnet_hiddens": [64, 64],
                "fcnet_activation": "Tanh",
                "head_fcnet_hiddens": [],
                "vf_share_layers": False,
            }
        )
        .debugging(seed=seed, log_level="ERROR", log_sys_usage=False)
    )


def direct(iterations: int, seed: int) -> float:
    """Seconds for RLlib alone: build the algorithm, then `iterations` x train()."""
    began = time.perf_counter()
    algo = direct_config(seed).build_algo()
    for _ in range(iterations):
        algo.train()
    seconds = time.perf_counter() - began
    algo.stop()
    return seconds


def through_polyrl(iterations: int, seed: int) -> float:
    """Seconds for the same configuration through polyrl's core-owned loop."""
    began = time.perf_counter()
    agent = polyrl.Agent(backend="rllib", algorithm="ppo", env=ENV, seed=seed)
    agent.train(iterations=iterations)
    seconds = time.perf_counter() - began
    agent.close()
    return seconds


def check_same_config() -> None:
    """Fail loudly if the direct config drifted from what polyrl builds."""
    agent = polyrl.Agent(backend="rllib", algorithm="ppo", env=ENV, seed=0)
    ours = agent.native.config
    theirs = direct_config(0)
    different = {
        k: (getattr(ours, k), getattr(theirs, k)) for k in COMPARED if getattr(ours, k) != getattr(theirs, k)
    }
    model_keys = ("fcnet_hiddens", "fcnet_activation", "head_fcnet_hiddens", "vf_share_layers")
    for key in model_keys:
        if ours.model_config.get(key) != theirs.model_config.get(key):
            different[key] = (ours.model_config.get(key), theirs.model_config.get(key))
    agent.close()
    if different:
        raise SystemExit(f"the direct RLlib config differs from polyrl's: {different}")


def overhead(iterations: int, repeats: int) -> None:
    """Alternate direct and polyrl runs; print medians and their ratio."""
    direct(1, 99)  # warm up: Ray start, imports, caches for both sides
    through_polyrl(1, 99)
    rllib_times, polyrl_times = [], []
    for repeat in range(repeats):
        rllib_times.append(direct(iterations, repeat))
        polyrl_times.append(through_polyrl(iterations, repeat))
        print(f"repeat {repeat}: rllib {rllib_times[-1]:.2f}s  polyrl {polyrl_times[-1]:.2f}s", flush=True)
    rllib_median, polyrl_median = statistics.median(rllib_times), statistics.median(polyrl_times)
    from polyrl_rllib.params import DEFAULTS

    steps = iterations * DEFAULTS["ppo"]["training"]["train_batch_size_per_learner"]
    print(f"PPO on {ENV}, {iterations} iterations ({steps} env steps) + build, median of {repeats}:")
    print(f"  rllib direct:          {rllib_median:.2f} s")
    print(f"  polyrl (rllib backend): {polyrl_median:.2f} s")
    print(f"  ratio polyrl/direct:   {polyrl_median / rllib_median:.3f}  (goal <= 1.05)", flush=True)


def solve(seed: int, max_steps: int) -> dict[str, float | int | None]:
    """Train polyrl's default PPO until a deterministic 10-episode evaluation reaches 475."""
    began = time.perf_counter()
    agent = polyrl.Agent(backend="rllib", algorithm="ppo", env=ENV, seed=seed)
    built = time.perf_counter() - began
    state: dict[str, float | int | None] = {"eval_seconds": 0.0, "solved_at": None, "eval": None}

    class Solved(polyrl.Callback):
        def on_iteration_end(self, context, record):
            if record.return_mean is None or record.return_mean < 450:
                return
            started = time.perf_counter()
            result = agent.evaluate(episodes=10, seed=1000).return_mean
            state["eval_seconds"] += time.perf_counter() - started
            if result >= 475:
                state["solved_at"], state["eval"] = record.env_steps, result
                context.stop("solved")

    result = agent.train(polyrl.TrainConfig(total_steps=max_steps), callbacks=[Solved()])
    agent.close()
    return {
        "seed": seed,
        "env_steps": state["solved_at"],
        "eval_return": state["eval"],
        "train_seconds": result.wall_seconds - state["eval_seconds"],
        "wall_seconds": time.perf_counter() - began,
        "build_seconds": built,
        "iterations": result.iterations,
    }


def main() -> None:
    """Run the overhead comparison, then the CartPole solve timing."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--solve-seeds", default="0,1,2")
    parser.add_argument("--max-steps", type=int, default=200_000)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-solve", action="store_true")
    args = parser.parse_args()
    import torch
    from polyrl_rllib import runtime

    torch.set_num_threads(1)  # what polyrl's driver does by default; both sides alike
    began = time.perf_counter()
    runtime.ensure_ray()  # one local Ray instance for both sides, started before any timing
    print(f"local Ray started in {time.perf_counter() - began:.1f} s (once per process)", flush=True)
    check_same_config()
    if not args.skip_overhead:
        overhead(args.iterations, args.repeats)
    if not args.skip_solve:
        runs = []
        for seed in (int(s) for s in args.solve_seeds.split(",")):
            run = solve(seed, args.max_steps)
            runs.append(run)
            print(
                f"solve seed {seed}: env steps {run['env_steps']}, train {run['train_seconds']:.1f} s, "
                f"wall {run['wall_seconds']:.1f} s (build {run['build_seconds']:.2f} s), "
                f"eval {run['eval_return']}",
                flush=True,
            )
        solved = [r for r in runs if r["env_steps"] is not None]
        print(f"default PPO solved CartPole-v1 (eval >= 475) in {len(solved)}/{len(runs)} seeds", flush=True)
        if solved:
            print(
                f"  median env steps {statistics.median(r['env_steps'] for r in solved):.0f}, "
                f"median train seconds {statistics.median(r['train_seconds'] for r in solved):.1f}, "
                f"median wall seconds {statistics.median(r['wall_seconds'] for r in solved):.1f}"
            )


if __name__ == "__main__":
    main()
