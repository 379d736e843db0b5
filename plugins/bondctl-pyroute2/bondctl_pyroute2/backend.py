"""The pyroute2 backend: each step is one `IPRoute.link()` request, each read one link dump.

pyroute2 costs about 200 ms to import, and the CNI plugin loads every registered backend
module on each pod start: nothing here imports it until a method really talks to the kernel.
Planning, checks, read-back verification and rollback are bondctl.ops's, as for every backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from bondctl.plugin import (
    AD_INFO_FIELDS,
    IFF_UP,
    IFLA_BOND_AD_INFO,
    MII_STATES,
    MODE,
    NETLINK_ROUTE,
    NETNS_RUN_DIR,
    NLA_TYPE_MASK,
    OPTIONS,
    SETTINGS,
    SLAVE_FIELDS,
    SLAVE_OPTIONS,
    SLAVE_STATES,
    Availability,
    Backend,
    BondctlError,
    BondState,
    CreateBond,
    DeleteLink,
    KernelError,
    Link,
    MoveLink,
    Netns,
    NotFoundError,
    SetBond,
    SetLink,
    SetSlave,
    SlaveState,
    Step,
    StepError,
    Value,
    check_ifname,
    decode,
    enter_netns,
    kernel_can_bond,
    mode_number,
    open_netns,
)

from . import attributes

# pyroute2 0.9's bond table (pyroute2.netlink.rtnl.ifinfmsg.plugins.bond) ends with
# IFLA_BOND_TLB_DYNAMIC_LB: it cannot encode peer_notif_delay, lacp_active, arp_missed_max,
# ns_ip6_target or coupled_control, and its slave table lacks IFLA_BOND_SLAVE_PRIO. The sets
# are fixed here so that listing backends never imports pyroute2;
# tests/unit/test_plugins.py checks them against pyroute2's own tables.
_LAST_ATTRIBUTE = 27  # the IFLA_BOND_* number of that last attribute
OPTIONS_SUPPORTED = frozenset(name for name, opt in SETTINGS.items() if opt.ifla <= _LAST_ATTRIBUTE)
SLAVE_OPTIONS_SUPPORTED = frozenset(  # its slave table ends before IFLA_BOND_SLAVE_PRIO (9)
    name for name, opt in SLAVE_OPTIONS.items() if opt.ifla < 9)

_DUMP_TRIES = 5  # a dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is retried


class Raw(NamedTuple):
    """The payload of an attribute pyroute2 has no name for; decoded with the catalogue."""

    payload: bytes


class Ifindex(NamedTuple):
    """A link named in a step, resolved to its index when the request is sent."""

    name: str

    def __repr__(self) -> str:
        return f"ifindex({self.name!r})"


Request = tuple[str, dict[str, Any]]  # IPRoute.link(command, **kwargs)


def _caller_netns() -> str:
    return f"/proc/{os.getpid()}/ns/net"


def _netns_target(netns: Netns) -> str:
    if netns.path:
        return netns.path
    if netns.name:
        return os.path.join(NETNS_RUN_DIR, netns.name)
    return _caller_netns()


def _bond_value(name: str, value: Value) -> Any:
    """A canonical option value as pyroute2 encodes the attribute (see OPTIONS[name].wire)."""
    opt = OPTIONS[name]
    if opt.kind == "enum":
        return opt.choices.index(str(value))
    if opt.kind == "ifname":
        return Ifindex(str(value)) if value else 0  # ifindex 0 clears primary / active slave
    if opt.kind == "mac":
        return bytes.fromhex(str(value).replace(":", ""))  # pyroute2's "hex" type: raw bytes
    if opt.kind in ("ipv4list", "ipv6list"):
        return list(value)  # type: ignore[arg-type]
    return int(value)  # type: ignore[arg-type]


def _bond_kwargs(options: Mapping[str, Value]) -> dict[str, Any]:
    names = attributes.bond_attributes()
    kwargs: dict[str, Any] = {}
    for name, value in options.items():
        if name == MODE.name:
            kwargs[attributes.mode_attribute()] = mode_number(str(value))
            continue
        if name not in names:
            raise KernelError(f"this pyroute2 cannot encode {name}")
        kwargs[names[name]] = _bond_value(name, value)
    return kwargs


def request(step: Step) -> Request:
    """The IPRoute.link() call for one step; links are named by Ifindex until sent."""
    if isinstance(step, CreateBond):
        kwargs: dict[str, Any] = {"ifname": check_ifname(step.name, "bond name"),
                                  "kind": "bond",
                                  **_bond_kwargs({MODE.name: step.mode, **step.options})}
        if step.mtu:
            kwargs["mtu"] = step.mtu
        if step.mac:
            kwargs["address"] = step.mac
        return "add", kwargs
    if isinstance(step, SetBond):
        return "set", {"index": Ifindex(step.name), "kind": "bond",
                       **_bond_kwargs(step.options)}
    if isinstance(step, SetLink):
        kwargs = {"index": Ifindex(step.name)}
        if step.master is not None:
            kwargs["master"] = Ifindex(step.master) if step.master else 0
        if step.mtu:
            kwargs["mtu"] = step.mtu
        if step.mac:
            kwargs["address"] = step.mac
        if step.new_name:
            kwargs["ifname"] = check_ifname(step.new_name, "new name")
        if step.up is not None:
            kwargs["state"] = "up" if step.up else "down"
        return "set", kwargs
    if isinstance(step, SetSlave):
        names = attributes.slave_option_attributes()
        missing = set(step.options) - set(names)
        if missing:
            raise KernelError(f"this pyroute2 cannot encode slave option {min(missing)}")
        # pyroute2 has no "bond_slave" link kind to hang keywords on: spell the nest out.
        data = [(names[name], value) for name, value in step.options.items()]
        linkinfo = {"attrs": [("IFLA_INFO_SLAVE_KIND", "bond"),
                              ("IFLA_INFO_SLAVE_DATA", {"attrs": data})]}
        return "set", {"index": Ifindex(step.name), "IFLA_LINKINFO": linkinfo}
    if isinstance(step, DeleteLink):
        return "del", {"index": Ifindex(step.name)}
    if isinstance(step, MoveLink):
        kwargs = {"index": Ifindex(step.name), "net_ns_fd": _netns_target(step.to)}
        if step.new_name:
            kwargs["ifname"] = check_ifname(step.new_name, "new name")
        return "set", kwargs
    raise TypeError(f"unknown step {step!r}")


def _resolve(value: Any, lookup: Callable[[str], int]) -> Any:
    if isinstance(value, Ifindex):
        return lookup(value.name)
    if isinstance(value, dict):
        return {k: _resolve(v, lookup) for k, v in value.items()}
    return value


def _format(command: str, kwargs: Mapping[str, Any]) -> str:
    return f"link({command!r}, " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"


class Pyroute2Backend(Backend):
    name = "pyroute2"
    summary = "netlink through the pyroute2 library (example third-party plugin)"
    priority = 5  # below every built-in backend: only chosen by name
    options = OPTIONS_SUPPORTED
    slave_options = SLAVE_OPTIONS_SUPPORTED

    @classmethod
    def availability(cls) -> Availability:
        import importlib.util

        spec = importlib.util.find_spec("pyroute2")  # finds it without importing it
        if spec is None:
            return Availability(False, "the pyroute2 library is not installed")
        why = kernel_can_bond()
        if why is not None:
            return Availability(False, why)
        return Availability(True, f"uses pyroute2 from {os.path.dirname(spec.origin or '?')}")

    # -- changes ----------------------------------------------------------------------------
    def execute(self, steps: Sequence[Step], netns: Netns) -> None:
        if not steps:
            return
        from pyroute2.netlink.exceptions import NetlinkError

        with _ipr(netns) as ipr:

            def lookup(name: str) -> int:
                found = ipr.link_lookup(ifname=check_ifname(name, "link name"))
                if not found:
                    raise NotFoundError(f"no link named {name} in {netns.label}")
                return int(found[0])

            for done, step in enumerate(steps):
                try:
                    command, kwargs = request(step)
                    kwargs = _resolve(kwargs, lookup)
                    if isinstance(kwargs.get("net_ns_fd"), str):
                        # opened (and checked to be a network namespace) by us, closed by us
                        kwargs["net_ns_fd"] = open_netns(kwargs["net_ns_fd"])
                    try:
                        ipr.link(command, **kwargs)
                    finally:
                        if "net_ns_fd" in kwargs:
                            os.close(kwargs["net_ns_fd"])
                except NetlinkError as exc:
                    # args: (errno, the kernel's extended-ack text or strerror)
                    reason = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
                    raise StepError(step, reason, done) from None
                except (BondctlError, OSError, ValueError, TypeError) as exc:
                    # a name that is gone, a path that cannot be opened, a value pyroute2
                    # cannot encode: refused like the kernel would, so ops can undo
                    raise StepError(step, str(exc), done) from None

    def render(self, steps: Sequence[Step], netns: Netns) -> list[str]:
        where = f"in netns {_netns_target(netns)}: " if netns.path or netns.name else ""
        return [f"{where}IPRoute().{_format(*request(step))}" for step in steps]

    # -- reading ----------------------------------------------------------------------------
    def links(self, netns: Netns) -> list[Link]:
        dump = _dump(netns)
        names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in dump}
        return [decode_link(msg, names) for msg in dump]

    def list_bonds(self, netns: Netns) -> list[BondState]:
        dump = _dump(netns)
        names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in dump}
        bonds = []
        for msg in dump:
            if _kind(msg) != "bond":
                continue
            slaves = sorted((m for m in dump if m.get_attr("IFLA_MASTER") == msg["index"]),
                            key=lambda m: int(m["index"]))
            bonds.append(decode_bond(msg, slaves, names, netns))
        return bonds


@contextmanager
def _ipr(netns: Netns) -> Iterator[Any]:
    import socket

    from pyroute2 import IPRoute

    fileno = None
    if netns.path or netns.name:
        # pyroute2's own IPRoute(netns=...) forks a child to make the socket there: ~50 ms
        # here, seconds in a slow guest, with a 2 s reply timeout. Moving only this thread
        # into the namespace for the socket() call does the same in microseconds.
        try:
            with enter_netns(_netns_target(netns)):
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        except OSError as exc:
            raise KernelError(f"cannot enter network namespace {netns.label}: "
                              f"{exc.strerror or exc}") from None
        fileno = sock.detach()
    # groups=0: no multicast subscriptions, only answers to our own requests.
    ipr = IPRoute(fileno=fileno, ext_ack=True, groups=0)
    try:
        yield ipr
    finally:
        ipr.close()


def _dump(netns: Netns) -> list[Any]:
    from pyroute2.netlink.exceptions import NetlinkDumpInterrupted, NetlinkError

    with _ipr(netns) as ipr:
        for _ in range(_DUMP_TRIES - 1):
            try:
                return list(ipr.get_links())
            except NetlinkDumpInterrupted:
                continue
        try:
            return list(ipr.get_links())
        except NetlinkError as exc:
            raise KernelError(f"cannot list links in {netns.label}: {exc}") from None


# -- decoding -------------------------------------------------------------------------------
def _numbered(nla: Any) -> dict[int, Any]:
    """{attribute number: pyroute2's value} for a nest; attributes pyroute2 cannot name come
    back as Raw payloads."""
    out: dict[int, Any] = {}
    if nla is None:
        return out
    numbers = {name: number for number, name in attributes.by_number(type(nla).nla_map).items()}
    for slot in nla["attrs"]:
        if slot.name in numbers:
            out[numbers[slot.name]] = slot.value
            continue
        cell = slot.nla  # pyroute2 keeps the header and the bytes of what it cannot name
        number = cell["header"]["type"] & NLA_TYPE_MASK
        start = cell.offset + 4
        out[number] = Raw(bytes(cell.data[start:cell.offset + cell["header"]["length"]]))
    return out


def _wire(value: Any, wire: str) -> Any:
    return decode(wire, value.payload) if isinstance(value, Raw) else value


def _kind(msg: Any) -> str:
    info = msg.get_attr("IFLA_LINKINFO")
    return str(info.get_attr("IFLA_INFO_KIND") or "") if info is not None else ""


def _stat(msg: Any, key: str) -> int:
    stats = msg.get_attr("IFLA_STATS64") or msg.get_attr("IFLA_STATS") or {}
    return int(stats.get(key, 0))


def decode_link(msg: Any, names: Mapping[int, str]) -> Link:
    mac = msg.get_attr("IFLA_ADDRESS") or ""
    perm = msg.get_attr("IFLA_PERM_ADDRESS")
    master = msg.get_attr("IFLA_MASTER")
    return Link(
        name=msg.get_attr("IFLA_IFNAME"),
        index=int(msg["index"]),
        mtu=int(msg.get_attr("IFLA_MTU") or 0),
        mac=mac,
        up=bool(msg["flags"] & IFF_UP),
        operstate=str(msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN"),
        kind=_kind(msg),
        master=names.get(master) if master else None,
        perm_mac=perm if perm and perm != mac else None,  # as `ip` shows it: only if changed
        rx_bytes=_stat(msg, "rx_bytes"),
        tx_bytes=_stat(msg, "tx_bytes"),
    )


def _absent(name: str) -> Value | None:
    """What an option the kernel left out of the dump means: an empty target list, no
    primary / active slave. Other options are always there, or not readable."""
    kind = OPTIONS[name].kind
    if kind in ("ipv4list", "ipv6list"):
        return ()
    if kind == "ifname":
        return ""
    if kind == "enum":
        return OPTIONS[name].default
    return None


def _bond_options(data: Mapping[int, Any], names: Mapping[int, str]) -> dict[str, Value]:
    options: dict[str, Value] = {}
    for name, opt in SETTINGS.items():
        if opt.ifla not in data:
            missing = _absent(name)
            if missing is not None:
                options[name] = missing
            continue
        value = _wire(data[opt.ifla], opt.wire)
        if opt.kind == "ifname":
            value = names.get(int(value), "") if value else ""
        options[name] = opt.parse(value)
    return options


def _slave(msg: Any) -> SlaveState:
    info = msg.get_attr("IFLA_LINKINFO")
    data = _numbered(info.get_attr("IFLA_INFO_SLAVE_DATA") if info is not None else None)
    fields: dict[str, Any] = {}
    for field in SLAVE_FIELDS:
        if field.ifla in data:
            # "state" and "mii" are u8 numbers naming an entry of SLAVE_STATES / MII_STATES
            wire = "u8" if field.wire in ("state", "mii") else field.wire
            fields[field.name] = _wire(data[field.ifla], wire)
    return SlaveState(
        name=msg.get_attr("IFLA_IFNAME"),
        state=SLAVE_STATES[fields["state"]] if "state" in fields else "",
        mii_status=MII_STATES[fields["mii_status"]] if "mii_status" in fields else "",
        link_failure_count=int(fields.get("link_failure_count", 0)),
        perm_hwaddr=str(fields.get("perm_hwaddr", "")),
        ad_aggregator_id=fields.get("ad_aggregator_id"),
        up=bool(msg["flags"] & IFF_UP),
        operstate=str(msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN"),
        mtu=int(msg.get_attr("IFLA_MTU") or 0),
        mac=msg.get_attr("IFLA_ADDRESS") or "",
        # per-slave options the kernel sent; one it did not keeps the model's default
        **{name: _wire(data[opt.ifla], opt.wire)
           for name, opt in SLAVE_OPTIONS.items() if opt.ifla in data},
    )


def _ad_info(data: Mapping[int, Any]) -> dict[str, Value] | None:
    nest = data.get(IFLA_BOND_AD_INFO)
    if nest is None or isinstance(nest, Raw):
        return None
    fields = _numbered(nest)
    return {name: _wire(fields[number], wire) for name, number, wire in AD_INFO_FIELDS
            if number in fields} or None


def decode_bond(msg: Any, slaves: Sequence[Any], names: Mapping[int, str], netns: Netns
                ) -> BondState:
    """A bond from its RTM_NEWLINK message and its slaves'; `names` maps every ifindex in the
    namespace to its name. Every attribute the kernel sends is read, as bondctl's netlink
    backend does."""
    data = _numbered(msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA"))
    mode = MODE
    return BondState(
        name=msg.get_attr("IFLA_IFNAME"),
        mode=str(mode.parse(_wire(data.get(mode.ifla, 0), mode.wire))),
        options=_bond_options(data, names),
        slaves=tuple(_slave(s) for s in slaves),
        up=bool(msg["flags"] & IFF_UP),
        operstate=str(msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN"),
        mtu=int(msg.get_attr("IFLA_MTU") or 0),
        mac=msg.get_attr("IFLA_ADDRESS") or "",
        index=int(msg["index"]),
        ad_info=_ad_info(data),
        netns=netns.name or netns.path,
    )
