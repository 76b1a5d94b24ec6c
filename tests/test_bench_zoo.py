"""`polyrl bench --baseline zoo`: RL Zoo3's entries parsed safely, the comparison's ratios, the runs.

The parsing tests use entries written here (RL Zoo3's own, copied from rl-zoo3 2.9.2), so they need
neither rl-zoo3 nor SB3; the tests reading the installed package or training through SB3 skip
where those are missing (rl-zoo3 is not a polyrl dependency).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys

import polyrl
import pytest
from polyrl.cli.app import app
from polyrl.errors import ConfigurationError, ExtraNotInstalledError
from polyrl_conformance.bench import report as reporting
from polyrl_conformance.bench import zoo as bench_zoo
from polyrl_conformance.bench.cells import BenchCell, select_cells
from polyrl_conformance.bench.merge import merge_reports
from polyrl_conformance.bench.protocol import EVAL_SEED_OFFSET, Trained
from polyrl_conformance.bench.records import (
    BenchReport,
    CellResult,
    SeedPlan,
    SeedResult,
    ZooArm,
    ZooConfig,
)
from polyrl_conformance.bench.runner import run_cells, run_seed, seed_directory
from polyrl_conformance.bench.zoo import compare_zoo, zoo_configs, zoo_table
from polyrl_sb3 import zoo
from polyrl_sb3.zoo import LinearSchedule, Named, literal, parse_entry
from typer.testing import CliRunner

HAS_ZOO = importlib.util.find_spec("rl_zoo3") is not None
HAS_SB3 = importlib.util.find_spec("stable_baselines3") is not None
needs_zoo = pytest.mark.skipif(not HAS_ZOO, reason="rl-zoo3 is not installed (pip install rl-zoo3)")
needs_sb3 = pytest.mark.skipif(not HAS_SB3, reason="stable-baselines3 is not installed")

#: rl-zoo3 2.9.2, hyperparams/ppo.yml, CartPole-v1 (as yaml.safe_load gives it).
PPO_CARTPOLE = {
    "n_envs": 8,
    "n_timesteps": 1e5,
    "policy": "MlpPolicy",
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
}
#: hyperparams/sac.yml, MountainCarContinuous-v0.
SAC_MCC = {
    "n_timesteps": 50000.0,
    "policy": "MlpPolicy",
    "learning_rate": 3e-4,
    "buffer_size": 50000,
    "batch_size": 512,
    "ent_coef": 0.1,
    "train_freq": 32,
    "gradient_steps": 32,
    "gamma": 0.9999,
    "tau": 0.01,
    "learning_starts": 0,
    "use_sde": True,
    "policy_kwargs": "dict(log_std_init=-3.67, net_arch=[64, 64], use_expln=True)",
}


# -- parsing ---------------------------------------------------------------------------------------
def test_an_entry_becomes_the_runners_settings_with_zoo_schedules():
    settings = parse_entry("ppo", "CartPole-v1", PPO_CARTPOLE)
    assert (settings.n_timesteps, settings.n_envs, settings.policy) == (100_000, 8, "MlpPolicy")
    assert settings.normalize is None and settings.noise is None and settings.policy_kwargs == {}
    assert settings.kwargs["learning_rate"] == LinearSchedule(0.001)
    assert settings.kwargs["clip_range"] == LinearSchedule(0.2)
    # RL Zoo3's lin_X: X times progress_remaining (1 at the start, 0 at n_timesteps)
    assert [settings.kwargs["learning_rate"](p) for p in (1.0, 0.5, 0.0)] == [0.001, 0.0005, 0.0]
    # the other keys reach the algorithm as the entry has them, but not the runner's keys
    schedules, runners = ("learning_rate", "clip_range"), ("n_timesteps", "n_envs", "policy")
    rest = {k: v for k, v in settings.kwargs.items() if k not in schedules}
    assert rest == {k: v for k, v in PPO_CARTPOLE.items() if k not in schedules + runners}


def test_policy_kwargs_normalize_and_noise_are_read_as_rl_zoo3_reads_them():
    sac = parse_entry("sac", "MountainCarContinuous-v0", SAC_MCC)
    assert sac.policy_kwargs == {"log_std_init": -3.67, "net_arch": [64, 64], "use_expln": True}
    assert sac.kwargs["use_sde"] is True and "policy_kwargs" not in sac.kwargs
    # normalize: true -> VecNormalize with the algorithm's gamma, as RL Zoo3's ExperimentManager does
    a2c = parse_entry(
        "a2c", "Pendulum-v1", {"n_timesteps": 1e6, "normalize": True, "gamma": 0.9, "n_envs": 8}
    )
    assert a2c.normalize == {"gamma": 0.9} and a2c.n_envs == 8
    only_reward = parse_entry(
        "ppo", "X-v0", {"n_timesteps": 10, "normalize": "dict(norm_obs=False, norm_reward=True)"}
    )
    assert only_reward.normalize == {"norm_obs": False, "norm_reward": True}
    noisy = {
        "n_timesteps": 3e5,
        "noise_type": "ornstein-uhlenbeck",
        "noise_std": 0.5,
        "train_freq": [1, "episode"],
    }
    td3 = parse_entry("td3", "MountainCarContinuous-v0", noisy)
    assert td3.noise == ("ornstein-uhlenbeck", 0.5) and td3.kwargs == {"train_freq": (1, "episode")}


def test_snippets_are_literals_dicts_and_allowed_names_only():
    assert literal("dict(activation_fn=nn.ReLU, net_arch=dict(pi=[64], vf=[64]), ortho_init=False)") == {
        "activation_fn": Named("nn.ReLU"),
        "net_arch": {"pi": [64], "vf": [64]},
        "ortho_init": False,
    }
    assert literal("{'norm_obs': True, 'clip_obs': 10.0}") == {"norm_obs": True, "clip_obs": 10.0}
    assert literal("(-1, +2.5, None, 'x')") == (-1, 2.5, None, "x")
    for snippet, bad in [
        ("__import__('os').system('true')", "__import__('os').system('true')"),
        ("dict(net_arch=open('/etc/passwd'))", "open('/etc/passwd')"),
        ("dict(activation_fn=nn.Foo)", "nn.Foo"),
        ("dict(**kwargs)", "dict(**kwargs)"),
        ("lambda: 1", "lambda: 1"),
        ("-'a'", "-'a'"),
        ("[1, 2][0]", "[1, 2][0]"),
    ]:
        with pytest.raises(ConfigurationError, match="never evaluates code") as caught:
            literal(snippet)
        assert repr(bad) in str(caught.value)
    with pytest.raises(ConfigurationError, match="not a Python expression"):
        literal("dict(net_arch=[64,")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"n_timesteps": 1e5, "frame_stack": 4}, r"sets \['frame_stack'\], which polyrl's RL Zoo3 runner"),
        ({"n_timesteps": 1e5, "env_wrapper": "x.Y", "callback": "z"}, r"\['callback', 'env_wrapper'\]"),
        ({"n_timesteps": 1e5, "buffer_size": 10}, r"\['buffer_size'\]"),  # not a PPO argument
        ({"n_envs": 8}, "has no n_timesteps"),
        ({"n_timesteps": 1e5, "n_envs": 0}, "n_envs must be a whole number >= 1"),
        ({"n_timesteps": 1e5, "policy": "CnnPolicy"}, "'MlpPolicy' only"),
        ({"n_timesteps": 1e5, "learning_rate": "exp_0.1"}, "'exp_0.1' is not a number or a lin_X schedule"),
        ({"n_timesteps": 1e5, "normalize": "dict(norm_obs=True, shift=1)"}, r"normalize sets \['shift'\]"),
        ({"n_timesteps": 1e5, "policy_kwargs": "dict(x=eval('1'))"}, "eval"),
    ],
)
def test_entries_with_what_the_runner_does_not_implement_are_refused_by_name(entry, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_entry("ppo", "CartPole-v1", entry)


def test_noise_needs_a_known_type_and_an_algorithm_the_runner_knows():
    with pytest.raises(ConfigurationError, match="noise_type must be one of"):
        parse_entry("td3", "Pendulum-v1", {"n_timesteps": 1, "noise_type": "pink", "noise_std": 0.1})
    with pytest.raises(ConfigurationError, match="polyrl runs RL Zoo3 for"):
        parse_entry("tqc", "Pendulum-v1", {"n_timesteps": 1})


@needs_sb3
def test_the_constructor_keys_are_arguments_of_the_sb3_classes():
    from polyrl_sb3.params import algorithm_class

    for algorithm, keys in zoo.CONSTRUCTOR_KEYS.items():
        parameters = inspect.signature(algorithm_class(algorithm).__init__).parameters
        assert keys <= parameters.keys(), (algorithm, sorted(keys - parameters.keys()))


@needs_zoo
@needs_sb3
def test_every_sb3_cell_has_a_zoo_configuration_the_runner_reads_or_says_why_not():
    configs = zoo_configs(select_cells("full", ["sb3"]))
    assert configs.keys() == {c.key for c in select_cells("full", ["sb3"])}
    for key, config in configs.items():
        if "MinAtar" in key:  # RL Zoo3 tunes Atari, not MinAtar
            assert config.missing and config.n_timesteps is None
            continue
        assert config.missing is None and config.n_timesteps and config.version
        algorithm, env = key.split("/", 2)[1:]
        assert config.source == f"hyperparams/{algorithm}.yml: {env}"
    # the default cells' budgets are RL Zoo3's n_timesteps
    default = {c.key: c.budget_steps for c in select_cells("default", ["sb3"])}
    assert {key: configs[key].n_timesteps for key in default} == default


def test_without_rl_zoo3_the_baseline_is_a_typed_error_saying_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rl_zoo3", None)  # as if not installed: find_spec gives None
    with pytest.raises(ExtraNotInstalledError, match="pip install rl-zoo3"):
        bench_zoo.zoo_version()
    with pytest.raises(ExtraNotInstalledError, match="pip install rl-zoo3"):
        zoo.hyperparams_directory()
    result = CliRunner().invoke(app, ["bench", "--slice", "ci", "--backend", "fake", "--baseline", "zoo"])
    assert result.exit_code == 2 and "pip install rl-zoo3" in result.output


# -- the comparison --------------------------------------------------------------------------------
def _cell(**fields) -> BenchCell:
    document = {
        "backend": "fake",
        "algorithm": "linear",
        "env": "CartPole-v1",
        "budget_steps": 1000,
        "solve_threshold": 5.0,
        "min_return": 5.0,
        "eval_every_steps": 100,
        "eval_episodes": 2,
        "slices": ["ci", "default", "full"],
    }
    document.update(fields)
    return BenchCell.model_validate(document)


def _seed(seed: int, steps: int | None, seconds: float | None) -> SeedResult:
    return SeedResult(
        seed=seed,
        status="done",
        env_steps=steps or 1000,
        train_seconds=seconds or 9.0,
        final_return_mean=6.0 if steps else 1.0,
        best_eval_return_mean=6.0 if steps else 1.0,
        preset="linear-cartpole",
        solved=steps is not None,
        steps_to_threshold=steps,
        seconds_to_threshold=seconds,
        cpu_seconds_to_threshold=None if seconds is None else seconds / 2,
    )


def _fabricated(zoo_seeds: list[SeedResult]) -> BenchReport:
    config = ZooConfig(source="hyperparams/linear.yml: CartPole-v1", version="2.9.2", n_timesteps=1000)
    result = CellResult.summarize(
        _cell(), [_seed(0, 300, 3.0), _seed(1, 500, 5.0)], zoo=ZooArm.summarize(config, zoo_seeds)
    )
    return BenchReport(
        slice="ci",
        command="polyrl bench --baseline zoo",
        seeds=2,
        stop_at_threshold=True,
        machine=reporting.machine_info(),
        cells=[result],
    ).with_verdict()


def test_the_report_puts_polyrl_next_to_the_zoo_with_ratios():
    report = compare_zoo(_fabricated([_seed(0, 100, 1.0), _seed(1, 300, 1.0)]))
    assert report.zoo is not None and report.passed and report.zoo.zoo_version == "2.9.2"
    [row] = report.zoo.rows
    assert (row.steps_to_threshold, row.zoo_steps_to_threshold) == (400.0, 200.0)
    assert (row.seconds_to_threshold, row.zoo_seconds_to_threshold) == (4.0, 1.0)
    assert (row.steps_ratio, row.seconds_ratio) == (2.0, 4.0)
    assert (row.cpu_seconds_to_threshold, row.zoo_cpu_seconds_to_threshold, row.cpu_ratio) == (2.0, 0.5, 4.0)
    assert (row.solved_seeds, row.seeds, row.zoo_solved_seeds, row.zoo_seeds) == (2, 2, 2, 2)
    assert row.preset == "linear-cartpole" and row.zoo_budget_steps == 1000
    line = (
        "| fake/linear/CartPole-v1 | linear-cartpole | 2/2 / 2/2 | 400 | 200 | 2.00x | 4.0 | 1.0 | 4.00x "
        "| 2.0 | 0.5 | 4.00x | 1,000 |"
    )
    assert line in zoo_table(report)
    text = reporting.markdown(report)
    assert "## Against RL Zoo3" in text and line in text
    stored = json.loads(report.model_dump_json())["zoo"]["rows"][0]
    assert (stored["steps_ratio"], stored["seconds_ratio"]) == (2.0, 4.0)


def test_max_slowdown_against_the_zoo_judges_env_steps_and_solved_seeds():
    faster_zoo = _fabricated([_seed(0, 100, 1.0), _seed(1, 300, 1.0)])
    judged = compare_zoo(faster_zoo, max_slowdown=1.5)
    assert not judged.passed and judged.failures == [
        "cell fake/linear/CartPole-v1: 400 env steps to the solve threshold, 2.00x RL Zoo3's 200 "
        "(allowed 1.5x)"
    ]
    assert compare_zoo(faster_zoo, max_slowdown=2.0).passed
    fewer = _fabricated([_seed(0, 800, 1.0), _seed(1, 800, 1.0)])
    half = [_seed(0, 300, 3.0), _seed(1, None, None)]
    fewer = fewer.model_copy(
        update={"cells": [CellResult.summarize(fewer.cells[0].cell, half, zoo=fewer.cells[0].zoo)]}
    )
    assert compare_zoo(fewer, max_slowdown=2.0).zoo.failures == [  # type: ignore[union-attr]
        "cell fake/linear/CartPole-v1: reached the solve threshold on 1 of 2 seeds, RL Zoo3's "
        "configuration on 2 of 2"
    ]
    never = _fabricated([_seed(0, None, None), _seed(1, None, None)])
    [row] = compare_zoo(never, max_slowdown=1.0).zoo.rows  # type: ignore[union-attr]
    assert row.steps_ratio is None and compare_zoo(never, max_slowdown=1.0).passed


def test_a_cell_without_a_zoo_entry_says_so_and_results_without_zoo_runs_are_refused():
    missing = ZooConfig(
        source="hyperparams/dqn.yml: MinAtar/Breakout-v1", version="2.9.2", missing="no entry"
    )
    report = _fabricated([])
    report = report.model_copy(
        update={"cells": [report.cells[0].model_copy(update={"zoo": ZooArm.summarize(missing, [])})]}
    )
    assert "| no RL Zoo3 configuration: no entry |" in zoo_table(compare_zoo(report))[-1]
    bare = report.model_copy(update={"cells": [report.cells[0].model_copy(update={"zoo": None})]})
    with pytest.raises(ConfigurationError, match="hold no RL Zoo3 runs"):
        compare_zoo(bare)


# -- the runs --------------------------------------------------------------------------------------
class FakeZoo:
    """A zoo for the fake backend: reaches 5.0 at 200 env steps, in 100-step iterations of 0.5 s."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    @polyrl.backend.hookimpl
    def polyrl_zoo_config(self, cell):
        if cell.backend != "fake":
            return None
        return ZooConfig(source="fake.yml: CartPole-v1", version="0.1", n_timesteps=cell.budget_steps)

    @polyrl.backend.hookimpl
    def polyrl_zoo_training(self, cell, seed, protocol):
        if cell.backend != "fake":
            return None
        self.calls.append(seed)
        steps = 0
        while protocol.stop_reason is None and steps < cell.budget_steps:
            steps += 100
            protocol.iteration(steps, 0.5, 0.5, None, lambda done=steps: (2.5 * done / 100, 0.0))
        protocol.finish(lambda: (0.0, 0.0))
        return Trained(steps, 0.1, protocol.stop_reason)


def test_run_cells_trains_the_zoo_beside_each_cell_in_its_own_directories(fake_backend, tmp_path):
    plugin = FakeZoo()
    polyrl.registry().register(plugin, name="fake-zoo")
    try:
        cell = _cell(spec={"iteration_steps": 100}, budget_steps=500)
        configs = zoo_configs([cell])
        lines: list[str] = []
        options = {"stop_at_threshold": True, "ratio": False, "isolate": False, "zoo": configs}
        [result] = run_cells([cell], 2, tmp_path, report=lines.append, **options)
        assert plugin.calls == [0, 1]
        arm = result.zoo
        assert arm is not None and arm.config == configs[cell.key] and arm.solved_seeds == 2
        assert [s.steps_to_threshold for s in arm.seeds] == [200, 200]  # 2.5 per 100 steps: 5.0 at 200
        assert [s.seconds_to_threshold for s in arm.seeds] == [1.0, 1.0]  # two iterations of 0.5 s
        assert [s.cpu_seconds_to_threshold for s in arm.seeds] == [1.0, 1.0]
        assert all(s.stop_reason == "solve threshold 5 reached" for s in arm.seeds)
        for seed in (0, 1):
            directory = seed_directory(tmp_path, cell, seed, arm="zoo")
            assert directory.name == f"fake_linear_CartPole-v1_s{seed}_zoo"
            assert SeedResult.model_validate_json((directory / "result.json").read_text()) == arm.seeds[seed]
        assert any("RL Zoo3's configuration (fake.yml: CartPole-v1)" in line for line in lines)
        # a resumed run reuses the zoo's finished seeds
        again = run_cells([cell], 2, tmp_path, resume=True, **options)
        assert plugin.calls == [0, 1] and again[0].zoo == arm
    finally:
        polyrl.registry().unregister(plugin)
    # merging two shards pools the zoo's seeds too
    machine = reporting.machine_info()
    shards = []
    for i in (0, 1):
        piece = {"seeds": result.seeds[i : i + 1], "zoo": ZooArm.summarize(arm.config, arm.seeds[i : i + 1])}
        cells = [result.model_copy(update=piece)]
        shards.append(
            BenchReport(
                slice="ci", command=f"c{i}", seeds=1, stop_at_threshold=True, machine=machine, cells=cells
            )
        )
    merged = merge_reports(shards, ["a.json", "b.json"], "merge")
    assert merged.cells[0].zoo is not None and [s.seed for s in merged.cells[0].zoo.seeds] == [0, 1]
    assert merged.zoo is not None and merged.zoo.rows[0].zoo_solved_seeds == 2


def test_no_cell_with_a_zoo_is_an_error_naming_the_backend_to_select(fake_backend):
    with pytest.raises(ConfigurationError, match="select sb3 cells"):
        zoo_configs([_cell()])


@needs_zoo
@needs_sb3
def test_the_zoo_runner_trains_ppo_on_cartpole_through_sb3_with_evaluations(tmp_path):
    [cell] = select_cells("ci", ["sb3"])
    cell = cell.model_copy(update={"budget_steps": 3000, "eval_every_steps": 1000, "eval_episodes": 2})
    directory = tmp_path / "zoo"
    result = run_seed(SeedPlan(cell=cell, seed=0, arm="zoo"), directory)
    assert result.status == "done", result.error
    # RL Zoo3's PPO on CartPole-v1: 8 envs x 32 steps, so iterations of 256 env steps
    assert [p.env_steps for p in result.curve] == list(range(256, 3073, 256))
    evaluated = [(p.env_steps, p.eval_return_mean) for p in result.curve if p.eval_return_mean is not None]
    assert [steps for steps, _ in evaluated] == [1024, 2048, 3072]
    assert all(value is not None and 8 <= value <= 500 for _, value in evaluated)
    assert result.env_steps == 3072 and result.stop_reason == "the cell's budget of 3,000 env steps reached"
    assert result.iterations == 12 and result.train_seconds > 0 and result.eval_seconds > 0
    assert result.steps_per_second == pytest.approx(3072 / result.train_seconds)
    assert result.final_return_mean == evaluated[-1][1] and result.preset is None
    assert EVAL_SEED_OFFSET == 10_000  # the evaluation episodes polyrl's agent.evaluate plays
    assert SeedResult.model_validate_json((directory / "result.json").read_text()) == result
