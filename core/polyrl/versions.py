"""Versions of the packages a checkpoint depends on, read from metadata (imports nothing)."""

from __future__ import annotations

import importlib.metadata
import platform

TRACKED = ("numpy", "gymnasium", "torch", "pydantic")


def package_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def polyrl_version() -> str:
    """This polyrl's version ("0+unknown" when run from an uninstalled tree)."""
    return package_version("polyrl") or "0+unknown"


def environment_versions(*extra: str) -> dict[str, str | None]:
    """Python and tracked package versions, plus `extra` distributions."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in (*TRACKED, *extra):
        versions[name] = package_version(name)
    return versions
