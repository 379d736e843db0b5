"""A small rtnetlink client on the standard library: the one door to the kernel's network
state for every backend, the CNI plugin and the monitor.

The CNI plugin imports this once per pod, so the import stays cheap: no pyroute2, no ctypes
(setns on Python 3.11 goes through the artifact's small C helper, `_nscalls`, or lazily
through ctypes without it), no dataclasses, no typing at run time, and `_socket`
instead of `socket` (the latter pulls in enum and selectors, several milliseconds).

- `constants`: the kernel's numbers (uapi headers);
- `codec`: messages and attributes to bytes and back, LinkMessage/Route records, NetlinkError;
- `ns`: entering network namespaces (the only setns/unshare in bondctl);
- `socket`: `Rtnl`, requests, dumps, link/address/route operations and link events.
"""

from .codec import *  # noqa: F403
from .constants import *  # noqa: F403
from .ns import *  # noqa: F403
from .socket import Rtnl as Rtnl

