"""The runs behind the behaviour checks: the state behind the API, not only its shape.

Each run is made at most once per backend x algorithm (like the shared runs of `scenario`)
and inspected by one or more checks: the learning rate reaching the optimizer, iteration
budgets, losses, interleaved seeding, several envs, the replay buffer and resume equivalence
(in this process and in a fresh one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from polyrl import Agent, TrainConfig

from polyrl_conformance.envs import CUSTOM_FACTORY
from polyrl_conformance.scenario import ITERATION_CAP, AgentState, once

if TYPE_CHECKING:
    from polyrl import IterationRecord

    from polyrl_conformance.scenario import AlgorithmScenario

#: Iterations a run may take until the first update reports a loss (off-policy warm-up).
WARMUP_CAP = 8
#: Resume equivalence: iterations before the checkpoint, and after it.
RESUME_BEFORE, RESUME_AFTER = 2, 2
#: Tolerances of "the same parameters" after a resume (float32 training on one machine).
PARAMETER_RTOL, PARAMETER_ATOL = 1e-5, 1e-6
#: The losses of the common vocabulary (DriverReport's docstring).
COMMON_LOSSES = ("loss", "policy_loss", "value_loss", "entropy_loss", "q_loss", "actor_loss", "critic_loss")
#: A time limit short enough that a tiny run needs several iterations to pass it... or one.
TIME_LIMIT = 0.3
#: Backends whose resume has been checked in a fresh process in this run: importing a library
#: costs seconds (Tianshou ~10-30 s here), so the fresh-process case runs once per backend, on
#: its first algorithm in the suite's order; the other algorithms are checked in this process.
_FRESH_PROCESS_CHECKED: dict[str, str] = {}


Parameters = dict[str, np.ndarray]


def parameters_of(agent: Agent) -> Parameters:
    """The agent's trainable parameters; a driver without parameters() fails the check with why."""
    try:
        found = agent.parameters()
    except NotImplementedError as exc:
        raise AssertionError(f"the driver does not report its trainable parameters: {exc}") from exc
    assert isinstance(found, dict) and found, f"parameters() returned {type(found).__name__} {found!r:.80}"
    return {name: np.asarray(value).copy() for name, value in found.items()}


def same_parameters(a: Parameters, b: Parameters, exact: bool = False) -> list[str]:
    """The names whose values differ (beyond the tolerances unless `exact`); [] when all agree."""
    if sorted(a) != sorted(b):
        return [f"names differ: {sorted(set(a) ^ set(b))}"]
    differing = []
    for name in a:
        x, y = a[name], b[name]
        if x.shape != y.shape:
            differing.append(f"{name} (shape {x.shape} vs {y.shape})")
            continue
        equal = np.array_equal(x, y) if exact else np.allclose(x, y, rtol=PARAMETER_RTOL, atol=PARAMETER_ATOL)
        if not equal:
            differing.append(f"{name} (max |diff| {float(np.max(np.abs(x - y))):.3g})")
    return differing


@dataclass
class LearningRateProbe:
    """Parameters around an iteration at learning rate 0, and one after it is restored."""

    warmup_records: list[IterationRecord]
    read_back_zero: float
    before_zero: Parameters
    after_zero: Parameters
    zero_record: IterationRecord
    after_restore: Parameters


@dataclass
class TimeLimitRun:
    """A run limited by time only (and an iteration cap as a guard)."""

    limit: float
    records: list[IterationRecord]
    stop_reason: str


@dataclass
class Interleaved:
    """Two agents of one seed trained alternately; one of another seed."""

    first: list[IterationRecord]
    first_parameters: Parameters
    second: list[IterationRecord]
    second_parameters: Parameters
    other_seed: list[IterationRecord]
    other_parameters: Parameters
    first_parameters_after_one: Parameters


@dataclass
class ManyEnvs:
    """An agent with n_envs=2 trained two iterations."""

    agent: Agent
    records: list[IterationRecord]
    declared_iteration_steps: int


@dataclass
class Continued:
    """What an agent holds after continuing: counters, lr, replay size, actions and parameters."""

    env_steps: int
    iterations: int
    learning_rate: float
    replay_size: int | None
    actions: Any
    parameters: Parameters
    losses: list[dict[str, float]]

    @classmethod
    def of(cls, agent: Agent, batch: Any, records: list[IterationRecord]) -> Continued:
        """Read everything from `agent` (actions first)."""
        return cls(
            actions=agent.act(batch, deterministic=True),
            env_steps=agent.env_steps,
            iterations=agent.iterations,
            learning_rate=agent.learning_rate,
            replay_size=agent.replay_size,
            parameters=parameters_of(agent),
            losses=[dict(r.losses) for r in records],
        )


@dataclass
class ResumeRuns:
    """Save/load/continue against continuing without save/load, on the fixed-start env."""

    saved: AgentState
    saved_replay_size: int | None
    reloaded: AgentState
    reloaded_replay_size: int | None
    reloaded_parameters: Parameters
    saved_parameters: Parameters
    resumed: Continued
    uninterrupted: Continued
    fresh_process: dict[str, Any] | None


_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import polyrl
    path, batch_file, out, iterations = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with np.load(batch_file, allow_pickle=False) as saved:
        batch = saved["batch"]
    agent = polyrl.Agent.load(path, trust_env_factory=True)  # the suite's own checkpoint and env
    loaded = {
        "actions": np.asarray(agent.act(batch, deterministic=True)).tolist(),
        "env_steps": agent.env_steps, "iterations": agent.iterations,
        "learning_rate": agent.learning_rate, "replay_size": agent.replay_size,
    }
    result = agent.train(polyrl.TrainConfig(iterations=iterations))
    after = {
        "actions": np.asarray(agent.act(batch, deterministic=True)).tolist(),
        "env_steps": agent.env_steps, "iterations": agent.iterations,
        "learning_rate": agent.learning_rate, "replay_size": agent.replay_size,
        "losses": [dict(r.losses) for r in result.records],
    }
    np.savez(out + ".npz", **agent.parameters())
    with open(out + ".json", "w") as handle:
        json.dump({"loaded": loaded, "after": after}, handle)
    agent.close()
    """
)


class BehaviourRuns:
    """The runs of the behaviour checks for one backend x algorithm."""

    def __init__(self, scenario: AlgorithmScenario) -> None:
        self.scenario = scenario

    def build(self, **updates: Any) -> Agent:
        """A new agent of the case's spec with `updates` laid over it (closed with the scenario)."""
        document = self.scenario.spec.model_dump(mode="json", exclude_unset=True)
        document.update(updates)
        return self.scenario.adopt(Agent(type(self.scenario.spec).model_validate(document)))

    # -- learning rate ------------------------------------------------------------------------
    @once
    def learning_rate_probe_agent(self) -> Agent:
        """The agent of the learning-rate probe and the time-limited run: the scenario's twin,
        once its own run is over (building agents is the suite's largest cost on some backends)."""
        return self.scenario.twin().agent

    @once
    def learning_rate_probe(self) -> LearningRateProbe:
        """Train until updates start, an iteration at learning rate 0, one after restoring it."""
        agent = self.learning_rate_probe_agent()
        warmup = warm_up(agent)
        spec_rate = agent.learning_rate
        before = parameters_of(agent)
        agent.learning_rate = 0.0
        read_back = agent.learning_rate
        zero = agent.train(TrainConfig(iterations=1)).records[0]
        after_zero = parameters_of(agent)
        agent.learning_rate = spec_rate
        agent.train(TrainConfig(iterations=1))
        return LearningRateProbe(warmup, read_back, before, after_zero, zero, parameters_of(agent))

    # -- budgets ------------------------------------------------------------------------------
    @once
    def time_limited(self) -> TimeLimitRun:
        """A run with only a time limit (and the suite's iteration cap as a guard)."""
        agent = self.learning_rate_probe_agent()
        result = agent.train(TrainConfig(time_limit=TIME_LIMIT, iterations=ITERATION_CAP))
        return TimeLimitRun(TIME_LIMIT, list(result.records), result.stop_reason)

    # -- seeding ------------------------------------------------------------------------------
    @once
    def interleaved(self) -> Interleaved:
        """Two agents of the same seed trained alternately, one of another seed for one iteration.

        The two are built one after the other and then alternate: an agent that draws from a
        shared generator (or whose generator another agent's construction reseeds) makes the
        second diverge from the first.
        """
        one = TrainConfig(iterations=1)
        first, second = self.build(), self.build()
        first_records, second_records = [], []
        for _ in range(2):
            first_records.append(first.train(one).records[0])
            second_records.append(second.train(one).records[0])
            if len(first_records) == 1:
                first_after_one = parameters_of(first)
        seed = self.scenario.spec.seed
        other = self.build(seed=(seed or 0) + 1)
        other_records = [other.train(one).records[0]]
        return Interleaved(
            first_records,
            parameters_of(first),
            second_records,
            parameters_of(second),
            other_records,
            parameters_of(other),
            first_after_one,
        )

    # -- several envs -------------------------------------------------------------------------
    @once
    def many_envs(self) -> ManyEnvs:
        """An agent with n_envs=2 trained two iterations."""
        agent = self.build(n_envs=2)
        declared = agent.effective_hyperparameters().iteration_steps
        records = list(agent.train(TrainConfig(iterations=2)).records)
        return ManyEnvs(agent, records, declared)

    # -- resume -------------------------------------------------------------------------------
    def _fixed_env_spec(self) -> dict[str, Any]:
        """The case's spec on the fixed-start env whose episodes last exactly one iteration."""
        trained = self.scenario.trained()
        kind = "discrete" if hasattr(trained.agent.action_space, "n") else "box"
        steps = trained.iteration_steps
        env = {"factory": CUSTOM_FACTORY, "kwargs": {"action": kind, "fixed_horizon": steps}}
        return {"env": env, "n_envs": 1}

    @once
    def resume(self) -> ResumeRuns:
        """A saved, loaded and continued agent next to its twin that never stopped."""
        updates = self._fixed_env_spec()
        before, after = TrainConfig(iterations=RESUME_BEFORE), TrainConfig(iterations=RESUME_AFTER)
        saver, twin = self.build(**updates), self.build(**updates)
        saver.train(before)
        twin.train(before)
        batch = fixed_batch(saver)
        path = self.scenario.workdir / "resume-checkpoint"
        saver.save(path)
        saved = AgentState.of(saver, batch)
        saved_parameters, saved_replay = parameters_of(saver), saver.replay_size
        loaded = Agent.load(path, trust_env_factory=True)  # the suite wrote it, with its own env
        self.scenario.adopt(loaded)
        reloaded = AgentState.of(loaded, batch)
        reloaded_parameters, reloaded_replay = parameters_of(loaded), loaded.replay_size
        resumed_records = list(loaded.train(after).records)
        resumed = Continued.of(loaded, batch, resumed_records)
        uninterrupted = Continued.of(twin, batch, list(twin.train(after).records))
        return ResumeRuns(
            saved=saved,
            saved_replay_size=saved_replay,
            reloaded=reloaded,
            reloaded_replay_size=reloaded_replay,
            reloaded_parameters=reloaded_parameters,
            saved_parameters=saved_parameters,
            resumed=resumed,
            uninterrupted=uninterrupted,
            fresh_process=self._in_fresh_process(path, batch) if self._fresh_process_turn() else None,
        )

    def _fresh_process_turn(self) -> bool:
        """Whether this algorithm is its backend's one fresh-process resume case."""
        case = self.scenario.case
        first = _FRESH_PROCESS_CHECKED.setdefault(case.backend, case.algorithm)
        return first == case.algorithm

    def _in_fresh_process(self, path: Any, batch: Any) -> dict[str, Any]:
        """Load the checkpoint in a new Python process, read it, continue it, report."""
        work = self.scenario.workdir
        np.savez(work / "resume-batch.npz", batch=np.asarray(batch))
        out = work / "resume-fresh"
        done = subprocess.run(
            [sys.executable, "-c", _FRESH_PROCESS, str(path), str(work / "resume-batch.npz"), str(out),
             str(RESUME_AFTER)],
            capture_output=True, text=True, timeout=600, env=_fresh_process_environment(), cwd=work,
        )  # fmt: skip
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-8:])
            raise AssertionError(f"loading and continuing in a fresh process failed:\n{tail}")
        report = json.loads((work / "resume-fresh.json").read_text())
        with np.load(work / "resume-fresh.npz", allow_pickle=False) as saved:
            report["parameters"] = {name: saved[name] for name in saved.files}
        return report


def _fresh_process_environment() -> dict[str, str]:
    """This process's environment, plus the address of the Ray cluster it runs, if any.

    The case is a fresh Python process (nothing of this one's memory), not a fresh Ray cluster:
    starting one costs about 15 s on 2 cores, so the child joins this process's cluster through
    RAY_ADDRESS, Ray's own variable (every Ray program honours it).
    """
    environment = dict(os.environ)
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        environment["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    return environment


def warm_up(agent: Agent) -> list[IterationRecord]:
    """Train one iteration at a time until one reports a loss (updates started), at most WARMUP_CAP."""
    records: list[IterationRecord] = []
    while len(records) < WARMUP_CAP:
        records.append(agent.train(TrainConfig(iterations=1)).records[0])
        if records[-1].losses:
            break
    return records


def fixed_batch(agent: Agent) -> Any:
    """Observations of the fixed-start env at its first steps (the same for every agent)."""
    from polyrl.envs import batch_observations

    env = agent.env_source.make()
    try:
        observation, _ = env.reset(seed=0)
        env.action_space.seed(0)
        singles = [observation]
        for _ in range(7):
            observation, *_ = env.step(env.action_space.sample())
            singles.append(observation)
        return batch_observations(singles, env.observation_space)
    finally:
        env.close()
