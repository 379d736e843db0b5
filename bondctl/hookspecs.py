"""The plugin API: hooks a bondctl plugin implements (pluggy project name "bondctl").

A plugin is a module named by an entry point in the group "bondctl.backends". bondctl's own
backends are registered the same way, from bondctl's own pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

from .entrypoints import BACKENDS_GROUP

if TYPE_CHECKING:
    from .backend import Backend

PROJECT = "bondctl"
ENTRY_POINT_GROUP = BACKENDS_GROUP

hookspec = pluggy.HookspecMarker(PROJECT)
# pluggy's own marker, for plugins written against it; bondctl.plugin.hookimpl (the pluggy-free
# bondctl.markers.hookimpl) marks the same way and is what backends import.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def bondctl_register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Call ``register(BackendClass)`` once for each backend the plugin provides.

    Keep the module light to import: the CNI plugin loads it on every pod start. Import heavy
    dependencies inside the backend's methods.
    """
