"""Finds backends through pluggy and entry points, and picks one.

Selection: an explicit name (argument, then BONDCTL_BACKEND), otherwise the available backend
with the highest priority. Plugins can be restricted with BONDCTL_PLUGINS=a,b (only these
entry points load) or blocked with BONDCTL_DISABLE_PLUGINS=a,b (as tox and llm allow).

select() is on the CNI plugin's path for every pod: a built-in backend it is asked for by name
is imported directly, and so is the default (the best available built-in): pluggy and the
entry-point scan load only for a name that is not built in, and for listing (backends()).
The built-ins are still entry points too, so listing shows them as before.
"""

from __future__ import annotations

import os
import sys

from .backend import Availability, Backend
from .entrypoints import BACKENDS_GROUP, entry_points
from .errors import BackendUnavailableError, ValidationError
from .record import Record

TYPE_CHECKING = False  # typing costs milliseconds on every CNI ADD: for the checker only
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    import pluggy

# The built-in backends, highest priority first (a unit test holds this to their `priority`).
BUILTIN = {"netlink": "bondctl.backends.netlink", "iproute2": "bondctl.backends.iproute2",
           "sysfs": "bondctl.backends.sysfs"}
ENTRY_POINT_GROUP = BACKENDS_GROUP


def _module(name: str) -> Any:
    """importlib.import_module(name) without importing importlib and warnings: half a
    millisecond of every CNI ADD and DEL."""
    __import__(name)
    return sys.modules[name]


def builtin(name: str) -> type[Backend]:
    """The class of the built-in backend `name`, imported directly."""
    module = _module(BUILTIN[name])
    found: list[type[Backend]] = []
    module.bondctl_register_backends(register=found.append)
    return found[0]


def _builtin_allowed(name: str) -> bool:
    only, blocked = _names("BONDCTL_PLUGINS"), _names("BONDCTL_DISABLE_PLUGINS") or set()
    return name in BUILTIN and name not in blocked and (only is None or name in only)


class BackendInfo(Record):
    name: str
    cls: type[Backend]
    origin: str  # "bondctl 0.1.0 (entry point iproute2)" or the plugin's distribution

    def availability(self) -> Availability:
        try:
            return self.cls.availability()
        except Exception as exc:  # a third-party probe must not break listing
            return Availability(False, f"availability check failed: {exc}")


def _names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    return None if raw is None else {n.strip() for n in raw.split(",") if n.strip()}


class Registry:
    def __init__(self, modules: Sequence[object] = (), *, entry_point_group: str | None =
                 ENTRY_POINT_GROUP) -> None:
        self._modules = tuple(modules)
        self._group = entry_point_group
        self._pm: pluggy.PluginManager | None = None
        self.origins: dict[str, str] = {}
        self._errors: list[str] = []
        self._skipped: dict[str, str] = {}
        self._backends: dict[str, BackendInfo] | None = None

    @property
    def pm(self) -> pluggy.PluginManager:
        """pluggy with every plugin loaded: made on first use, never on the lean path."""
        if self._pm is None:
            import pluggy

            from . import hookspecs

            self._pm = pluggy.PluginManager(hookspecs.PROJECT)
            self._pm.add_hookspecs(hookspecs)
            if self._group:
                self._load_entry_points(self._group)
            for module in self._modules:
                self._pm.register(module)
                self.origins[self._pm.get_name(module) or repr(module)] = \
                    "registered in-process"
        return self._pm

    @property
    def errors(self) -> list[str]:
        """Plugins that failed to load, for `bondctl backends`."""
        self.pm  # noqa: B018 - loading is what fills it
        return self._errors

    @property
    def skipped(self) -> dict[str, str]:
        """Entry point name -> why it was not loaded."""
        self.pm  # noqa: B018
        return self._skipped

    def _lean(self) -> bool:
        """Whether select() may import built-ins directly: the default registry only (one
        given modules or another group is a test's or an embedder's world)."""
        return not self._modules and self._group == ENTRY_POINT_GROUP and self._pm is None

    def _load_entry_points(self, group: str) -> None:
        only, blocked = _names("BONDCTL_PLUGINS"), _names("BONDCTL_DISABLE_PLUGINS") or set()
        for ep in entry_points(group):
            if ep.name in blocked:
                self._skipped[ep.name] = "blocked by BONDCTL_DISABLE_PLUGINS"
                continue
            if only is not None and ep.name not in only:
                self._skipped[ep.name] = "not in BONDCTL_PLUGINS"
                continue
            module_name, _, attr = ep.value.partition(":")
            try:
                plugin = _module(module_name)
                if attr:
                    plugin = getattr(plugin, attr)
            except Exception as exc:
                reason = f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
                self._errors.append(f"{ep.name} ({ep.dist}): {reason}")
                self._skipped[ep.name] = reason
                continue
            assert self._pm is not None
            if self._pm.is_registered(plugin):
                continue
            self._pm.register(plugin, name=ep.name)
            self.origins[ep.name] = f"{ep.dist} {ep.version} (entry point {ep.name})"

    def backends(self) -> dict[str, BackendInfo]:
        if self._backends is None:
            found: dict[str, BackendInfo] = {}
            for impl in self.pm.hook.bondctl_register_backends.get_hookimpls():
                origin = self.origins.get(impl.plugin_name, impl.plugin_name)

                def register(cls: type[Backend], origin: str = origin) -> None:
                    if cls.name in found:
                        raise ValidationError(
                            f"backend {cls.name} registered twice "
                            f"({found[cls.name].origin} and {origin})")
                    found[cls.name] = BackendInfo(cls.name, cls, origin)

                impl.function(register=register)
            self._backends = found
        return self._backends

    def get(self, name: str) -> BackendInfo:
        info = self.backends().get(name)
        if info is None:
            known = ", ".join(sorted(self.backends())) or "none"
            message = f"no backend named {name!r}; installed: {known}"
            if name in self.skipped:  # installed, but it did not load: a host problem
                raise BackendUnavailableError(f"{message} ({name}: {self.skipped[name]})")
            raise ValidationError(message)  # a typo in the name: a usage error
        return info

    def select(self, name: str | None = None) -> Backend:
        """An instance of the named backend, or of the best available one."""
        name = name or os.environ.get("BONDCTL_BACKEND") or None
        if self._lean():
            chosen = self._select_builtin(name)
            if chosen is not None:
                return chosen
        if name:
            info = self.get(name)
            available = info.availability()
            if not available.ok:
                raise BackendUnavailableError(f"backend {name} is not available: "
                                              f"{available.reason}")
            return info.cls()
        reasons = []
        for info in sorted(self.backends().values(), key=lambda i: -i.cls.priority):
            available = info.availability()
            if available.ok:
                return info.cls()
            reasons.append(f"{info.name}: {available.reason}")
        # Never an empty reason: a backend that did not even load says why.
        reasons += [f"{name}: {why}" for name, why in self.skipped.items()]
        if not reasons:
            reasons.append("no backend is installed (no `bondctl.backends` entry point on "
                           "sys.path)")
        raise BackendUnavailableError("no backend is available here: " + "; ".join(reasons))

    def _select_builtin(self, name: str | None) -> Backend | None:
        """select() without pluggy: the built-in `name`, or with no name the first available
        built-in by priority. None: ask the full registry (a third-party name, a blocked
        built-in, or no built-in available, whose reasons the full path gives)."""
        names = [name] if name else list(BUILTIN)
        for candidate in names:
            if not _builtin_allowed(candidate):
                return None
            try:
                cls = builtin(candidate)
            except ImportError:
                return None  # a shadowed or broken tree: the full path says what is missing
            available = _available(cls)
            if available.ok:
                return cls()
            if name:
                raise BackendUnavailableError(f"backend {name} is not available: "
                                              f"{available.reason}")
        return None


def _available(cls: type[Backend]) -> Availability:
    return BackendInfo(cls.name, cls, "").availability()
