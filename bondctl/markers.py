"""A pluggy-free `hookimpl` for backends: bondctl's own, and third parties' through
bondctl.plugin.

pluggy's HookimplMarker only sets the attribute "bondctl_impl" on the function. This marker
sets the same attribute, so the PluginManager registers the hook exactly as if
pluggy.HookimplMarker("bondctl") had marked it (tests/unit/test_registry.py checks the two
agree).

Why it is kept although bondctl.registry uses pluggy: only for listing and for a backend that
is not built in. The CNI's path (registry.select with a built-in or the default) imports the
built-in backend module directly and never imports pluggy; `python -X importtime -c "import
pluggy"` shows 12-13 ms cumulative on the development machine, which every pod start would pay
if a backend module imported pluggy for its marker.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds on every CNI ADD: for the checker only
if TYPE_CHECKING:
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
