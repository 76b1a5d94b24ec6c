"""TensorBoard: every iteration's numbers as scalars, the spec as text."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from polyrl.callbacks.base import Callback
from polyrl.errors import ConfigurationError
from polyrl.files import writable_dir
from polyrl.redact import redact_uri

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult

Writer = Literal["auto", "tensorboardX", "torch"]


def _available(writer: Writer) -> Literal["tensorboardX", "torch"]:
    """The writer library to use: tensorboardX (no torch import) else torch.utils.tensorboard."""
    has_x = importlib.util.find_spec("tensorboardX") is not None
    has_torch = (
        importlib.util.find_spec("torch") is not None and importlib.util.find_spec("tensorboard") is not None
    )
    if writer in ("auto", "tensorboardX") and has_x:
        return "tensorboardX"
    if writer in ("auto", "torch") and has_torch:
        return "torch"
    raise ConfigurationError(
        f"TensorBoard logging (writer={writer!r}) needs tensorboardX, or torch with tensorboard: "
        "pip install tensorboard (torch comes with every polyrl backend) or pip install tensorboardX"
    )


class TensorBoard(Callback):
    """Log every number of every IterationRecord as a TensorBoard scalar, under its polyrl name.

    Losses, backend metrics and eval_* statistics included. The x axis (`step`) is the agent's
    lifetime env steps (default) or iteration. The spec and TrainConfig are logged as text when
    training starts. Writes through tensorboardX if installed (it needs no torch import), else
    through torch.utils.tensorboard (needs the tensorboard package); `writer` forces one.
    View with `tensorboard --logdir <log_dir>`.
    """

    def __init__(
        self,
        log_dir: str | Path = "runs/tensorboard",
        step: Literal["env_steps", "iteration"] = "env_steps",
        writer: Writer = "auto",
    ) -> None:
        if step not in ("env_steps", "iteration"):
            raise ConfigurationError(f"TensorBoard step must be 'env_steps' or 'iteration', got {step!r}")
        if writer not in ("auto", "tensorboardX", "torch"):
            raise ConfigurationError(
                f"TensorBoard writer must be 'auto', 'tensorboardX' or 'torch', got {writer!r}"
            )
        self.log_dir = Path(log_dir)
        self.step = step
        self.writer = writer
        self._writer: Any = None

    def on_train_begin(self, context: TrainContext) -> None:
        self._close()  # a writer left open by a run that raised
        library = _available(self.writer)
        self.log_dir = writable_dir(self.log_dir, repr(self))
        if library == "tensorboardX":
            from tensorboardX import SummaryWriter
        else:
            from torch.utils.tensorboard import SummaryWriter
        self._writer = SummaryWriter(str(self.log_dir))
        spec = context.agent.spec.model_dump_json(indent=2, exclude_defaults=True)
        config = context.config.model_dump_json(indent=2, exclude_defaults=True)
        step = context.env_steps if self.step == "env_steps" else context.iteration
        # Markdown code blocks keep the JSON readable in TensorBoard's text tab.
        self._writer.add_text("spec", f"```\n{spec}\n```", step)
        self._writer.add_text("train_config", f"```\n{config}\n```", step)

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        if self._writer is None:
            return
        step = record.env_steps if self.step == "env_steps" else record.iteration
        for name, value in record.flat().items():
            if value is not None:
                self._writer.add_scalar(name, float(value), step)
        self._writer.flush()

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        self._close()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __repr__(self) -> str:
        return f"TensorBoard({redact_uri(str(self.log_dir))!r}, step={self.step!r})"
