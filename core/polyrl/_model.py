"""The base class of every public polyrl model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown fields, so a typo is an error, not a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
