"""bondctl-pyroute2: a bondctl backend on the pyroute2 netlink library.

The entry point `pyroute2 = "bondctl_pyroute2"` in the group "bondctl.backends" names this
module; bondctl's registry imports it and calls the hook below. Importing it loads bondctl's
own modules only: pyroute2 waits until a backend method talks to the kernel.
"""

from __future__ import annotations

from collections.abc import Callable

from bondctl.plugin import Backend, hookimpl

from .backend import Pyroute2Backend

__all__ = ["Pyroute2Backend", "bondctl_register_backends"]


@hookimpl
def bondctl_register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(Pyroute2Backend)
