"""Finds backends through pluggy and entry points, and picks one.

Selection: an explicit name (argument, then BONDCTL_BACKEND), otherwise the available backend
with the highest priority. Plugins can be restricted with BONDCTL_PLUGINS=a,b (only these
entry points load) or blocked with BONDCTL_DISABLE_PLUGINS=a,b (as tox and llm allow).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import NamedTuple

import pluggy

from . import hookspecs
from .backend import Availability, Backend
from .entrypoints import entry_points
from .errors import BackendUnavailableError, ValidationError


class BackendInfo(NamedTuple):
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
                 hookspecs.ENTRY_POINT_GROUP) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.origins: dict[str, str] = {}
        self.errors: list[str] = []  # plugins that failed to load, for `bondctl backends`
        self.skipped: dict[str, str] = {}  # entry point name -> why it was not loaded
        if entry_point_group:
            self._load_entry_points(entry_point_group)
        for module in modules:
            self.pm.register(module)
            self.origins[self.pm.get_name(module) or repr(module)] = "registered in-process"
        self._backends: dict[str, BackendInfo] | None = None

    def _load_entry_points(self, group: str) -> None:
        only, blocked = _names("BONDCTL_PLUGINS"), _names("BONDCTL_DISABLE_PLUGINS") or set()
        for ep in entry_points(group):
            if ep.name in blocked:
                self.skipped[ep.name] = "blocked by BONDCTL_DISABLE_PLUGINS"
                continue
            if only is not None and ep.name not in only:
                self.skipped[ep.name] = "not in BONDCTL_PLUGINS"
                continue
            module_name, _, attr = ep.value.partition(":")
            try:
                plugin = importlib.import_module(module_name)
                if attr:
                    plugin = getattr(plugin, attr)
            except Exception as exc:
                reason = f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
                self.errors.append(f"{ep.name} ({ep.dist}): {reason}")
                self.skipped[ep.name] = reason
                continue
            if self.pm.is_registered(plugin):
                continue
            self.pm.register(plugin, name=ep.name)
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
