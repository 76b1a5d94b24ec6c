"""Which (backend, algorithm, environment) combinations the suite checks, and their specs.

Cases come from the plugin registry, so a third-party backend is checked exactly like the
built-in ones: every algorithm it advertises, on every suite environment whose observation and
action spaces the algorithm declares (`AlgorithmInfo.observation_spaces/action_spaces`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from polyrl_conformance.envs import ENVIRONMENTS, MISMATCH_PROBE, ConformanceEnv

if TYPE_CHECKING:
    from polyrl import AgentSpec
    from polyrl.backend import BackendInfo

#: Spec fields every case uses (a backend's `conformance_overrides` for the algorithm win).
#: The values are deliberately not the libraries' defaults, so the effective-hyperparameters
#: check can tell "mapped from the spec" from "left at the library default".
#: No preset: the suite checks what a driver does with the spec it is given, and a preset (filled
#: in by the core before any driver sees the spec) would make the cases differ by environment.
SUITE_FIELDS: dict[str, Any] = {
    "preset": "none",
    "seed": 0,
    "gamma": 0.97,
    "learning_rate": 5e-4,
    "network": {"hidden": [24, 12], "activation": "relu"},
}


@dataclass(frozen=True)
class Case:
    """One backend x algorithm x environment combination."""

    backend: str
    algorithm: str
    env: ConformanceEnv

    @property
    def id(self) -> str:
        """The test id: backend-algorithm-env."""
        return f"{self.backend}-{self.algorithm}-{self.env.key}"

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class AlgorithmCase(Case):
    """A backend x algorithm, checked on the algorithm's first fitting environment."""

    @property
    def id(self) -> str:
        """The test id: backend-algorithm (the env is in the report's detail)."""
        return f"{self.backend}-{self.algorithm}"


@dataclass
class Cases:
    """Every case of one suite run."""

    backends: list[BackendInfo]
    fitting: list[Case]
    mismatched: list[Case]
    algorithms: list[AlgorithmCase]


@cache
def space_kinds(env: ConformanceEnv) -> tuple[str, str]:
    """(observation kind, action kind) of an environment, probed once per process.

    The kinds an algorithm declares: those of the env as the core hands it to a backend (Dict and
    Discrete observations encoded into a Box vector; a rank-3 bounded Box is an "image").
    """
    from polyrl.envs import space_kind
    from polyrl.observations.images import image_layout

    probe = make_env(env)
    try:
        observations = probe.observation_space
        kind = "image" if image_layout(observations) is not None else space_kind(observations)
        return kind, space_kind(probe.action_space)
    finally:
        probe.close()


def make_env(env: ConformanceEnv) -> Any:
    """A fresh instance of a suite environment, built the way the core builds it."""
    from polyrl import AgentSpec
    from polyrl.backend import EnvSource

    spec = AgentSpec(env=env.spec_value())
    return EnvSource.from_spec(spec).make()


def fits(info: BackendInfo, algorithm: str, env: ConformanceEnv) -> bool:
    """Whether the algorithm declares both of the environment's space kinds."""
    declared = info.algorithms[algorithm]
    observation, action = space_kinds(env)
    return observation in declared.observation_spaces and action in declared.action_spaces


def _split(values: list[str]) -> list[str]:
    return [v.strip().lower() for value in values for v in value.split(",") if v.strip()]


class SelectionError(ValueError):
    """The command line asks for backends, algorithms or environments that are not there."""


def select_backends(requested: list[str]) -> list[BackendInfo]:
    """The BackendInfos to check: those named (comma or repeated), else every installed one."""
    from polyrl import registry
    from polyrl.plugins import ensure_installed, is_installed

    declared = registry().backends()
    names = _split(requested)
    if not names:
        return [declared[n] for n in sorted(declared) if is_installed(declared[n])]
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise SelectionError(
            f"--polyrl-backend {', '.join(unknown)}: no installed plugin declares it; declared backends: "
            f"{sorted(declared)}. A plugin registers through the 'polyrl' entry-point group: "
            "is its package installed in this environment?"
        )
    chosen = [declared[n] for n in dict.fromkeys(names)]
    for info in chosen:
        ensure_installed(info)
    return chosen


def build_cases(
    requested_backends: list[str], requested_algorithms: list[str], requested_envs: list[str]
) -> Cases:
    """All cases for the command-line selection (empty lists mean "all")."""
    backends = select_backends(requested_backends)
    algorithms = _split(requested_algorithms)
    env_keys = [e.lower() for e in _split(requested_envs)]
    known_envs = [e.key.lower() for e in ENVIRONMENTS]
    if unknown_envs := [k for k in env_keys if k not in known_envs]:
        raise SelectionError(
            f"--polyrl-env {', '.join(unknown_envs)}: not a suite environment; choose from "
            f"{[e.key for e in ENVIRONMENTS]}"
        )
    if algorithms and not any(a in info.algorithms for info in backends for a in algorithms):
        raise SelectionError(
            f"--polyrl-algorithm {', '.join(algorithms)}: none of the selected backends "
            f"{[b.name for b in backends]} provides it"
        )
    fitting: list[Case] = []
    mismatched: list[Case] = []
    per_algorithm: list[AlgorithmCase] = []
    for info in backends:
        for algorithm in sorted(info.algorithms):
            if algorithms and algorithm not in algorithms:
                continue
            fit = [env for env in ENVIRONMENTS if fits(info, algorithm, env)]
            misfit = [env for env in ENVIRONMENTS if not fits(info, algorithm, env)]
            if not fits(info, algorithm, MISMATCH_PROBE):
                misfit.append(MISMATCH_PROBE)
            selected = [e for e in fit if not env_keys or e.key.lower() in env_keys]
            fitting += [Case(info.name, algorithm, env) for env in selected]
            mismatched += [
                Case(info.name, algorithm, env)
                for env in misfit
                if not env_keys or env.key.lower() in env_keys
            ]
            if selected:
                # Algorithm-level checks use the first fitting env in ENVIRONMENTS' order (the
                # suite's own env first), among the selected envs when --polyrl-env narrows them.
                per_algorithm.append(AlgorithmCase(info.name, algorithm, selected[0]))
    return Cases(backends, fitting, mismatched, per_algorithm)


def make_spec(info: BackendInfo, case: Case) -> AgentSpec:
    """The AgentSpec of a case: the suite's fields, the backend's tiny overrides, the case."""
    from polyrl import AgentSpec

    fields: dict[str, Any] = dict(SUITE_FIELDS)
    fields.update(info.conformance_overrides.get(case.algorithm, {}))
    fields.update(backend=case.backend, algorithm=case.algorithm, env=case.env.spec_value())
    return AgentSpec.model_validate(fields)
