"""PlotCallback: a figure of return, episode length and loss per iteration; PNG and live in Jupyter."""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from polyrl.callbacks.base import Callback
from polyrl.callbacks.monitor import LOSS_METRICS
from polyrl.errors import ConfigurationError
from polyrl.files import replace_atomically, temporary_sibling, writable_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell, or Colab's)."""
    module = sys.modules.get("IPython")
    shell = module.get_ipython() if module is not None else None
    if shell is None:
        return False
    return type(shell).__name__ in ("ZMQInteractiveShell", "Shell") or "IPKernelApp" in getattr(
        shell, "config", {}
    )


def notebook_display(png: bytes, handle: Any) -> Any:
    """Show `png` in the notebook output, replacing the previous image of `handle`; return the handle."""
    from IPython.display import Image, display

    image = Image(data=png, format="png")
    if handle is None:
        return display(image, display_id=True)
    handle.update(image)
    return handle


def _values(records: list[IterationRecord], name: str) -> list[float]:
    out = []
    for record in records:
        value = record.flat().get(name)
        out.append(math.nan if value is None else float(value))
    return out


class PlotCallback(Callback):
    """Keep a figure of the training curves; save it as PNG at the end, refresh it live in Jupyter.

    Three panels against the agent's env steps (or iterations, `x="iteration"`): episode
    return (mean line in a min-max band, plus evaluation returns when the run evaluates),
    mean episode length, and the losses. Iterations without finished episodes leave gaps.
    `live=None` refreshes the figure every `every` iterations when running in a Jupyter kernel
    (through IPython.display); `True`/`False` force it. The records of successive train() calls
    with the same callback add up, so continued training extends the curves. `figure` holds the
    last drawn matplotlib Figure; `draw()` makes a new one.
    """

    def __init__(
        self,
        path: str | Path = "training.png",
        live: bool | None = None,
        every: int = 1,
        dpi: int = 100,
        x: Literal["env_steps", "iteration"] = "env_steps",
    ) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ConfigurationError(f"PlotCallback every must be an integer >= 1, got {every!r}")
        if x not in ("env_steps", "iteration"):
            raise ConfigurationError(f"PlotCallback x must be 'env_steps' or 'iteration', got {x!r}")
        self.path = Path(path)
        self.live = live
        self.every = every
        self.dpi = dpi
        self.x = x
        self.records: list[IterationRecord] = []
        self.figure: Figure | None = None
        self._live = False
        self._handle: Any = None

    def on_train_begin(self, context: TrainContext) -> None:
        self.path = writable_file(self.path, repr(self))
        self._live = in_notebook() if self.live is None else bool(self.live)
        self._handle = None

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        self.records.append(record)
        if self._live and len(self.records) % self.every == 0:
            self._show()

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        self.save(self.path)
        if self._live:
            self._show()

    def draw(self) -> Figure:
        """A new figure of the records so far."""
        from matplotlib.figure import Figure

        records = self.records
        xs = [float(getattr(r, self.x)) for r in records]
        figure = Figure(figsize=(8, 8), layout="constrained")
        ret, length, loss = figure.subplots(3, 1, sharex=True)
        low, mean, high = (_values(records, n) for n in ("return_min", "return_mean", "return_max"))
        ret.fill_between(xs, low, high, alpha=0.25, color="tab:blue", label="min-max", linewidth=0)
        ret.plot(xs, mean, color="tab:blue", label="mean")
        evaluation = _values(records, "eval_return_mean")
        if any(not math.isnan(v) for v in evaluation):
            points = [(x, v) for x, v in zip(xs, evaluation, strict=True) if not math.isnan(v)]
            ret.plot(*zip(*points, strict=True), "o-", color="tab:orange", label="evaluation mean")
        ret.set_ylabel("episode return")
        ret.legend(loc="best", fontsize="small")
        length.plot(xs, _values(records, "episode_length_mean"), color="tab:green", label="mean")
        length.set_ylabel("episode length")
        names = [n for n in LOSS_METRICS if any(n in r.losses for r in records)]
        names += sorted({n for r in records for n in r.losses} - set(names))
        for name in names:
            loss.plot(xs, _values(records, name), label=name)
        loss.set_ylabel("loss")
        if names:
            loss.legend(loc="best", fontsize="small")
        loss.set_xlabel("env steps" if self.x == "env_steps" else "iteration")
        if records:
            spec = f"{len(records)} iterations, {records[-1].env_steps} env steps"
            figure.suptitle(f"training curves ({spec})", fontsize="medium")
        self.figure = figure
        return figure

    def png(self) -> bytes:
        """The current figure as PNG bytes."""
        buffer = io.BytesIO()
        self.draw().savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the figure as a PNG file, atomically; return its path."""
        path = Path(path)
        staging = temporary_sibling(path)
        staging.write_bytes(self.png())
        replace_atomically(staging, path)
        return path

    def _show(self) -> None:
        self._handle = notebook_display(self.png(), self._handle)

    def __repr__(self) -> str:
        return f"PlotCallback({str(self.path)!r})"
