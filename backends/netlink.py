"""The netlink backend: rtnetlink messages sent from this process, no process spawned.

Every step is one RTM_NEWLINK or RTM_DELLINK on one NETLINK_ROUTE socket opened inside the
namespace; reading is one RTM_GETLINK dump. Bond options travel as IFLA_BOND_* attributes in
IFLA_LINKINFO / IFLA_INFO_DATA, per-slave options as IFLA_BOND_SLAVE_* in IFLA_INFO_SLAVE_DATA,
all numbered and encoded by the catalogue's `ifla` and `wire` fields.

A step first becomes a `Message` (a description, validated but not yet sent): `render` prints
it for --dry-run and `execute` encodes and sends it, so the two cannot disagree. Links named
inside a message (a master, a primary slave) become ifindexes only when it is sent, because an
earlier step may have just created or renamed them.

Reads decode exactly what the iproute2 backend reads from `ip -j -d link show`: the same
canonical values, and the same rule for what is missing (ip prints an attribute the kernel
leaves out as nothing, an unset primary as nothing, an empty target list as nothing).
"""

from __future__ import annotations

import _socket
import os

from bondctl import netlink as rtnl
from bondctl.backend import ifname_of, link_from_message
from bondctl.errors import KernelError, ValidationError
from bondctl.kernel import bonding_loaded, kernel_can_bond
from bondctl.model import BondState, Link, SlaveState
from bondctl.names import check_ifname
from bondctl.netns import Netns
from bondctl.options import (
    AD_INFO_FIELDS,
    IFLA_BOND_AD_INFO,
    MII_STATES,
    MODE,
    OPTIONS,
    SETTINGS,
    SLAVE_FIELDS,
    SLAVE_OPTIONS,
    SLAVE_STATES,
    Value,
    check_mac,
    check_mtu,
)
from bondctl.plugin import Availability, Backend, Record, StepError, hookimpl
from bondctl.steps import (
    CreateBond,
    DeleteLink,
    MoveLink,
    SetBond,
    SetLink,
    SetSlave,
    Step,
    describe,
)

TYPE_CHECKING = False  # typing and collections cost milliseconds on every CNI ADD
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

BOND_KIND = "bond"  # IFLA_INFO_KIND of a bond, and IFLA_INFO_SLAVE_KIND of its slaves
# The caller's own namespace for MoveLink(to=CURRENT). The socket lives in the source namespace
# but this thread is back home whenever a message is sent (rtnl.enter_netns restores it).
OWN_NETNS = "/proc/thread-self/ns/net"


# --- messages ----------------------------------------------------------------------------------
class Ref(Record):
    """A link a message names, sent as its ifindex in the socket's namespace."""

    name: str


class Attr(Record):
    """One attribute: `wire` is an rtnl wire type, "nest" (value: tuple of Attr) or "netns"
    (value: the target Netns, sent as an open fd)."""

    label: str  # how --dry-run names it
    number: int
    wire: str
    value: object


class Message(Record):
    type: int  # RTM_NEWLINK or RTM_DELLINK
    flags: int  # NLM_F_* beyond REQUEST and ACK, which every request carries
    ifindex: int | Ref  # ifi_index; 0: the link is named by the IFLA_IFNAME attribute
    up: bool | None  # IFF_UP in ifi_flags / ifi_change; None leaves it alone
    attrs: tuple[Attr, ...]


def attribute_name(name: str) -> str:
    """The label --dry-run shows for a bond option: the kernel header's IFLA_BOND_* name."""
    return OPTIONS[name].ifla_name


def slave_attribute_name(name: str) -> str:
    return SLAVE_OPTIONS[name].ifla_name


def message(step: Step) -> Message:
    """The netlink message for one step; ValidationError when a name or value cannot be sent."""
    msg = _message(step)
    try:  # encode once with stand-in ifindexes and fds: bad values fail before anything is sent
        _payload(msg, lambda name: 1, lambda netns: 0)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{describe(step)}: {exc}") from None
    return msg


def _message(step: Step) -> Message:
    if isinstance(step, CreateBond):
        data = _bond_data({MODE.name: step.mode, **step.options})
        attrs = [_ifname(step.name), *_link_attrs(step.mtu, step.mac, None),
                 _linkinfo(BOND_KIND, data)]
        return Message(rtnl.RTM_NEWLINK, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL, 0, None,
                       tuple(attrs))
    if isinstance(step, SetBond):
        attrs = [_ifname(step.name), _linkinfo(BOND_KIND, _bond_data(step.options))]
        return Message(rtnl.RTM_NEWLINK, 0, 0, None, tuple(attrs))
    if isinstance(step, SetSlave):
        attrs = [_ifname(step.name), _slave_linkinfo(_slave_data(step.options))]
        return Message(rtnl.RTM_NEWLINK, 0, 0, None, tuple(attrs))
    if isinstance(step, SetLink):
        # A rename names the link by index: IFLA_IFNAME then carries the new name.
        index, attrs = _select(step.name, renamed=step.new_name is not None)
        attrs += _link_attrs(step.mtu, step.mac, step.master)
        if step.new_name is not None:
            attrs.append(_ifname(step.new_name))
        return Message(rtnl.RTM_NEWLINK, 0, index, step.up, tuple(attrs))
    if isinstance(step, DeleteLink):
        return Message(rtnl.RTM_DELLINK, 0, 0, None, (_ifname(step.name),))
    if isinstance(step, MoveLink):
        # The kernel moves first, then takes IFLA_IFNAME as the name in the target namespace.
        index, attrs = _select(step.name, renamed=step.new_name is not None)
        attrs.append(Attr("net_ns_fd", rtnl.IFLA_NET_NS_FD, "netns", step.to))
        if step.new_name is not None:
            attrs.append(_ifname(step.new_name))
        return Message(rtnl.RTM_NEWLINK, 0, index, None, tuple(attrs))
    raise ValidationError(f"the netlink backend cannot carry out {step!r}")


def _ifname(name: str) -> Attr:
    return Attr("ifname", rtnl.IFLA_IFNAME, "string", check_ifname(name))


def _select(name: str, *, renamed: bool) -> tuple[int | Ref, list[Attr]]:
    check_ifname(name)
    if renamed:
        return Ref(name), []
    return 0, [_ifname(name)]


def _link_attrs(mtu: int | None, mac: str | None, master: str | None) -> list[Attr]:
    attrs = []
    if mtu is not None:
        attrs.append(Attr("mtu", rtnl.IFLA_MTU, "u32", check_mtu(mtu)))
    if mac is not None:
        attrs.append(Attr("address", rtnl.IFLA_ADDRESS, "mac", check_mac(mac)))
    if master is not None:  # "" releases: IFLA_MASTER 0
        target: int | Ref = Ref(check_ifname(master, "master")) if master else 0
        attrs.append(Attr("master", rtnl.IFLA_MASTER, "u32", target))
    return attrs


def _linkinfo(kind: str, data: tuple[Attr, ...]) -> Attr:
    children = (Attr("kind", rtnl.IFLA_INFO_KIND, "string", kind),
                Attr("data", rtnl.IFLA_INFO_DATA, "nest", data))
    return Attr("linkinfo", rtnl.IFLA_LINKINFO, "nest", children)


def _slave_linkinfo(data: tuple[Attr, ...]) -> Attr:
    children = (Attr("slave_kind", rtnl.IFLA_INFO_SLAVE_KIND, "string", BOND_KIND),
                Attr("slave_data", rtnl.IFLA_INFO_SLAVE_DATA, "nest", data))
    return Attr("linkinfo", rtnl.IFLA_LINKINFO, "nest", children)


def _bond_data(options: Mapping[str, Value]) -> tuple[Attr, ...]:
    """IFLA_BOND_* attributes in catalogue order (the mode first)."""
    unknown = [name for name in options if name not in OPTIONS]
    if unknown:
        raise ValidationError(f"unknown bonding option {unknown[0]!r}")
    attrs = []
    for name, opt in OPTIONS.items():
        if name not in options:
            continue
        value = opt.parse(options[name])
        wire_value: object = value
        if opt.kind == "enum":
            wire_value = opt.choices.index(str(value))
        elif opt.wire == "ifindex":
            wire_value = Ref(str(value)) if value else 0  # 0 clears primary / active slave
        attrs.append(Attr(attribute_name(name), opt.ifla, opt.wire, wire_value))
    return tuple(attrs)


def _slave_data(options: Mapping[str, int]) -> tuple[Attr, ...]:
    unknown = [name for name in options if name not in SLAVE_OPTIONS]
    if unknown:
        raise ValidationError(f"unknown slave option {unknown[0]!r}")
    return tuple(
        Attr(slave_attribute_name(name), opt.ifla, opt.wire, opt.parse(options[name]))
        for name, opt in SLAVE_OPTIONS.items() if name in options
    )


# --- encoding ----------------------------------------------------------------------------------
def _payload(msg: Message, index_of: Callable[[str], int],
             open_ns: Callable[[Netns], int]) -> bytes:
    index = index_of(msg.ifindex.name) if isinstance(msg.ifindex, Ref) else msg.ifindex
    flags = rtnl.IFF_UP if msg.up else 0
    change = rtnl.IFF_UP if msg.up is not None else 0
    body = b"".join(_encode(attr, index_of, open_ns) for attr in msg.attrs)
    return rtnl.ifinfomsg(index, flags, change) + body


def _encode(attr: Attr, index_of: Callable[[str], int],
            open_ns: Callable[[Netns], int]) -> bytes:
    if attr.wire == "nest":
        children: Iterable[Attr] = attr.value  # type: ignore[assignment]
        return rtnl.nla_nested(attr.number, [_encode(c, index_of, open_ns) for c in children])
    if attr.wire == "netns":
        return rtnl.nla_u32(attr.number, open_ns(attr.value))  # type: ignore[arg-type]
    value = index_of(attr.value.name) if isinstance(attr.value, Ref) else attr.value
    return rtnl.encode(attr.number, attr.wire, value)


def _send(sock: rtnl.Rtnl, msg: Message) -> None:
    fds: list[int] = []

    def open_ns(netns: Netns) -> int:
        if netns.path is None:
            fd = os.open(OWN_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        else:
            fd = rtnl.open_netns(netns.path)
        fds.append(fd)
        return fd

    try:
        sock.request(msg.type, msg.flags, _payload(msg, sock.index_of, open_ns))
    finally:
        for fd in fds:
            os.close(fd)


# --- rendering ---------------------------------------------------------------------------------
_MESSAGE_NAMES = {rtnl.RTM_NEWLINK: "RTM_NEWLINK", rtnl.RTM_DELLINK: "RTM_DELLINK"}
_FLAG_NAMES = ((rtnl.NLM_F_CREATE, "NLM_F_CREATE"), (rtnl.NLM_F_EXCL, "NLM_F_EXCL"))


def render_message(msg: Message) -> str:
    parts = [_MESSAGE_NAMES[msg.type]]
    if msg.flags:
        parts.append("(" + "|".join(name for bit, name in _FLAG_NAMES if msg.flags & bit) + ")")
    if msg.ifindex:
        parts.append(f"index={_show(msg.ifindex)}")
    if msg.up is not None:
        parts.append(f"flags={'IFF_UP' if msg.up else '0'} change=IFF_UP")
    parts += [_show_attr(attr) for attr in msg.attrs]
    return " ".join(parts)


def _show_attr(attr: Attr) -> str:
    if attr.wire == "nest":
        children: Iterable[Attr] = attr.value  # type: ignore[assignment]
        return f"{attr.label}={{{', '.join(_show_attr(c) for c in children)}}}"
    return f"{attr.label}={_show(attr.value)}"


def _show(value: object) -> str:
    if isinstance(value, Ref):
        return f"ifindex({value.name})"
    if isinstance(value, Netns):
        return f"fd({value.path or OWN_NETNS})"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


# --- reading -----------------------------------------------------------------------------------
def _dump(netns: Netns) -> list[rtnl.LinkMessage]:
    try:
        with rtnl.Rtnl.open(netns.path) as sock:
            return sock.list_links()
    except OSError as exc:
        raise KernelError(f"cannot list the links of {netns.label}: {_reason(exc)}") from None


def _names(found: Iterable[rtnl.LinkMessage]) -> dict[int, str]:
    return {link.index: link.name for link in found}


def to_link(link: rtnl.LinkMessage, names: Mapping[int, str]) -> Link:
    """A link as every backend's links() reads it: the permanent MAC as ip shows "permaddr"
    (only when it differs), and none of the fields only the link contract fills."""
    out = link_from_message(link, names)
    return out._replace(perm_mac=None if out.perm_mac == link.address else out.perm_mac,
                        master_index=None, lower=None, loopback=False, vlan_id=None)


def bond_options(data: Mapping[int, bytes], names: Mapping[int, str]) -> dict[str, Value]:
    """Canonical options from IFLA_INFO_DATA. Left out by the kernel means left out here,
    except that an unset slave reference reads "" and an empty target list () (iproute2's
    reader sees the same)."""
    options: dict[str, Value] = {}
    for name, opt in SETTINGS.items():
        raw = data.get(opt.ifla)
        if raw is None:
            if opt.when_absent is not None:
                options[name] = opt.when_absent
            continue
        value = rtnl.decode(opt.wire, raw)
        if opt.wire == "ifindex":
            value = ifname_of(value, names) if value else ""  # type: ignore[arg-type]
        options[name] = opt.parse(value)
    return options


def _ad_info(data: Mapping[int, bytes]) -> dict[str, Value] | None:
    raw = data.get(IFLA_BOND_AD_INFO)
    if raw is None:
        return None
    nested = rtnl.parse_attrs(raw)
    info: dict[str, Value] = {}
    for name, number, wire in AD_INFO_FIELDS:
        if number in nested:
            info[name] = rtnl.decode(wire, nested[number])  # type: ignore[assignment]
    return info or None


def _named(table: Sequence[str], number: int) -> str:
    return table[number] if number < len(table) else str(number)


def to_slave(link: rtnl.LinkMessage) -> SlaveState:
    fields: dict[str, object] = {"state": "", "mii_status": "", "link_failure_count": 0,
                                 "perm_hwaddr": ""}
    data = link.slave_data
    for field in SLAVE_FIELDS:
        raw = data.get(field.ifla)
        if raw is None or field.name not in SlaveState._fields:
            continue
        if field.wire == "state":
            fields[field.name] = _named(SLAVE_STATES, raw[0])
        elif field.wire == "mii":
            fields[field.name] = _named(MII_STATES, raw[0])
        else:
            fields[field.name] = rtnl.decode(field.wire, raw)
    for opt in SLAVE_OPTIONS.values():
        raw = data.get(opt.ifla)
        if raw is not None:
            fields[opt.name] = rtnl.decode(opt.wire, raw)
    return SlaveState(
        name=link.name,
        up=link.up,
        operstate=link.operstate,
        mtu=link.mtu or 0,
        mac=link.address or "",
        **fields,  # type: ignore[arg-type]
    )


def to_bond(link: rtnl.LinkMessage, found: Iterable[rtnl.LinkMessage], names: Mapping[int, str],
            netns: Netns) -> BondState:
    data = link.info_data
    mode = data.get(MODE.ifla)
    slaves = sorted((s for s in found if s.master == link.index), key=lambda s: s.index)
    return BondState(
        name=link.name,
        mode=str(MODE.parse(rtnl.decode(MODE.wire, mode) if mode is not None else MODE.default)),
        options=bond_options(data, names),
        slaves=tuple(to_slave(s) for s in slaves),
        up=link.up,
        operstate=link.operstate,
        mtu=link.mtu or 0,
        mac=link.address or "",
        index=link.index,
        ad_info=_ad_info(data),
        netns=netns.name or netns.path,
    )


# --- the backend -------------------------------------------------------------------------------
def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return f"{text}: {exc.filename}" if exc.filename else text


class NetlinkBackend(Backend):
    name = "netlink"
    summary = "rtnetlink from this process (no commands run), one message per step"
    priority = 30
    options = frozenset(SETTINGS)
    slave_options = frozenset(SLAVE_OPTIONS)

    @classmethod
    def availability(cls) -> Availability:
        try:
            _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, rtnl.NETLINK_ROUTE).close()
        except OSError as exc:
            return Availability(False, f"cannot open a NETLINK_ROUTE socket: {_reason(exc)}")
        if bonding_loaded():
            return Availability(True, "rtnetlink; the bonding driver is loaded")
        why = kernel_can_bond()
        if why is None:
            return Availability(True, "rtnetlink; the kernel loads the bonding driver on use")
        return Availability(False, why)

    def execute(self, steps: Sequence[Step], netns: Netns) -> None:
        messages = [message(step) for step in steps]  # refuse bad input before any change
        if not messages:
            return
        try:
            sock = rtnl.Rtnl.open(netns.path)
        except OSError as exc:
            raise StepError(steps[0], f"cannot open {netns.label}: {_reason(exc)}", 0) from None
        with sock:
            for done, (step, msg) in enumerate(zip(steps, messages, strict=True)):
                try:
                    _send(sock, msg)
                except OSError as exc:
                    raise StepError(step, _reason(exc), done) from None

    def render(self, steps: Sequence[Step], netns: Netns) -> list[str]:
        prefix = f"[netns {netns.label}] " if netns.path else ""
        return [prefix + render_message(message(step)) for step in steps]

    def links(self, netns: Netns) -> list[Link]:
        found = _dump(netns)
        names = _names(found)
        return [to_link(link, names) for link in found]

    def list_bonds(self, netns: Netns) -> list[BondState]:
        found = _dump(netns)
        names = _names(found)
        return [to_bond(link, found, names, netns) for link in found if link.kind == BOND_KIND]


@hookimpl
def bondctl_register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(NetlinkBackend)
