"""Which host links the CNI refuses to take: one whose loss would hurt the host (its addresses,
its routes, above all the node's default route), unless the config allows it. What a link
carries is found and put back by bondctl.hostlinks; imported only when links come from the
host.
"""

from __future__ import annotations

from ..hostlinks import is_default, route_text
from .errors import INVALID_CONFIG, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

_SHOWN = 4  # items named in an error message before "and N more"


def refuse_unsafe(name: str, found: Mapping[str, Any], *, allow: bool) -> None:
    """Refuse a host link that carries addresses or routes (survey's `found`), unless the
    config allows it. A default route in the main table marks the node's primary interface."""
    if allow:
        return
    addresses = list(found.get("addresses") or [])
    routes = list(found.get("routes") or [])
    if not addresses and not routes:
        return
    carried = []
    if addresses:
        carried.append(("address " if len(addresses) == 1 else "addresses ") + _few(addresses))
    if routes:
        carried.append(("route " if len(routes) == 1 else "routes ")
                       + _few(route_text(r) for r in routes))
    what = " and ".join(carried)
    primary = next((r for r in routes if is_default(r) and r.get("table") in (None, 254)), None)
    if primary is not None:
        msg = (f"links: {name} looks like the node's primary interface: it carries the "
               f"default route ({route_text(primary)}), and taking it into a pod would cut "
               f"the node off; it carries {what}")
    else:
        msg = f"links: {name} carries {what}, which the host would lose while a pod holds it"
    raise CniError(INVALID_CONFIG, msg + '; set "allowAddressedLinks": true to take it anyway '
                   "(bondctl puts them back on DEL)")


def _few(items: Iterable[str]) -> str:
    shown = list(items)
    if len(shown) <= _SHOWN:
        return ", ".join(shown)
    return ", ".join(shown[:_SHOWN]) + f" and {len(shown) - _SHOWN} more"
