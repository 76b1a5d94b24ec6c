"""The plugin manager: finds backends through entry points without importing their libraries."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from functools import lru_cache
from typing import TYPE_CHECKING

import pluggy

from polyrl.backend import BackendInfo
from polyrl.errors import BackendNotInstalledError, PluginError, UnknownBackendError
from polyrl.hookspecs import PROJECT, BackendSpecs, BenchmarkSpecs, LifecycleSpecs

if TYPE_CHECKING:
    from polyrl.backend import BackendDriver

ENTRY_POINT_GROUP = "polyrl"


class PluginRegistry:
    """The installed polyrl plugins and the backends they declare."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager(PROJECT)
        self.manager.add_hookspecs(BackendSpecs)
        self.manager.add_hookspecs(LifecycleSpecs)
        self.manager.add_hookspecs(BenchmarkSpecs)
        if load_entry_points:
            self.manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        self._backends: dict[str, BackendInfo] | None = None
        self._sources: dict[str, str] = {}

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object (module or instance) as an installed plugin would be."""
        self.manager.register(plugin, name=name)
        self._backends = None

    def unregister(self, plugin: object) -> None:
        """Remove a plugin registered with `register`."""
        self.manager.unregister(plugin)
        self._backends = None

    def backends(self) -> dict[str, BackendInfo]:
        """Every declared backend by name (installed library or not)."""
        if self._backends is None:
            found: dict[str, BackendInfo] = {}
            self._sources = {}
            for impl in self.manager.hook.polyrl_backends.get_hookimpls():
                for info in impl.function() or []:
                    info = BackendInfo.model_validate(info)
                    if info.name in found:
                        raise PluginError(
                            f"two plugins declare the backend {info.name!r} (one is "
                            f"{impl.plugin_name!r}); uninstall one of them"
                        )
                    found[info.name] = info
                    self._sources[info.name] = impl.plugin_name
            self._backends = found
        return self._backends

    def backend(self, name: str) -> BackendInfo:
        """The BackendInfo of `name`, or an error listing what is there."""
        backends = self.backends()
        if name not in backends:
            raise UnknownBackendError(
                f"unknown backend {name!r}; installed: {installed_names(backends)}, declared "
                f"but missing their library: {missing_names(backends)}. Third-party backends "
                "come from packages registering the 'polyrl' entry-point group."
            )
        return backends[name]

    def source(self, name: str) -> str:
        """The name of the plugin that declared backend `name` (its entry-point name if installed)."""
        self.backend(name)
        return self._sources[name]

    def driver_class(self, name: str) -> type[BackendDriver]:
        """Import and return the driver class of a backend (this imports its library)."""
        info = self.backend(name)
        ensure_installed(info)
        module_name, _, class_name = info.driver.partition(":")
        module = importlib.import_module(module_name)
        try:
            return getattr(module, class_name)
        except AttributeError as exc:
            raise PluginError(f"backend {name!r}: {info.driver!r} does not exist") from exc

    def lifecycle_plugins(self) -> list[object]:
        """Installed plugins implementing callback hooks (integrations that see every run)."""
        plugins = []
        for plugin in self.manager.get_plugins():
            callers = self.manager.get_hookcallers(plugin) or []
            if any(caller.name.startswith("on_") for caller in callers):
                plugins.append(plugin)
        return plugins


def is_installed(info: BackendInfo) -> bool:
    """Whether every module the backend requires can be imported (without importing it)."""
    return all(importlib.util.find_spec(module) is not None for module in info.requires)


def library_version(info: BackendInfo) -> str | None:
    """The installed version of the backend's library, read from metadata (no import)."""
    try:
        return importlib.metadata.version(info.library)
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_installed(info: BackendInfo) -> None:
    """Raise BackendNotInstalledError naming the install command if a library is missing."""
    missing = [m for m in info.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendNotInstalledError(
            f"backend {info.name!r} needs {info.library} (missing module(s): "
            f"{', '.join(missing)}); install it with: pip install {info.install_hint}"
        )


def installed_names(backends: dict[str, BackendInfo]) -> list[str]:
    """Names of the backends whose library is installed."""
    return sorted(n for n, info in backends.items() if is_installed(info))


def missing_names(backends: dict[str, BackendInfo]) -> list[str]:
    """Names of declared backends whose library is missing."""
    return sorted(n for n, info in backends.items() if not is_installed(info))


@lru_cache(maxsize=1)
def registry() -> PluginRegistry:
    """The process-wide registry of installed plugins (built on first use)."""
    return PluginRegistry()
