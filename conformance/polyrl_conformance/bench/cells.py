"""Benchmark cells: one backend x algorithm x environment each, with its budget and thresholds.

A backend's cells are the matrix entries its declared algorithms, action and observation
spaces fit (`matrix.MATRIX`), each with whatever its plugin tunes (`tuning`, through the
`polyrl_bench_cells` hook): a measured pass/fail line and note, spec fields on top of the
matrix's. An entry the plugin does not tune is judged against the environment's solve threshold.

`solve_threshold` is the environment's own "solved" return; the run records when the
deterministic evaluation first reaches it. `min_return` is the pass/fail line of the cell: the
mean over seeds of the judged evaluation return must reach it, or the benchmark run fails naming
the cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from polyrl._model import StrictModel
from polyrl.cli.overrides import merge
from polyrl.errors import ConfigurationError
from pydantic import Field, JsonValue, model_validator

from polyrl_conformance.bench.matrix import (
    DISCRETE_ENVS,
    ENV_THRESHOLDS,
    IMAGE_ENVS,
    MATRIX,
    SLICES,
    Slice,
    slices_from,
)
from polyrl_conformance.bench.tuning import CellTuning, collect_tunings

if TYPE_CHECKING:
    from polyrl.backend import BackendInfo
    from polyrl.plugins import PluginRegistry
    from polyrl.spec import AgentSpec

UNTUNED = "not tuned by the backend's plugin: the environment's solve threshold"
UNMEASURED = "not measured yet: the environment's solve threshold"


class BenchCell(StrictModel):
    """One backend x algorithm x environment of the benchmark, with its budget and thresholds."""

    backend: str
    algorithm: str
    env: str
    budget_steps: Annotated[int, Field(gt=0)] = Field(description="Env steps each seed trains (at most).")
    solve_threshold: float = Field(description="The environment's solved return.")
    min_return: float = Field(description="Pass/fail: the judged return (mean over seeds) must reach it.")
    judge: Literal["final", "best"] = Field(
        default="final",
        description="Which evaluation return is compared with min_return: the last one, or the best of "
        "the run (for algorithms whose greedy policy oscillates, e.g. DQN on CartPole-v1).",
    )
    spec: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="AgentSpec fields the cell sets; the agent's preset fills the others.",
    )
    eval_every_steps: Annotated[int, Field(gt=0)] = Field(
        default=2000, description="Evaluate after the first iteration that ends past each multiple of this."
    )
    eval_episodes: Annotated[int, Field(gt=0)] = 10
    ratio_steps: Annotated[int, Field(gt=0)] = Field(
        default=4096, description="Env steps of each run of the polyrl-vs-direct time measurement."
    )
    slices: list[Slice] = Field(min_length=1)
    note: str = Field(default="", description="Where min_return comes from.")

    @model_validator(mode="after")
    def _consistent(self) -> BenchCell:
        reserved = sorted({"backend", "algorithm", "env", "seed"} & self.spec.keys())
        if reserved:
            raise ValueError(f"cell {self.key}: spec must not set {reserved}; they are the cell's own fields")
        if self.min_return > self.solve_threshold:
            raise ValueError(
                f"cell {self.key}: min_return {self.min_return} is above the solve threshold "
                f"{self.solve_threshold}"
            )
        return self

    def trains_like(self, other: BenchCell) -> bool:
        """Whether `other` trains and evaluates exactly like this cell (pass line and note aside)."""
        verdict = {"min_return", "judge", "note", "slices"}
        return self.model_dump(exclude=verdict) == other.model_dump(exclude=verdict)

    @property
    def key(self) -> str:
        """The cell's name in reports: backend/algorithm/env."""
        return f"{self.backend}/{self.algorithm}/{self.env}"

    def agent_spec(self, seed: int) -> AgentSpec:
        """The AgentSpec one seed of this cell trains."""
        from polyrl.spec import AgentSpec

        document: dict[str, Any] = dict(self.spec)
        document.update(backend=self.backend, algorithm=self.algorithm, env=self.env, seed=seed)
        return AgentSpec.model_validate(document)


def fits(info: BackendInfo, algorithm: str, env: str) -> bool:
    """Whether the backend declares `algorithm` for the env's action space and observations.

    An image env (MinAtar) needs "image" among the observation spaces: the algorithm builds a CNN.
    """
    declared = info.algorithms.get(algorithm)
    action = "discrete" if env in DISCRETE_ENVS else "box"
    observation = "image" if env in IMAGE_ENVS else "box"
    return (
        declared is not None
        and action in declared.action_spaces
        and observation in declared.observation_spaces
    )


def make_cell(backend: str, algorithm: str, env: str, tuning: CellTuning | None = None) -> BenchCell:
    """The cell of a matrix entry for `backend`, with the backend's tuning laid over it."""
    entry = MATRIX[(algorithm, env)]
    threshold = ENV_THRESHOLDS[env]
    if tuning is None:
        min_return, note, spec = threshold, UNTUNED, entry.spec
    else:
        min_return = threshold if tuning.min_return is None else tuning.min_return
        note = tuning.note or (UNMEASURED if tuning.min_return is None else "")
        spec = merge(entry.spec, tuning.spec)
    return BenchCell(
        backend=backend,
        algorithm=algorithm,
        env=env,
        budget_steps=entry.budget_steps,
        solve_threshold=threshold,
        min_return=min_return,
        spec=spec,
        eval_every_steps=entry.eval_every_steps or max(1, entry.budget_steps // 20),
        eval_episodes=entry.eval_episodes,
        ratio_steps=entry.ratio_steps,
        judge=entry.judge,
        slices=slices_from(entry.smallest_slice, env),
        note=note,
    )


def backend_cells(
    info: BackendInfo, tunings: dict[tuple[str, str], CellTuning] | None = None
) -> list[BenchCell]:
    """A backend's cells in matrix order: the entries it fits, tuned where `tunings` says.

    Without tunings (a backend whose plugin implements no `polyrl_bench_cells`) every cell is
    judged against the environment's solve threshold.
    """
    tunings = tunings or {}
    unfit = sorted(f"{a}/{e}" for a, e in tunings if not fits(info, a, e))
    if unfit:
        raise ConfigurationError(
            f"backend {info.name!r} tunes bench cells it does not fit (algorithm not declared for that "
            f"action or observation space): {', '.join(unfit)}"
        )
    return [make_cell(info.name, a, e, tunings.get((a, e))) for a, e in MATRIX if fits(info, a, e)]


def declared_cells(plugins: PluginRegistry | None = None) -> list[BenchCell]:
    """Every declared backend's cells (installed or not), backend by backend (sorted by name)."""
    from polyrl.plugins import registry

    plugins = plugins or registry()
    tunings = collect_tunings(plugins)
    backends = plugins.backends()
    return [cell for name in sorted(backends) for cell in backend_cells(backends[name], tunings.get(name))]


def select_cells(
    slice_name: Slice,
    backends: list[str] | None = None,
    algorithms: list[str] | None = None,
    envs: list[str] | None = None,
    cells: list[BenchCell] | None = None,
) -> list[BenchCell]:
    """The cells of a slice for the given (default: every installed) backends, filtered.

    `cells` replaces the cells the backends and their plugins define (tests pass their own).
    Asking for a backend that is not installed raises the registry's error naming what to install.
    """
    from polyrl.plugins import ensure_installed, installed_names, registry

    if slice_name not in SLICES:
        raise ValueError(f"unknown slice {slice_name!r}; choose one of {', '.join(SLICES)}")
    everything = registry().backends()
    if backends:
        for name in backends:
            ensure_installed(registry().backend(name))
        chosen = list(dict.fromkeys(backends))
    else:
        chosen = installed_names(everything)
    tunings = collect_tunings() if cells is None else {}
    selected: list[BenchCell] = []
    for backend in chosen:
        if cells is None:
            own = backend_cells(everything[backend], tunings.get(backend))
        else:
            own = [c for c in cells if c.backend == backend]
        selected += [
            c
            for c in own
            if slice_name in c.slices
            and (not algorithms or c.algorithm in algorithms)
            and (not envs or c.env in envs)
        ]
    return selected
