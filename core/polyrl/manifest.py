"""The checkpoint manifest stored as polyrl.json beside a backend's native files."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import Field, JsonValue, field_validator, model_validator

from polyrl._model import SpecModel
from polyrl.presets.model import PresetChoice
from polyrl.spec import AgentSpec

MANIFEST_NAME = "polyrl.json"
NATIVE_DIR = "native"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (FORMAT_VERSION,)
"""The manifest format versions this polyrl reads."""

NonNegativeInt = Annotated[int, Field(ge=0)]


def check_native_name(name: str) -> str:
    """`name` if it is a plain relative POSIX path inside the native dir, else ValueError."""
    parts = PurePosixPath(name).parts
    if (
        not name
        or "\\" in name
        or "\0" in name
        or name.startswith("/")
        or any(part in ("..", ".", "") for part in name.split("/"))
        or not parts
    ):
        raise ValueError(
            f"file name {name!r} is not a relative path inside {NATIVE_DIR}/ (absolute paths, '..', "
            "'.', empty parts and backslashes are refused)"
        )
    return name


def _finite_or_none(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


class FileEntry(SpecModel):
    """Size and SHA-256 of one native file, to detect truncation or edits before loading."""

    size: NonNegativeInt
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class CheckpointManifest(SpecModel):
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
    env_steps: NonNegativeInt
    iterations: NonNegativeInt
    episodes: NonNegativeInt
    learning_rate: Annotated[float, Field(ge=0)]
    preset: PresetChoice | None = None
    """The preset that filled the spec's unset fields when the agent was built (None: none, or a
    checkpoint from before presets); `spec` already holds its values."""
    files: dict[str, FileEntry]
    metadata: dict[str, JsonValue] = Field(
        default_factory=dict, description="Free-form notes, e.g. the metric a checkpoint was best at."
    )

    @field_validator("metadata", mode="before")
    @classmethod
    def _non_finite_as_null(cls, value: object) -> object:
        # JSON has no NaN: a non-finite note (a NaN metric) is written and read back as null.
        return _finite_or_none(value)

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_FORMAT_VERSIONS:
            raise ValueError(
                f"format_version {value} is unknown; this polyrl reads format_version "
                f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}. Load it with the polyrl that wrote it"
            )
        return value

    @field_validator("files")
    @classmethod
    def _relative_names(cls, value: dict[str, FileEntry]) -> dict[str, FileEntry]:
        for name in value:
            check_native_name(name)
        return value

    @model_validator(mode="after")
    def _backend_matches_spec(self) -> CheckpointManifest:
        if self.backend != self.spec.backend:
            raise ValueError(
                f"the manifest's backend {self.backend!r} differs from its spec's backend "
                f"{self.spec.backend!r}; the manifest was edited or is damaged"
            )
        return self
