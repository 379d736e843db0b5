"""What a bond carries above the bonding driver: IP addresses, routes and VLAN sub-interfaces.

Read and written through the link half of the backend contract (bondctl.links.Links over
backend.LinkContract), as the CNI plugin reaches links: addresses, routes and VLANs are the
same whatever makes the bond, so the contract's one rtnetlink implementation serves every
backend, and a third-party one inherits it. This module compares and plans; `read` and
`execute` take the namespace's Links (anything with the methods of `IpLinks`).

A field that is None is not managed: a file without `addresses` leaves the bond's addresses
alone; `addresses: []` removes them all. A route's metric None means "whatever the kernel
picks" (IPv6 gives 1024): it is neither compared nor written.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from .errors import KernelError, NotFoundError, ValidationError
from .model import Drift, Link
from .names import check_ifname
from .netlink import AF_INET, RTN_UNICAST, RTPROT_STATIC, NetlinkError
from .netlink import Route as KernelRoute
from .options import check_mtu

RT_TABLE_MAIN = 254
# Routes the kernel or a protocol daemon makes (redirect, kernel, RA, DHCP...) are not ours.
_FOREIGN_PROTOCOLS = frozenset({1, 2, 9, 16, 42, 186, 187, 188, 189, 192})
MAX_VLAN_ID = 4094


class Route(NamedTuple):
    to: str  # canonical prefix: "10.9.0.0/16", "0.0.0.0/0" (default), "2001:db8::/32"
    via: str | None = None
    metric: int | None = None
    table: int | None = None  # None: main

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.to).version

    @property
    def key(self) -> tuple[str, str | None, int]:
        return self.to, self.via, self.table or RT_TABLE_MAIN

    def matches(self, have: Route) -> bool:
        return self.key == have.key and (self.metric is None or self.metric == have.metric)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"to": self.to}
        out.update({k: v for k, v in (("via", self.via), ("metric", self.metric),
                                      ("table", self.table)) if v is not None})
        return out

    def __str__(self) -> str:
        words = [self.to]
        words += [f"{k} {v}" for k, v in (("via", self.via), ("metric", self.metric),
                                         ("table", self.table)) if v is not None]
        return " ".join(words)


class Vlan(NamedTuple):
    name: str
    id: int  # the VLAN id
    addresses: tuple[str, ...] | None = None
    routes: tuple[Route, ...] | None = None
    mtu: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.mtu is not None:
            out["mtu"] = self.mtu
        if self.addresses is not None:
            out["addresses"] = list(self.addresses)
        if self.routes is not None:
            out["routes"] = [r.to_dict() for r in self.routes]
        return out


class IpConfig(NamedTuple):
    addresses: tuple[str, ...] | None = None
    routes: tuple[Route, ...] | None = None
    vlans: tuple[Vlan, ...] | None = None

    def vlan(self, name: str) -> Vlan | None:
        return next((v for v in self.vlans or () if v.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.addresses is not None:
            out["addresses"] = list(self.addresses)
        if self.routes is not None:
            out["routes"] = [r.to_dict() for r in self.routes]
        if self.vlans is not None:
            out["vlans"] = [v.to_dict() for v in self.vlans]
        return out


NOTHING = IpConfig()
KEYS = ("addresses", "routes", "vlans")


# -- validation --------------------------------------------------------------------------------
def address(raw: object, where: str) -> str:
    """'10.0.0.1/24' or '2001:db8::1/64' in canonical form; the prefix length is required."""
    if not isinstance(raw, str) or "/" not in raw:
        raise ValidationError(f"{where}: address {raw!r} needs a prefix length (10.0.0.1/24)")
    try:
        return str(ipaddress.ip_interface(raw.strip()))
    except ValueError:
        raise ValidationError(f"{where}: invalid address {raw!r}") from None


def route(raw: object, where: str) -> Route:
    if isinstance(raw, str):
        raw = {"to": raw}
    if not isinstance(raw, Mapping):
        raise ValidationError(f"{where}: a route is a mapping with to, via, metric, table")
    unknown = sorted(set(raw) - {"to", "via", "metric", "table"})
    if unknown:
        raise ValidationError(f"{where}: unknown route key(s) {', '.join(map(str, unknown))}; "
                              "known: to, via, metric, table")
    via = raw.get("via")
    gateway = None
    if via is not None:
        try:
            gateway = ipaddress.ip_address(str(via).strip())
        except ValueError:
            raise ValidationError(f"{where}: invalid gateway {via!r}") from None
    to = str(raw.get("to", "default")).strip()
    if to == "default":
        if gateway is None:
            raise ValidationError(f"{where}: a default route needs via (its family)")
        to = "0.0.0.0/0" if gateway.version == 4 else "::/0"
    try:
        net = ipaddress.ip_network(to, strict=False)
    except ValueError:
        raise ValidationError(f"{where}: invalid destination {to!r}") from None
    if gateway is not None and gateway.version != net.version:
        raise ValidationError(f"{where}: gateway {via} and destination {to} differ in family")
    return Route(str(net), None if gateway is None else str(gateway),
                 _number(raw.get("metric"), f"{where}: metric", 0, 2**32 - 1),
                 _number(raw.get("table"), f"{where}: table", 1, 2**32 - 1))


def _number(raw: object, what: str, low: int, high: int) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
        raise ValidationError(f"{what}: expected an integer, not {raw!r}")
    if not low <= int(raw) <= high:
        raise ValidationError(f"{what}: {raw} is out of range {low}..{high}")
    return int(raw)


def _list(raw: object, what: str) -> list[object]:
    if not isinstance(raw, list | tuple):
        raise ValidationError(f"{what} must be a list")
    return list(raw)


def _addresses(raw: object, where: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    found = [address(a, where) for a in _list(raw, f"{where}: addresses")]
    if len(set(found)) != len(found):
        raise ValidationError(f"{where}: an address is listed twice")
    return tuple(found)


def _routes(raw: object, where: str) -> tuple[Route, ...] | None:
    if raw is None:
        return None
    found = [route(r, where) for r in _list(raw, f"{where}: routes")]
    if len({r.key for r in found}) != len(found):
        raise ValidationError(f"{where}: a route is listed twice")
    return tuple(found)


def vlan(raw: object, bond: str) -> Vlan:
    if not isinstance(raw, Mapping) or "id" not in raw:
        raise ValidationError(f"bond {bond}: a VLAN is a mapping with at least an id")
    unknown = sorted(set(raw) - {"id", "name", "addresses", "routes", "mtu"})
    if unknown:
        raise ValidationError(f"bond {bond}: unknown VLAN key(s) {', '.join(map(str, unknown))}"
                              "; known: id, name, addresses, routes, mtu")
    number = _number(raw["id"], f"bond {bond}: VLAN id", 1, MAX_VLAN_ID)
    assert number is not None
    name = check_ifname(str(raw.get("name") or f"{bond}.{number}"), "VLAN name")
    return Vlan(name, number, _addresses(raw.get("addresses"), name),
                _routes(raw.get("routes"), name),
                None if raw.get("mtu") is None else check_mtu(raw["mtu"], f"{name}: mtu"))


def build(bond: str, raw: Mapping[str, object]) -> IpConfig:
    """The addresses, routes and vlans keys of one bond in a desired-state file."""
    vlans = None
    if raw.get("vlans") is not None:
        vlans = tuple(vlan(v, bond) for v in _list(raw["vlans"], f"bond {bond}: vlans"))
        for attr in ("id", "name"):
            values = [getattr(v, attr) for v in vlans]
            if len(set(values)) != len(values):
                raise ValidationError(f"bond {bond}: a VLAN {attr} is used twice")
    return IpConfig(_addresses(raw.get("addresses"), bond), _routes(raw.get("routes"), bond),
                    vlans)


# -- reading the kernel ---------------------------------------------------------------------------
class IpLinks(Protocol):
    """What this module needs of a namespace's links: bondctl.links.Links has it."""

    def all(self) -> list[Link]: ...
    def get_link(self, link: int | str) -> Link | None: ...
    def addresses(self, index: int) -> list[str]: ...
    def routes(self) -> list[tuple[KernelRoute, list[tuple[int, str | None]]]]: ...
    def add_address(self, index: int, cidr: str, *, broadcast: str | None = None) -> None: ...
    def delete_address(self, index: int, cidr: str) -> None: ...
    def add_route(self, dst: str, gateway: str | None, oif: int, *, table: int | None = None,
                  metric: int | None = None, protocol: int | None = None) -> None: ...
    def delete_route(self, dst: str, gateway: str | None, oif: int, *,
                     table: int | None = None, metric: int | None = None) -> None: ...
    def add_vlan(self, name: str, lower: int, vlan_id: int, *,
                 mtu: int | None = None) -> None: ...
    def set_link(self, index: int, *, mtu: int | None = None) -> None: ...
    def delete(self, index: int) -> None: ...


def read(links: IpLinks, bond: str) -> IpConfig | None:
    """Everything the bond carries, as a fully managed IpConfig; None if there is no bond."""
    every = links.all()
    found = next((link for link in every if link.name == bond), None)
    if found is None:
        return None
    vlans = [link for link in every if link.kind == "vlan" and link.lower == found.index
             and link.vlan_id is not None]
    routes = [route for route, _hops in links.routes()]

    def addrs_of(index: int) -> tuple[str, ...]:
        return tuple(sorted(a for a in links.addresses(index)
                            if not ipaddress.ip_interface(a).is_link_local))

    def routes_of(index: int) -> tuple[Route, ...]:
        out = []
        for r in routes:
            if r.oif != index or r.protocol in _FOREIGN_PROTOCOLS or r.type != RTN_UNICAST:
                continue
            if r.table != RT_TABLE_MAIN and r.table == 255:  # local table: the kernel's own
                continue
            to = r.dst if r.dst != "default" else ("0.0.0.0/0" if r.family == AF_INET
                                                   else "::/0")
            out.append(Route(to, r.gateway, r.metric,
                             None if r.table == RT_TABLE_MAIN else r.table))
        return tuple(sorted(out, key=lambda r: (r.to, r.via or "")))

    return IpConfig(addrs_of(found.index), routes_of(found.index),
                    tuple(sorted((Vlan(v.name, int(v.vlan_id or 0), addrs_of(v.index),
                                       routes_of(v.index), v.mtu) for v in vlans),
                                 key=lambda v: v.id)))


# -- comparing ---------------------------------------------------------------------------------
def _missing_routes(want: Iterable[Route], have: Iterable[Route]) -> list[Route]:
    have = list(have)
    return [r for r in want if not any(r.matches(h) for h in have)]


def _extra_routes(want: Iterable[Route], have: Iterable[Route]) -> list[Route]:
    want = list(want)
    return [h for h in have if not any(w.matches(h) for w in want)]


def _layer_drifts(link: str | None, want_addrs: Sequence[str] | None,
                  want_routes: Sequence[Route] | None, have_addrs: Sequence[str],
                  have_routes: Sequence[Route]) -> list[Drift]:
    prefix = f"{link}." if link else ""
    drifts = []
    if want_addrs is not None and set(want_addrs) != set(have_addrs):
        drifts.append(Drift(prefix + "addresses", sorted(want_addrs), sorted(have_addrs),
                            "ip", "addresses", link))
    if want_routes is not None and (_missing_routes(want_routes, have_routes)
                                    or _extra_routes(want_routes, have_routes)):
        drifts.append(Drift(prefix + "routes", [str(r) for r in want_routes],
                            [str(r) for r in have_routes], "ip", "routes", link))
    return drifts


def diff(want: IpConfig, have: IpConfig) -> list[Drift]:
    """Every way `have` (read from the kernel) fails `want`."""
    drifts = _layer_drifts(None, want.addresses, want.routes, have.addresses or (),
                           have.routes or ())
    if want.vlans is None:
        return drifts
    want_ids = {v.name: v.id for v in want.vlans}
    have_ids = {v.name: v.id for v in have.vlans or ()}
    if want_ids != have_ids:
        drifts.append(Drift("vlans", _vlan_words(want_ids), _vlan_words(have_ids), "ip", "vlans"))
    for v in want.vlans:
        got = have.vlan(v.name)
        if got is None or got.id != v.id:
            continue
        if v.mtu is not None and v.mtu != got.mtu:
            drifts.append(Drift(f"{v.name}.mtu", v.mtu, got.mtu, "ip", "mtu", v.name))
        drifts += _layer_drifts(v.name, v.addresses, v.routes, got.addresses or (),
                                got.routes or ())
    return drifts


def _vlan_words(ids: Mapping[str, int]) -> list[str]:
    return [f"{name} (id {number})" for name, number in sorted(ids.items())]


def check_rows(want: IpConfig, have: IpConfig) -> list[tuple[str, object, object, bool]]:
    """(setting, want, have, ok) for every field `want` manages, for `bondctl check`."""
    drifted = {d.what for d in diff(want, have)}
    rows: list[tuple[str, object, object, bool]] = []

    def layer(prefix: str, w_addrs: Sequence[str] | None, w_routes: Sequence[Route] | None,
              h: Vlan | IpConfig | None) -> None:
        if w_addrs is not None:
            rows.append((prefix + "addresses", sorted(w_addrs),
                         sorted(h.addresses or ()) if h else None,
                         prefix + "addresses" not in drifted))
        if w_routes is not None:
            rows.append((prefix + "routes", [str(r) for r in w_routes],
                         [str(r) for r in (h.routes or ())] if h else None,
                         prefix + "routes" not in drifted))

    layer("", want.addresses, want.routes, have)
    if want.vlans is not None:
        rows.append(("vlans", _vlan_words({v.name: v.id for v in want.vlans}),
                     _vlan_words({v.name: v.id for v in have.vlans or ()}),
                     "vlans" not in drifted))
        for v in want.vlans:
            got = have.vlan(v.name)
            if v.mtu is not None:
                rows.append((f"{v.name}.mtu", v.mtu, got.mtu if got else None,
                             got is not None and f"{v.name}.mtu" not in drifted))
            layer(f"{v.name}.", v.addresses, v.routes, got)
    return rows


# -- changing ----------------------------------------------------------------------------------
class Action(NamedTuple):
    verb: str  # "del-route", "del-address", "del-vlan", "add-vlan", "set-mtu", ...
    link: str
    what: str | Route | Vlan | int

    def __str__(self) -> str:
        """The iproute2 command that does the same, for --dry-run and logs."""
        w = self.what
        if self.verb in ("add-address", "del-address"):
            return f"ip address {self.verb[:3]} {w} dev {self.link}"
        if self.verb in ("add-route", "del-route"):
            return f"ip route {self.verb[:3]} {w} dev {self.link}"
        if self.verb == "add-vlan" and isinstance(w, Vlan):
            mtu = f" mtu {w.mtu}" if w.mtu else ""
            return f"ip link add link {self.link} name {w.name}{mtu} up type vlan id {w.id}"
        if self.verb == "set-mtu":
            return f"ip link set {self.link} mtu {w}"
        return f"ip link del {self.link}"


def plan(bond: str, want: IpConfig, have: IpConfig | None) -> list[Action]:
    """Only what differs, in an order the kernel takes: routes go before the addresses they
    may depend on, and come back after them."""
    have = have or IpConfig((), (), ())
    removals: list[Action] = []
    additions: list[Action] = []
    route_adds: list[Action] = []

    def layer(link: str, w_addrs: Sequence[str] | None, w_routes: Sequence[Route] | None,
              h_addrs: Sequence[str], h_routes: Sequence[Route]) -> None:
        if w_routes is not None:
            removals.extend(Action("del-route", link, r) for r in _extra_routes(w_routes,
                                                                                h_routes))
            route_adds.extend(Action("add-route", link, r) for r in _missing_routes(w_routes,
                                                                                   h_routes))
        if w_addrs is not None:
            removals.extend(Action("del-address", link, a) for a in h_addrs if a not in w_addrs)
            additions.extend(Action("add-address", link, a) for a in w_addrs
                             if a not in h_addrs)

    layer(bond, want.addresses, want.routes, have.addresses or (), have.routes or ())
    vlan_removals: list[Action] = []
    for v in want.vlans or ():
        got = have.vlan(v.name)
        if got is not None and got.id != v.id:
            vlan_removals.append(Action("del-vlan", got.name, got.id))
            got = None
        if got is None:
            additions.append(Action("add-vlan", bond, v))
            layer(v.name, v.addresses, v.routes, (), ())
            continue
        if v.mtu is not None and v.mtu != got.mtu:
            additions.append(Action("set-mtu", v.name, v.mtu))
        layer(v.name, v.addresses, v.routes, got.addresses or (), got.routes or ())
    if want.vlans is not None:
        wanted = {v.name for v in want.vlans}
        vlan_removals += [Action("del-vlan", v.name, v.id) for v in have.vlans or ()
                          if v.name not in wanted]
    return removals + vlan_removals + additions + route_adds


def execute(links: IpLinks, actions: Sequence[Action]) -> None:
    """Carry the actions out in order; KernelError names the one the kernel refused."""
    for action in actions:
        try:
            _one(links, action)
        except OSError as exc:
            if isinstance(exc, NetlinkError) and exc.errno == errno.ENODEV:
                raise NotFoundError(f"{action}: {exc}") from None
            raise KernelError(f"{action}: {exc.strerror or exc}") from None


def _index(links: IpLinks, name: str) -> int:
    found = links.get_link(name)
    if found is None:
        raise NetlinkError(errno.ENODEV, f"{os.strerror(errno.ENODEV)}: {name}")
    return found.index


def _one(links: IpLinks, action: Action) -> None:
    verb, link, what = action
    if verb == "add-vlan":
        assert isinstance(what, Vlan)
        links.add_vlan(what.name, _index(links, link), what.id, mtu=what.mtu)
    elif verb == "del-vlan":
        links.delete(_index(links, link))
    elif verb == "set-mtu":
        links.set_link(_index(links, link), mtu=int(what))  # type: ignore[arg-type]
    elif verb == "add-address":
        links.add_address(_index(links, link), str(what))
    elif verb == "del-address":
        links.delete_address(_index(links, link), str(what))
    elif isinstance(what, Route):
        index = _index(links, link)
        if verb == "add-route":
            links.add_route(what.to, what.via, index, table=what.table, metric=what.metric,
                            protocol=RTPROT_STATIC)
        else:
            links.delete_route(what.to, what.via, index, table=what.table, metric=what.metric)
