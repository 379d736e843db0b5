"""What a host link carries that the host loses when the link moves to another namespace, and
putting it back when the link returns.

Moving a link to another namespace drops its addresses and the routes through it, and resets
its per-device sysctls to the target namespace's defaults; its VLANs and macvlans stay behind
and are forced UP whenever it comes UP again. survey() records all of it and restore() puts it
back, talking to the kernel only through the backend contract (bondctl.links.Links). The CNI
imports this only when links come from the host.
"""

from __future__ import annotations

import _socket
import errno
import os
import struct

from .errors import ValidationError
from .names import check_ifname

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from .links import Links
    from .model import Link
    from .netlink import Route

# Per-device sysctls whose reset changes how the host treats the link's traffic. Only these
# are ever read or written: a record's keys are checked against this list before any path
# is built from them.
SYSCTLS = (
    "ipv4/rp_filter",
    "ipv4/arp_ignore",
    "ipv4/arp_announce",
    "ipv4/arp_filter",
    "ipv4/accept_local",
    "ipv4/proxy_arp",
    "ipv4/forwarding",
    "ipv4/log_martians",
    "ipv6/disable_ipv6",
    "ipv6/accept_ra",
    "ipv6/autoconf",
    "ipv6/forwarding",
    "ipv6/addr_gen_mode",
)
# Written last: turning IPv6 on makes the kernel configure the link at once, under whatever
# addr_gen_mode, accept_ra and autoconf say at that moment.
_LAST_SYSCTL = "ipv6/disable_ipv6"
_SYSCTL_ROOT = "/proc/sys/net"

_RTNEXTHOP = "=HBBi"  # struct rtnexthop: len, flags, hops, ifindex
_RTNEXTHOP_LEN = 8
_AF_INET, _AF_INET6 = 2, 10
_RTN_UNICAST, _RTPROT_KERNEL = 1, 2


# --- survey ------------------------------------------------------------------------------------
def survey(kernel: Links, link: Link, links: list[Link]) -> dict[str, Any]:
    """What the namespace would lose when `link` leaves it (`links`: all of its links).

    {"addresses": ["192.0.2.5/24", ...], "routes": [{"dst", "gateway", "metric", "table"}],
     "sysctls": {"ipv4/rp_filter": "1", ...}, "uppers": [{"index", "name", "up"}]}
    A default route's dst is "0.0.0.0/0" or "::/0", never "default", so that its family
    survives without a gateway.
    """
    addresses = [cidr for cidr in kernel.addresses(link.index) if not _link_local(cidr)]
    routes = []
    for route, hops in kernel.routes():
        routes.extend(route_entries(route, hops, link.index))
    return {"addresses": addresses, "routes": routes, "sysctls": read_sysctls(link.name),
            "uppers": [{"index": x.index, "name": x.name, "up": x.up}
                       for x in upper_candidates(link, links) if kernel.lower_is_local(x.index)]}


def _link_local(cidr: str) -> bool:
    """An IPv6 link-local address (fe80::/10): the kernel makes it again when the link is up."""
    return _in_prefix(cidr.partition("/")[0], 0xFE80, 0xFFC0)


def _in_prefix(address: str, value: int, mask: int) -> bool:
    """Whether an IPv6 address's first 16 bits match value under mask; False for IPv4."""
    if ":" not in address:
        return False
    raw = _socket.inet_pton(_AF_INET6, address)
    return (raw[0] << 8 | raw[1]) & mask == value


def multipath_hops(family: int, raw: bytes) -> list[tuple[int, str | None]]:
    """(ifindex, gateway) of each struct rtnexthop in an RTA_MULTIPATH payload."""
    from .netlink import RTA_GATEWAY, align, parse_attrs

    hops = []
    offset = 0
    while offset + _RTNEXTHOP_LEN <= len(raw):
        length, _flags, _hops, ifindex = struct.unpack_from(_RTNEXTHOP, raw, offset)
        if length < _RTNEXTHOP_LEN or offset + length > len(raw):
            break
        attrs = parse_attrs(raw[offset + _RTNEXTHOP_LEN : offset + length])
        gateway = attrs.get(RTA_GATEWAY)
        hops.append((ifindex, _socket.inet_ntop(family, gateway) if gateway else None))
        offset += align(length)
    return hops


def route_entries(route: Route, hops: list[tuple[int, str | None]],
                  index: int) -> list[dict[str, Any]]:
    """The routes through link `index` that the host loses with it: the route itself, or one
    entry per multipath next hop through the link. The kernel's own (prefix routes of
    addresses, local/broadcast/multicast entries, IPv6 link-local and multicast) come back
    by themselves and are left out."""
    if route.type != _RTN_UNICAST or route.protocol == _RTPROT_KERNEL:
        return []
    dst = route.dst
    if dst == "default":
        dst = "::/0" if route.family == _AF_INET6 else "0.0.0.0/0"
    elif route.family == _AF_INET6 and (
        _in_prefix(dst.partition("/")[0], 0xFE80, 0xFFC0)
        or _in_prefix(dst.partition("/")[0], 0xFF00, 0xFF00)
    ):
        return []
    if hops:
        gateways = [gateway for oif, gateway in hops if oif == index]
    else:
        gateways = [route.gateway] if route.oif == index else []
    return [{"dst": dst, "gateway": gateway, "metric": route.metric, "table": route.table}
            for gateway in gateways]


def upper_candidates(link: Link, links: Iterable[Link]) -> list[Link]:
    """Links stacked on `link` (VLANs, macvlans: IFLA_LINK is its index), not its master or
    slaves, not its veth peer (a peer is not brought up with it)."""
    return [x for x in links
            if x.lower == link.index and x.index != link.index and x.kind != "veth"
            and x.index != link.master_index and x.master_index != link.index]


# --- sysctls -----------------------------------------------------------------------------------
def _sysctl_path(name: str, key: str) -> str:
    """/proc/sys/net/<family>/conf/<name>/<leaf> for a key of SYSCTLS and a valid ifname;
    ValueError for anything else (keys and names can come from a state record)."""
    if key not in SYSCTLS:
        raise ValueError(f"sysctl {key!r} is not one bondctl restores")
    try:
        check_ifname(name)
    except ValidationError as exc:
        raise ValueError(exc.msg) from None
    family, leaf = key.split("/")
    return f"{_SYSCTL_ROOT}/{family}/conf/{name}/{leaf}"


def read_sysctls(name: str) -> dict[str, str]:
    """The curated sysctls of link `name` in this thread's namespace; missing ones (no IPv6,
    an older kernel) are skipped."""
    values = {}
    for key in SYSCTLS:
        try:
            with open(_sysctl_path(name, key), "rb") as f:
                values[key] = f.read(64).decode("ascii").strip()
        except (OSError, ValueError):
            continue
    return values


def _check_value(value: object) -> str:
    """A sysctl value as these files hold it: a small decimal integer."""
    if not isinstance(value, str) or not 0 < len(value) <= 11:
        raise ValueError(f"invalid sysctl value {value!r}")
    digits = value[1:] if value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"invalid sysctl value {value!r}")
    return value


def write_sysctl(name: str, key: str, value: object) -> bool:
    """Set one curated sysctl if it differs; True if it was written."""
    path = _sysctl_path(name, key)
    text = _check_value(value)
    with open(path, "rb") as f:
        if f.read(64).decode("ascii").strip() == text:
            return False
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode() + b"\n")
    finally:
        os.close(fd)
    return True


# --- restore -----------------------------------------------------------------------------------
def is_default(route: Mapping[str, Any]) -> bool:
    return route.get("dst") in ("0.0.0.0/0", "::/0", "default")


def route_text(route: Mapping[str, Any]) -> str:
    """'10.1.0.0/16 via 192.0.2.1 metric 100 table 7', as ip-route prints it."""
    dst = route.get("dst")
    text = "default" if is_default(route) else str(dst)
    if route.get("gateway"):
        text += f" via {route['gateway']}"
    if route.get("metric") is not None:
        text += f" metric {route['metric']}"
    if route.get("table") not in (None, 254):
        text += f" table {route['table']}"
    return text


# --- restore -----------------------------------------------------------------------------------
def restore(kernel: Links, index: int, found: Mapping[str, Any]) -> list[str]:
    """Put back what survey() recorded, on the link now at `index` in the namespace of
    `kernel`. Call it once the link has its name and admin state back: IPv4 routes through
    a gateway need the link up, and bringing it up later would force its VLANs UP again.

    Order: sysctls (disable_ipv6=1 would drop IPv6 addresses; =0 must precede adding them),
    addresses, routes (directly connected ones first: gateways need them), upper devices'
    admin state. Already present is fine. One failure does not stop the rest: returns them.
    """
    failures: list[str] = []
    link = kernel.get_link(index)
    if link is None:
        return [f"link index {index} is gone; nothing restored"]
    sysctls = found.get("sysctls") or {}
    if not isinstance(sysctls, dict):
        failures.append("recorded sysctls are not an object; skipped")
        sysctls = {}
    for key in sorted(sysctls, key=lambda k: k == _LAST_SYSCTL):
        _attempt(failures, f"sysctl {key} of {link.name}", write_sysctl, link.name, key,
                 sysctls[key])
    for cidr in _items(found, "addresses", failures):
        _attempt(failures, f"address {cidr} on {link.name}", add_address, kernel, index, cidr)
    routes = [r for r in _items(found, "routes", failures) if _route_ok(r, failures)]
    for route in sorted(routes, key=lambda r: r.get("gateway") is not None):
        _attempt(failures, f"route {route_text(route)} on {link.name}", kernel.add_route,
                 route["dst"], route.get("gateway"), index, table=route.get("table"),
                 metric=route.get("metric"))
    for upper in _items(found, "uppers", failures):
        name = upper.get("name") if isinstance(upper, dict) else None
        _attempt(failures, f"upper device {name!r} of {link.name}", _restore_upper, kernel, index,
                 upper)
    return failures


def _attempt(failures: list[str], what: str, action: Callable[..., object],
             *args: Any, **kwargs: Any) -> None:
    try:
        action(*args, **kwargs)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            failures.append(f"{what}: {exc.strerror or exc}")
    except (ValueError, TypeError) as exc:
        failures.append(f"{what}: {exc}")


def _items(found: Mapping[str, Any], key: str, failures: list[str]) -> list[Any]:
    value = found.get(key) or []
    if not isinstance(value, list):
        failures.append(f"recorded {key} are not a list; skipped")
        return []
    return value


def _route_ok(route: object, failures: list[str]) -> bool:
    if (isinstance(route, dict) and isinstance(route.get("dst"), str)
            and isinstance(route.get("gateway"), str | None)
            and _int_or_none(route.get("metric")) and _int_or_none(route.get("table"))):
        return True
    failures.append(f"recorded route {route!r} is malformed; skipped")
    return False


def _int_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def add_address(kernel: Links, index: int, cidr: object) -> None:
    """Add an address as survey() saw it. An IPv4 one gets its subnet's broadcast address,
    as DHCP clients and network managers configure it."""
    from .netlink import parse_cidr

    if not isinstance(cidr, str):
        raise TypeError(f"recorded address {cidr!r} is not a string")
    family, raw, prefix = parse_cidr(cidr)
    broadcast = None
    if family == _AF_INET and prefix <= 30:
        host_bits = (1 << (32 - prefix)) - 1
        broadcast = _socket.inet_ntop(family, (int.from_bytes(raw, "big") | host_bits
                                               ).to_bytes(4, "big"))
    kernel.add_address(index, cidr, broadcast=broadcast)


def _restore_upper(kernel: Links, lower: int, upper: object) -> None:
    """Set a VLAN/macvlan back to its recorded admin state, if it is still the same device:
    same index, same name, still stacked on the link."""
    if not isinstance(upper, dict) or not _int_or_none(upper.get("index")) \
            or not isinstance(upper.get("name"), str) or not isinstance(upper.get("up"), bool):
        raise ValueError(f"recorded upper device {upper!r} is malformed; skipped")
    now = kernel.get_link(upper["index"]) if upper["index"] else None
    if now is None or now.name != upper["name"] or now.lower != lower:
        raise ValueError(f"index {upper['index']} is no longer that device on this link; "
                         "left alone")
    if now.up != upper["up"]:
        kernel.set_link(now.index, up=upper["up"])
