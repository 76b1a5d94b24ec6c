"""The plugin manager: finds backends through entry points without importing their libraries.

Every entry point of the "polyrl" group has a recorded outcome (`PluginRegistry.outcomes()`):
loaded (with the backends and hooks it registered), failed (the exception, the entry point and
its distribution) or empty (imported but registered no backend and implements no hook, e.g. a
same-named folder in the working directory shadowing the installed module). Failures are never
silent: `polyrl plugins` lists them, `UnknownBackendError` names them, and each one warns once
per process (`PluginLoadWarning`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import pluggy

from polyrl.backend import BackendInfo
from polyrl.errors import BackendNotInstalledError, PluginError, PluginLoadWarning, UnknownBackendError
from polyrl.hookspecs import PROJECT, BackendSpecs, LifecycleSpecs, PluginSpecs

if TYPE_CHECKING:
    from importlib.metadata import Distribution, EntryPoint

    from polyrl.backend import BackendDriver

ENTRY_POINT_GROUP = "polyrl"
BACKENDS_HOOK = "polyrl_backends"
ADDHOOKS_HOOK = "polyrl_addhooks"

Status = Literal["loaded", "failed", "empty"]
# Where a failed entry point failed: importing its object, registering it with pluggy (a hookimpl
# with a wrong signature or no hookspec, its polyrl_addhooks raising), or its polyrl_backends hook.
Stage = Literal["import", "register", "backends"]
_STAGE_VERBS = {
    "import": "failed to import",
    "register": "was rejected",
    "backends": "failed in its polyrl_backends hook",
}

_warned: set[tuple[str, str, str]] = set()  # (entry point, status, error): each warns once per process


@dataclass(frozen=True)
class EntryPointOutcome:
    """What loading one entry point of the "polyrl" group did."""

    name: str
    value: str
    distribution: str | None
    status: Status
    error: str | None = None
    stage: Stage | None = None
    backends: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()

    @property
    def entry_point(self) -> str:
        """The entry point as declared: `name = module:attr`."""
        return f"{self.name} = {self.value}"

    @property
    def ok(self) -> bool:
        """Whether it loaded and registered something."""
        return self.status == "loaded"

    def describe(self) -> str:
        """One sentence naming the entry point, its distribution and what went wrong (or right)."""
        where = f"the entry point {self.entry_point!r}"
        if self.distribution:
            where += f" (distribution {self.distribution})"
        if self.status == "failed":
            return f"{where} {_STAGE_VERBS[self.stage or 'import']}: {self.error}"
        if self.status == "empty":
            return f"{where} registered nothing: {self.error}"
        registered = [f"backend {b!r}" for b in self.backends] + [f"hook {h!r}" for h in self.hooks]
        return f"{where} loaded: {', '.join(registered)}"


@dataclass
class _Loaded:
    entry_point: EntryPoint
    distribution: str | None
    plugin: object | None = None
    module: types.ModuleType | None = None
    error: str | None = None
    stage: Stage | None = None


def discover_entry_points(group: str = ENTRY_POINT_GROUP) -> list[EntryPoint]:
    """The installed entry points of `group` (one per distribution and name; nothing imported)."""
    return list(importlib.metadata.entry_points(group=group))


def _distribution_label(dist: Distribution | None) -> str | None:
    if dist is None:
        return None
    try:
        return f"{dist.metadata['Name']} {dist.version}"
    except Exception:  # broken metadata: the entry point is still worth naming
        return None


def _error_text(exc: BaseException) -> str:
    """`Type: message` on one line (a pydantic error spans several) so it can be printed unwrapped."""
    message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {message}"


def _module_of(plugin: object) -> types.ModuleType | None:
    if isinstance(plugin, types.ModuleType):
        return plugin
    return sys.modules.get(getattr(type(plugin), "__module__", "") or "")


def _nothing_reason(module: types.ModuleType | None) -> str:
    """Why an entry point registered nothing, with the likely cause when it is a shadowing folder."""
    reason = "no backend from a polyrl_backends hook and no other hook implemented"
    if module is None:
        return reason
    location = getattr(module, "__file__", None)
    if location:
        return f"{reason} (module {module.__name__!r} imported from {location})"
    folders = [str(p) for p in getattr(module, "__path__", [])]
    return (
        f"{reason}; module {module.__name__!r} was imported from the folder(s) {folders}, which have no "
        "__init__.py: a same-named folder (in the working directory?) may shadow the installed module"
    )


class PluginRegistry:
    """The installed polyrl plugins and the backends they declare.

    `entry_points` replaces discovery (tests pass hand-made `importlib.metadata.EntryPoint`s);
    by default the installed entry points of the "polyrl" group are loaded.
    """

    def __init__(
        self, load_entry_points: bool = True, entry_points: Iterable[EntryPoint] | None = None
    ) -> None:
        self.manager = pluggy.PluginManager(PROJECT)
        self.manager.add_hookspecs(BackendSpecs)
        self.manager.add_hookspecs(LifecycleSpecs)
        self.manager.add_hookspecs(PluginSpecs)
        # pytest's pytest_addhooks: a historic call, so every plugin implementing polyrl_addhooks
        # gets it as it registers (from an entry point or by `register`) and adds its hookspecs then.
        self.manager.hook.polyrl_addhooks.call_historic(kwargs={"pluginmanager": self.manager})
        self._backends: dict[str, BackendInfo] | None = None
        self._sources: dict[str, str] = {}
        self._loaded: dict[str, _Loaded] = {}
        self._hook_failures: dict[str, str] = {}  # entry-point name -> its polyrl_backends error
        if load_entry_points:
            found = discover_entry_points() if entry_points is None else list(entry_points)
            self._load(found)

    # -- loading -------------------------------------------------------------------------------
    def _load(self, entry_points: list[EntryPoint]) -> None:
        imported: list[tuple[_Loaded, object]] = []
        for ep in entry_points:
            if ep.group != ENTRY_POINT_GROUP or self.manager.is_blocked(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            record = _Loaded(ep, _distribution_label(dist))
            earlier = self._loaded.get(ep.name)
            if earlier is not None:
                if earlier.entry_point.value != ep.value:  # pluggy would skip it silently
                    owner = f" of {earlier.distribution}" if earlier.distribution else ""
                    record.stage = "register"
                    record.error = (
                        f"the name {ep.name!r} is already taken by the entry point "
                        f"'{earlier.entry_point.name} = {earlier.entry_point.value}'{owner}"
                    )
                    self._loaded[f"{ep.name} = {ep.value}"] = record
                continue
            self._loaded[ep.name] = record
            try:
                plugin = ep.load()
            except Exception as exc:  # any import-time error of a plugin must be reported, not raised
                record.stage, record.error = "import", _error_text(exc)
                continue
            record.module = _module_of(plugin)
            imported.append((record, plugin))
        # Plugins adding hookspecs (polyrl_addhooks) register first: their hooks then exist when
        # the others register, so pluggy checks each hookimpl as its own plugin registers and a
        # wrong signature fails that plugin, not the one declaring the hook. Otherwise discovery order.
        imported.sort(key=lambda item: getattr(item[1], ADDHOOKS_HOOK, None) is None)
        for record, plugin in imported:
            self._register_loaded(record, plugin)
        # Every hookspec is known now: a hookimpl matching none is misspelt (pluggy's check_pending).
        for _plugin, name, message in self._reject_unknown_hooks():
            rejected = self._loaded.get(name or "")
            if rejected is not None:
                rejected.plugin, rejected.stage, rejected.error = None, "register", message
        # Before backends() runs only import and registration failures are known; warn now.
        self._warn(self._outcome(record) for record in self._loaded.values() if record.error)

    def _register_loaded(self, record: _Loaded, plugin: object) -> None:
        """Register an imported entry point's plugin; a failure is recorded on `record`."""
        try:
            self.manager.register(plugin, name=record.entry_point.name)
        except Exception as exc:  # PluginValidationError (bad hookimpl), ValueError (twice), its addhooks
            if self.manager.is_registered(plugin):  # its polyrl_addhooks raised after registration began
                self.manager.unregister(plugin)
            record.stage, record.error = "register", _error_text(exc)
            return
        record.plugin = plugin
        dist = getattr(record.entry_point, "dist", None)
        if dist is not None:
            self._remember_distribution(plugin, dist)

    def _remember_distribution(self, plugin: object, dist: Distribution) -> None:
        # Keep pluggy's list_plugin_distinfo() answering as after load_setuptools_entrypoints
        # (the conformance report reads it): pluggy >= 1.7 stores raw distributions, older a facade.
        store = getattr(self.manager, "_plugin_distinfo", None)
        if store is None:
            return
        if hasattr(self.manager, "list_plugin_distributions"):
            store.append((plugin, dist))
        else:  # pragma: no cover - pluggy 1.5/1.6
            # Looked up at run time: pluggy 1.5/1.6 define DistFacade in pluggy._manager, 1.7 moved it.
            facade = importlib.import_module("pluggy._manager").DistFacade
            store.append((plugin, facade(dist)))

    def _reject_unknown_hooks(self) -> list[tuple[object, str | None, str]]:
        """Unregister every plugin with a hookimpl matching no hookspec (pluggy's check_pending).

        Returns (plugin, its registered name, pluggy's error) for each one rejected.
        """
        rejected: list[tuple[object, str | None, str]] = []
        for _ in range(len(self.manager.get_plugins()) + 1):
            try:
                self.manager.check_pending()
            except pluggy.PluginValidationError as exc:
                rejected.append((exc.plugin, self.manager.get_name(exc.plugin), _error_text(exc)))
                self.manager.unregister(exc.plugin)
                self._backends = None
            else:
                break
        return rejected

    # -- registering by hand ---------------------------------------------------------------------
    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object (module or instance) as an installed plugin would be.

        Its polyrl_addhooks, if any, runs now. A hookimpl whose name matches no hookspec (a
        misspelt hook) raises PluginError.
        """
        self.manager.register(plugin, name=name)
        self._backends = None
        for rejected, _name, message in self._reject_unknown_hooks():
            if rejected is plugin:
                raise PluginError(f"plugin {name or plugin!r} was rejected: {message}")

    def unregister(self, plugin: object) -> None:
        """Remove a plugin registered with `register`."""
        self.manager.unregister(plugin)
        self._backends = None

    # -- what is there ---------------------------------------------------------------------------
    def backends(self) -> dict[str, BackendInfo]:
        """Every declared backend by name (installed library or not)."""
        if self._backends is None:
            found: dict[str, BackendInfo] = {}
            self._sources = {}
            self._hook_failures = {}
            for impl in self.manager.hook.polyrl_backends.get_hookimpls():
                try:
                    declared: Any = impl.function()  # a plugin's answer: checked by model_validate
                    infos = [BackendInfo.model_validate(info) for info in declared or []]
                except Exception as exc:
                    record = self._loaded.get(impl.plugin_name)
                    if record is None or record.plugin is not impl.plugin:
                        raise  # registered by hand: its author sees the error itself
                    self._hook_failures[impl.plugin_name] = _error_text(exc)
                    continue
                for info in infos:
                    if info.name in found:
                        raise PluginError(
                            f"two plugins declare the backend {info.name!r} (one is "
                            f"{impl.plugin_name!r}); uninstall one of them"
                        )
                    found[info.name] = info
                    self._sources[info.name] = impl.plugin_name
            self._backends = found
            self._warn(self.problems())
        return self._backends

    def outcomes(self) -> list[EntryPointOutcome]:
        """What every entry point of the "polyrl" group did when loaded, in discovery order."""
        self.backends()
        return [self._outcome(record) for record in self._loaded.values()]

    def problems(self) -> list[EntryPointOutcome]:
        """The entry points that failed to load or registered nothing."""
        return [outcome for outcome in self.outcomes() if not outcome.ok]

    def _outcome(self, record: _Loaded) -> EntryPointOutcome:
        ep = record.entry_point
        outcome = EntryPointOutcome(ep.name, ep.value, record.distribution, "loaded")
        if record.error is not None or record.plugin is None:
            return replace(outcome, status="failed", stage=record.stage, error=record.error)
        if ep.name in self._hook_failures:
            return replace(outcome, status="failed", stage="backends", error=self._hook_failures[ep.name])
        backends = tuple(sorted(b for b, source in self._sources.items() if source == ep.name))
        callers = self.manager.get_hookcallers(record.plugin) or []
        hooks = tuple(sorted(c.name for c in callers if c.name != BACKENDS_HOOK))
        if backends or hooks:
            return replace(outcome, backends=backends, hooks=hooks)
        return replace(outcome, status="empty", error=_nothing_reason(record.module))

    @staticmethod
    def _warn(outcomes: Iterable[EntryPointOutcome]) -> None:
        """Warn about each failed or empty entry point, once per process."""
        for outcome in outcomes:
            key = (outcome.entry_point, outcome.status, outcome.error or "")
            if outcome.ok or key in _warned:
                continue
            _warned.add(key)
            warnings.warn(f"polyrl plugin problem: {outcome.describe()}", PluginLoadWarning, stacklevel=4)

    def backend(self, name: str) -> BackendInfo:
        """The BackendInfo of `name`, or an error listing what is there and what failed to load."""
        backends = self.backends()
        if name not in backends:
            problems = "".join(f"; {problem.describe()}" for problem in self.problems())
            raise UnknownBackendError(
                f"unknown backend {name!r}; installed: {installed_names(backends)}, declared "
                f"but missing their library: {missing_names(backends)}{problems}. Third-party backends "
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
            driver: type[BackendDriver] = getattr(module, class_name)
        except AttributeError as exc:
            raise PluginError(f"backend {name!r}: {info.driver!r} does not exist") from exc
        return driver

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
