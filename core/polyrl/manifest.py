"""The checkpoint manifest stored as polyrl.json beside a backend's native files."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, JsonValue

from polyrl._model import StrictModel
from polyrl.spec import AgentSpec

MANIFEST_NAME = "polyrl.json"
NATIVE_DIR = "native"
FORMAT_VERSION = 1


class FileEntry(StrictModel):
    """Size and SHA-256 of one native file, to detect truncation or edits before loading."""

    size: int
    sha256: str


class CheckpointManifest(StrictModel):
    """What a checkpoint holds and what wrote it."""

    format: Literal["polyrl-checkpoint"] = "polyrl-checkpoint"
    format_version: int = FORMAT_VERSION
    polyrl_version: str
    backend: str
    library: str
    library_version: str | None
    versions: dict[str, str | None] = Field(
        description="Versions of Python and the packages that matter to loading."
    )
    created_at: datetime
    spec: AgentSpec
    env_steps: int
    iterations: int
    episodes: int
    learning_rate: float
    files: dict[str, FileEntry]
    metadata: dict[str, JsonValue] = Field(
        default_factory=dict, description="Free-form notes, e.g. the metric a checkpoint was best at."
    )
