"""What a backend plugin tunes in its benchmark cells, collected through `polyrl_bench_cells`.

The bench names no backend: each plugin returns `CellTuning`s for its own backends, e.g. the
pass/fail line it measured for PPO on CartPole-v1 and the note saying how. A tuning must name a
backend its plugin declares and an entry of the matrix; anything else is refused loudly,
naming the plugin, so a typo in an environment name does not silently leave a cell untuned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from polyrl._model import StrictModel
from polyrl.errors import ConfigurationError
from pydantic import Field, JsonValue, ValidationError

from polyrl_conformance.bench.matrix import ENV_THRESHOLDS, MATRIX

if TYPE_CHECKING:
    from polyrl.plugins import PluginRegistry

TUNING_HOOK = "polyrl_bench_cells"


class CellTuning(StrictModel):
    """A backend's own settings for one algorithm x environment entry of the bench's matrix."""

    backend: str = Field(description="A backend the returning plugin declares.")
    algorithm: str
    env: str
    min_return: float | None = Field(
        default=None,
        description="The cell's pass/fail line (mean judged return over seeds); None: the env's solve "
        "threshold. Set from measurements, below the threshold where the budget does not solve the env "
        "on every seed.",
    )
    note: str = Field(default="", description="Where min_return comes from: the measurement.")
    spec: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="AgentSpec fields laid over the matrix entry's, nested sections key by key.",
    )

    @property
    def entry(self) -> tuple[str, str]:
        """The matrix entry tuned: (algorithm, env)."""
        return (self.algorithm, self.env)

    @classmethod
    def from_lines(
        cls,
        backend: str,
        lines: Mapping[tuple[str, str], tuple[float, str]],
        specs: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    ) -> list[CellTuning]:
        """A plugin's tunings from its table (algorithm, env) -> (pass line, note), specs beside it."""
        return [
            cls(
                backend=backend,
                algorithm=algorithm,
                env=env,
                min_return=line,
                note=note,
                spec=dict((specs or {}).get((algorithm, env), {})),
            )
            for (algorithm, env), (line, note) in lines.items()
        ]


def _checked(plugin: str, declared: set[str], items: object) -> list[CellTuning]:
    if not isinstance(items, list | tuple):
        raise ConfigurationError(
            f"plugin {plugin!r}: {TUNING_HOOK} must return a list of CellTuning, not {type(items).__name__}"
        )
    tunings = []
    for item in items:
        try:
            tuning = CellTuning.model_validate(item)
        except ValidationError as exc:
            raise ConfigurationError(
                f"plugin {plugin!r}: {TUNING_HOOK} returned an invalid tuning: {exc}"
            ) from exc
        if tuning.backend not in declared:
            raise ConfigurationError(
                f"plugin {plugin!r} tunes the bench cells of backend {tuning.backend!r}, which it does not "
                f"declare (it declares {sorted(declared)})"
            )
        if tuning.entry not in MATRIX:
            raise ConfigurationError(
                f"plugin {plugin!r} tunes {tuning.backend}/{tuning.algorithm}/{tuning.env}, which is not in "
                f"the bench's matrix: {', '.join(f'{a}/{e}' for a, e in MATRIX)}"
            )
        if tuning.min_return is not None and tuning.min_return > ENV_THRESHOLDS[tuning.env]:
            raise ConfigurationError(
                f"plugin {plugin!r}: the pass line {tuning.min_return:g} of "
                f"{tuning.backend}/{tuning.algorithm}/{tuning.env} is above the env's solve threshold "
                f"{ENV_THRESHOLDS[tuning.env]:g}"
            )
        tunings.append(tuning)
    return tunings


def collect_tunings(plugins: PluginRegistry | None = None) -> dict[str, dict[tuple[str, str], CellTuning]]:
    """Every plugin's tuning: backend -> (algorithm, env) -> CellTuning.

    Reads the `polyrl_bench_cells` hookimpls one by one, so an error names the plugin at fault.
    """
    from polyrl.plugins import registry

    plugins = plugins or registry()
    backends = plugins.backends()
    caller = getattr(plugins.manager.hook, TUNING_HOOK, None)
    found: dict[str, dict[tuple[str, str], CellTuning]] = {}
    for impl in caller.get_hookimpls() if caller is not None else []:
        declared = {name for name in backends if plugins.source(name) == impl.plugin_name}
        for tuning in _checked(impl.plugin_name, declared, impl.function()):
            own = found.setdefault(tuning.backend, {})
            if tuning.entry in own:
                cell = f"{tuning.backend}/{tuning.algorithm}/{tuning.env}"
                raise ConfigurationError(f"plugin {impl.plugin_name!r} tunes {cell} twice")
            own[tuning.entry] = tuning
    return found
