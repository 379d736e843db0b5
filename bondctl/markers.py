"""A pluggy-free `hookimpl` for bondctl's own backends.

pluggy's HookimplMarker only sets the attribute "bondctl_impl" on the function; importing
pluggy for that costs ~15 ms on every pod start. This marker sets the same attribute, so the
PluginManager registers the hook exactly as if pluggy.HookimplMarker("bondctl") had marked it
(tests/unit/test_registry.py checks the two agree). Third-party plugins may use either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

_ATTRIBUTE = "bondctl_impl"  # pluggy: project name + "_impl"


def hookimpl(function: F) -> F:
    setattr(function, _ATTRIBUTE, {
        "wrapper": False,
        "hookwrapper": False,
        "optionalhook": False,
        "tryfirst": False,
        "trylast": False,
        "specname": None,
    })
    return function
