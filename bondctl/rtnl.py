"""A small rtnetlink client: links, addresses, routes and link events, on the standard library.

The CNI plugin imports this once per pod, so the import stays cheap: no pyroute2, no ctypes
(only lazily, for setns on Python 3.11), no dataclasses, no typing at run time, and `_socket`
instead of `socket` (the latter pulls in enum and selectors, several milliseconds).

Layout, top to bottom: constants, attribute encoding, decoding, errors, network namespaces,
the `Rtnl` socket, link / address / route operations, link events.

Every number below was checked against the kernel's uapi headers (linux/netlink.h,
linux/rtnetlink.h, linux/if_link.h, linux/if.h, linux/if_addr.h, linux/veth.h, linux/sched.h);
tests/unit/test_rtnl.py compiles them with the C compiler to keep it that way.
"""

from __future__ import annotations

import _socket
import errno
import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Protocol, Self

    class _Socket(Protocol):
        """What `Rtnl` needs from a socket (tests pass a fake)."""

        def send(self, data: bytes, flags: int = ..., /) -> int: ...
        def recv_into(self, buffer: bytearray, nbytes: int = ..., flags: int = ..., /) -> int: ...
        def settimeout(self, value: float | None, /) -> None: ...
        def fileno(self) -> int: ...
        def close(self) -> None: ...


# --- linux/netlink.h ---------------------------------------------------------------------------
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_ECHO = 0x08
NLM_F_DUMP_INTR = 0x10
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: the echoed request is only its header
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR / NLMSG_DONE: extended-ack attributes follow

NLMSGERR_ATTR_MSG = 1
NLMSGERR_ATTR_OFFS = 2

NLA_F_NESTED = 1 << 15
NLA_F_NET_BYTEORDER = 1 << 14
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

# --- linux/rtnetlink.h -------------------------------------------------------------------------
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_SETLINK = 19
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_TABLE = 15

RTN_UNICAST = 1
RTPROT_KERNEL = 2
RTPROT_BOOT = 3
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255
RT_TABLE_UNSPEC = 0
RT_TABLE_MAIN = 254

RTNLGRP_LINK = 1
RTNLGRP_IPV4_IFADDR = 5
RTNLGRP_IPV4_ROUTE = 7
RTNLGRP_IPV6_IFADDR = 9
RTNLGRP_IPV6_ROUTE = 11

# --- linux/if_link.h ---------------------------------------------------------------------------
IFLA_ADDRESS = 1
IFLA_BROADCAST = 2
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_TXQLEN = 13
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_NET_NS_PID = 19
IFLA_IFALIAS = 20
IFLA_STATS64 = 23
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_CARRIER = 33
IFLA_LINK_NETNSID = 37
IFLA_PERM_ADDRESS = 54

IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5

# --- linux/veth.h ------------------------------------------------------------------------------
VETH_INFO_PEER = 1

# --- linux/if.h --------------------------------------------------------------------------------
IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_POINTOPOINT = 0x10
IFF_RUNNING = 0x40
IFF_NOARP = 0x80
IFF_PROMISC = 0x100
IFF_MASTER = 0x400
IFF_SLAVE = 0x800
IFF_MULTICAST = 0x1000
IFF_LOWER_UP = 0x10000
IFF_DORMANT = 0x20000

IF_OPER_UNKNOWN = 0
IF_OPER_NOTPRESENT = 1
IF_OPER_DOWN = 2
IF_OPER_LOWERLAYERDOWN = 3
IF_OPER_TESTING = 4
IF_OPER_DORMANT = 5
IF_OPER_UP = 6
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

# --- linux/if_addr.h ---------------------------------------------------------------------------
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_FLAGS = 8

# --- linux/sched.h, linux/nsfs.h ---------------------------------------------------------------
CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)

AF_UNSPEC = 0
AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6

# Fixed headers, in host byte order like all of netlink except addresses.
_NLMSGHDR = "=IHHII"  # len, type, flags, seq, pid
_IFINFOMSG = "=BxHiII"  # family, (pad), type, index, flags, change
_IFADDRMSG = "=BBBBI"  # family, prefixlen, flags, scope, index
_RTMSG = "=BBBBBBBBI"  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
NLMSGHDR_LEN = 16
IFINFOMSG_LEN = 16
IFADDRMSG_LEN = 8
RTMSG_LEN = 12

NETNS_RUN_DIR = "/run/netns"

_INT_FORMATS = {"u8": "=B", "u16": "=H", "u32": "=I", "s32": "=i", "ifindex": "=I"}
WIRE_TYPES = (*_INT_FORMATS, "string", "mac", "in_addr_list", "in6_addr_list")

# What decode() returns; encode() also takes bytes for "mac" and tuples for the lists.
WireValue = int | str | list[str]


# --- encoding ----------------------------------------------------------------------------------
def align(length: int) -> int:
    """Round up to the 4-byte boundary that netlink messages and attributes keep."""
    return (length + 3) & ~3


def nla(attr_type: int, payload: bytes) -> bytes:
    """One attribute: header, payload, then padding up to the 4-byte boundary."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, attr_type) + payload + b"\0" * (align(length) - length)


def nla_nested(attr_type: int, children: Iterable[bytes]) -> bytes:
    """A nest of already encoded attributes, flagged so that strict kernel policies accept it."""
    return nla(attr_type | NLA_F_NESTED, b"".join(children))


def nla_u8(attr_type: int, value: int) -> bytes:
    return nla(attr_type, _pack_int("=B", value))


def nla_u16(attr_type: int, value: int) -> bytes:
    return nla(attr_type, _pack_int("=H", value))


def nla_u32(attr_type: int, value: int) -> bytes:
    return nla(attr_type, _pack_int("=I", value))


def nla_s32(attr_type: int, value: int) -> bytes:
    return nla(attr_type, _pack_int("=i", value))


def nla_string(attr_type: int, value: str) -> bytes:
    if "\0" in value:
        raise ValueError(f"NUL byte in string attribute {value!r}")
    return nla(attr_type, value.encode() + b"\0")


def nla_mac(attr_type: int, value: str | bytes) -> bytes:
    return nla(attr_type, mac_bytes(value))


def _pack_int(fmt: str, value: object) -> bytes:
    # bool is an int, but True as a MTU is a bug in the caller, not a value.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    try:
        return struct.pack(fmt, value)
    except struct.error:
        raise ValueError(f"{value} out of range for {fmt[1:]}") from None


def mac_bytes(mac: str | bytes) -> bytes:
    """'aa:bb:cc:dd:ee:ff' (or raw bytes) to bytes; any octet count, strictly two hex digits."""
    if isinstance(mac, bytes):
        return mac
    octets = mac.split(":")
    if not all(len(o) == 2 and _is_hex(o) for o in octets):
        raise ValueError(f"invalid hardware address {mac!r}")
    return bytes.fromhex("".join(octets))


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def ip_bytes(address: str) -> tuple[int, bytes]:
    """An IPv4 or IPv6 address in text form to (family, network-order bytes)."""
    family = AF_INET6 if ":" in address else AF_INET
    try:
        return family, _socket.inet_pton(family, address)
    except OSError:
        raise ValueError(f"invalid IP address {address!r}") from None


def parse_cidr(cidr: str) -> tuple[int, bytes, int]:
    """'10.1.2.3/24' or '2001:db8::1/64' to (family, address bytes, prefix length).

    A bare address is a host prefix (/32 or /128).
    """
    address, slash, prefix_text = cidr.partition("/")
    family, raw = ip_bytes(address)
    max_prefix = len(raw) * 8
    if not slash:
        return family, raw, max_prefix
    if not (prefix_text.isascii() and prefix_text.isdigit()) or int(prefix_text) > max_prefix:
        raise ValueError(f"invalid prefix length in {cidr!r}")
    return family, raw, int(prefix_text)


def _address_list(value: object, family: int, wire_type: str) -> list[bytes]:
    # A lone string would iterate into characters: ask for a list explicitly.
    if not isinstance(value, (list, tuple)) or not all(isinstance(a, str) for a in value):
        raise TypeError(f"{wire_type} takes a list of address strings, got {value!r}")
    packed = []
    for address in value:
        found, raw = ip_bytes(address)
        if found != family:
            raise ValueError(f"{address!r} is not an {'IPv6' if family == AF_INET6 else 'IPv4'}")
        packed.append(raw)
    return packed


def encode(attr_type: int, wire_type: str, value: object) -> bytes:
    """Encode `value` as attribute `attr_type` of wire type `wire_type` (see WIRE_TYPES).

    The address lists are nests whose children are numbered 0..n, as iproute2 sends
    IFLA_BOND_ARP_IP_TARGET and IFLA_BOND_NS_IP6_TARGET.
    """
    fmt = _INT_FORMATS.get(wire_type)
    if fmt is not None:
        return nla(attr_type, _pack_int(fmt, value))
    if wire_type == "string":
        if not isinstance(value, str):
            raise TypeError(f"string attribute takes a str, got {value!r}")
        return nla_string(attr_type, value)
    if wire_type == "mac":
        if not isinstance(value, (str, bytes)):
            raise TypeError(f"mac attribute takes a str or bytes, got {value!r}")
        return nla_mac(attr_type, value)
    if wire_type in ("in_addr_list", "in6_addr_list"):
        family = AF_INET if wire_type == "in_addr_list" else AF_INET6
        addresses = _address_list(value, family, wire_type)
        return nla_nested(attr_type, (nla(i, raw) for i, raw in enumerate(addresses)))
    raise ValueError(f"unknown wire type {wire_type!r}")


def nlmsg(msg_type: int, flags: int, seq: int, payload: bytes, pid: int = 0) -> bytes:
    return struct.pack(_NLMSGHDR, NLMSGHDR_LEN + len(payload), msg_type, flags, seq, pid) + payload


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0, family: int = AF_UNSPEC) -> bytes:
    return struct.pack(_IFINFOMSG, family, 0, index, flags, change)


def ifaddrmsg(family: int, prefixlen: int, index: int, flags: int = 0, scope: int = 0) -> bytes:
    return struct.pack(_IFADDRMSG, family, prefixlen, flags, scope, index)


def rtmsg(
    family: int,
    dst_len: int = 0,
    table: int = RT_TABLE_MAIN,
    protocol: int = RTPROT_BOOT,
    scope: int = RT_SCOPE_UNIVERSE,
    route_type: int = RTN_UNICAST,
) -> bytes:
    return struct.pack(_RTMSG, family, dst_len, 0, 0, table, protocol, scope, route_type, 0)


def linkinfo(
    kind: str | None = None,
    data: Iterable[bytes] | None = None,
    slave_kind: str | None = None,
    slave_data: Iterable[bytes] | None = None,
) -> bytes:
    """IFLA_LINKINFO: the kind and its options, and/or the port kind and its port options."""
    children = []
    if kind is not None:
        children.append(nla_string(IFLA_INFO_KIND, kind))
        if data is not None:
            children.append(nla_nested(IFLA_INFO_DATA, data))
    elif data is not None:
        raise ValueError("IFLA_INFO_DATA needs the link kind")
    if slave_kind is not None:
        children.append(nla_string(IFLA_INFO_SLAVE_KIND, slave_kind))
        if slave_data is not None:
            children.append(nla_nested(IFLA_INFO_SLAVE_DATA, slave_data))
    elif slave_data is not None:
        raise ValueError("IFLA_INFO_SLAVE_DATA needs the port kind")
    return nla_nested(IFLA_LINKINFO, children)


def veth_peer(name: str, attrs: Iterable[bytes] = ()) -> bytes:
    """VETH_INFO_PEER for a veth's IFLA_INFO_DATA: an ifinfomsg plus the peer's attributes.

    Not flagged nested: the kernel's policy types it as a raw blob (it starts with a header).
    """
    return nla(VETH_INFO_PEER, ifinfomsg() + nla_string(IFLA_IFNAME, name) + b"".join(attrs))


# --- decoding ----------------------------------------------------------------------------------
class NlMsg:
    """One netlink message: header fields and the payload after the 16-byte header."""

    __slots__ = ("flags", "payload", "pid", "seq", "type")

    def __init__(self, msg_type: int, flags: int, seq: int, pid: int, payload: bytes) -> None:
        self.type = msg_type
        self.flags = flags
        self.seq = seq
        self.pid = pid
        self.payload = payload

    def __repr__(self) -> str:
        return f"NlMsg(type={self.type}, flags={self.flags:#x}, seq={self.seq}, {self.payload!r})"


def parse_messages(data: bytes) -> list[NlMsg]:
    """Split one datagram into its messages."""
    messages = []
    offset = 0
    while offset + NLMSGHDR_LEN <= len(data):
        length, msg_type, flags, seq, pid = struct.unpack_from(_NLMSGHDR, data, offset)
        if length < NLMSGHDR_LEN or offset + length > len(data):
            raise ValueError(f"malformed netlink message at offset {offset}")
        payload = data[offset + NLMSGHDR_LEN : offset + length]
        messages.append(NlMsg(msg_type, flags, seq, pid, payload))
        offset += align(length)
    return messages


def iter_attrs(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type without the NESTED/BYTEORDER flags, payload) for each attribute, in order."""
    while offset + 4 <= len(data):
        length, attr_type = struct.unpack_from("=HH", data, offset)
        if length < 4 or offset + length > len(data):
            raise ValueError(f"malformed netlink attribute at offset {offset}")
        yield attr_type & NLA_TYPE_MASK, data[offset + 4 : offset + length]
        offset += align(length)


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attributes by type; a repeated type keeps its last value, as the kernel does."""
    return dict(iter_attrs(data, offset))


def decode(wire_type: str, raw: bytes) -> WireValue:
    """The inverse of encode() for an attribute payload: int, str or list of address strings."""
    fmt = _INT_FORMATS.get(wire_type)
    if fmt is not None:
        value: int = struct.unpack_from(fmt, raw)[0]
        return value
    if wire_type == "string":
        return raw.split(b"\0", 1)[0].decode(errors="replace")
    if wire_type == "mac":
        return raw.hex(":")
    if wire_type in ("in_addr_list", "in6_addr_list"):
        family = AF_INET if wire_type == "in_addr_list" else AF_INET6
        return [_socket.inet_ntop(family, payload) for _, payload in iter_attrs(raw)]
    raise ValueError(f"unknown wire type {wire_type!r}")


def _u32(raw: bytes) -> int:
    value: int = struct.unpack_from("=I", raw)[0]
    return value


def _string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


class _Record:
    """Slots-based value object: repr and equality from the fields (dataclasses cost ~9 ms)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self._fields
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, like a dataclass


class LinkStats(_Record):
    """The first counters of struct rtnl_link_stats64."""

    _fields = __slots__ = (
        "rx_packets",
        "tx_packets",
        "rx_bytes",
        "tx_bytes",
        "rx_errors",
        "tx_errors",
        "rx_dropped",
        "tx_dropped",
    )
    rx_packets: int
    tx_packets: int
    rx_bytes: int
    tx_bytes: int
    rx_errors: int
    tx_errors: int
    rx_dropped: int
    tx_dropped: int

    def __init__(self, raw: bytes) -> None:
        for name, value in zip(self._fields, struct.unpack_from("=8Q", raw), strict=True):
            setattr(self, name, value)


class Link(_Record):
    """A decoded RTM_NEWLINK. info_data / slave_data map IFLA_*_DATA attribute types to raw
    payloads: the caller decodes each with decode() and the wire type it knows."""

    _fields = __slots__ = (
        "index",
        "name",
        "flags",
        "mtu",
        "address",
        "perm_address",
        "operstate",
        "master",
        "link",
        "kind",
        "info_data",
        "slave_kind",
        "slave_data",
        "stats",
    )
    index: int
    name: str
    flags: int
    mtu: int | None
    address: str | None
    perm_address: str | None
    operstate: str
    master: int | None
    link: int | None
    kind: str | None
    info_data: dict[int, bytes]
    slave_kind: str | None
    slave_data: dict[int, bytes]
    stats: LinkStats | None

    def __init__(self, index: int, name: str, flags: int) -> None:
        self.index = index
        self.name = name
        self.flags = flags
        self.mtu = self.address = self.perm_address = None
        self.operstate = "UNKNOWN"
        self.master = self.link = None
        self.kind = self.slave_kind = None
        self.info_data = {}
        self.slave_data = {}
        self.stats = None

    @property
    def up(self) -> bool:
        """Administratively up (IFF_UP)."""
        return bool(self.flags & IFF_UP)

    @property
    def lower_up(self) -> bool:
        """Carrier present (IFF_LOWER_UP)."""
        return bool(self.flags & IFF_LOWER_UP)


def decode_link(msg: NlMsg) -> Link:
    _family, _type, index, flags, _change = struct.unpack_from(_IFINFOMSG, msg.payload)
    attrs = parse_attrs(msg.payload, IFINFOMSG_LEN)
    link = Link(index, _string(attrs.get(IFLA_IFNAME, b"")), flags)
    if IFLA_MTU in attrs:
        link.mtu = _u32(attrs[IFLA_MTU])
    if IFLA_ADDRESS in attrs:
        link.address = attrs[IFLA_ADDRESS].hex(":")
    if IFLA_PERM_ADDRESS in attrs:
        link.perm_address = attrs[IFLA_PERM_ADDRESS].hex(":")
    if IFLA_OPERSTATE in attrs:
        state = attrs[IFLA_OPERSTATE][0]
        link.operstate = OPERSTATES[state] if state < len(OPERSTATES) else str(state)
    if IFLA_MASTER in attrs:
        link.master = _u32(attrs[IFLA_MASTER])
    if IFLA_LINK in attrs:
        link.link = _u32(attrs[IFLA_LINK])
    if IFLA_LINKINFO in attrs:
        _decode_linkinfo(link, parse_attrs(attrs[IFLA_LINKINFO]))
    if IFLA_STATS64 in attrs:
        link.stats = LinkStats(attrs[IFLA_STATS64])
    return link


def _decode_linkinfo(link: Link, info: dict[int, bytes]) -> None:
    if IFLA_INFO_KIND in info:
        link.kind = _string(info[IFLA_INFO_KIND])
    if IFLA_INFO_DATA in info:
        link.info_data = parse_attrs(info[IFLA_INFO_DATA])
    if IFLA_INFO_SLAVE_KIND in info:
        link.slave_kind = _string(info[IFLA_INFO_SLAVE_KIND])
    if IFLA_INFO_SLAVE_DATA in info:
        link.slave_data = parse_attrs(info[IFLA_INFO_SLAVE_DATA])


def decode_address(msg: NlMsg) -> tuple[int, int, str]:
    """RTM_NEWADDR to (ifindex, family, 'address/prefix')."""
    family, prefixlen, _flags, _scope, index = struct.unpack_from(_IFADDRMSG, msg.payload)
    attrs = parse_attrs(msg.payload, IFADDRMSG_LEN)
    # IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    # links, and the only one IPv6 sends.
    raw = attrs.get(IFA_LOCAL) or attrs[IFA_ADDRESS]
    return index, family, f"{_socket.inet_ntop(family, raw)}/{prefixlen}"


class Route(_Record):
    """A decoded RTM_NEWROUTE. dst is 'prefix/len' or 'default'."""

    _fields = __slots__ = (
        "family",
        "dst",
        "gateway",
        "oif",
        "table",
        "metric",
        "protocol",
        "scope",
        "type",
    )
    family: int
    dst: str
    gateway: str | None
    oif: int | None
    table: int
    metric: int | None
    protocol: int
    scope: int
    type: int

    def __init__(self, family: int, dst: str, table: int, protocol: int, scope: int) -> None:
        self.family = family
        self.dst = dst
        self.table = table
        self.protocol = protocol
        self.scope = scope
        self.type = RTN_UNICAST
        self.gateway = None
        self.oif = self.metric = None


def decode_route(msg: NlMsg) -> Route:
    family, dst_len, _src, _tos, table, protocol, scope, rtype, _flags = struct.unpack_from(
        _RTMSG, msg.payload
    )
    attrs = parse_attrs(msg.payload, RTMSG_LEN)
    dst = "default"
    if RTA_DST in attrs:
        dst = f"{_socket.inet_ntop(family, attrs[RTA_DST])}/{dst_len}"
    # rtm_table is a u8: tables above 255 are only in RTA_TABLE.
    if RTA_TABLE in attrs:
        table = _u32(attrs[RTA_TABLE])
    route = Route(family, dst, table, protocol, scope)
    route.type = rtype
    if RTA_GATEWAY in attrs:
        route.gateway = _socket.inet_ntop(family, attrs[RTA_GATEWAY])
    if RTA_OIF in attrs:
        route.oif = _u32(attrs[RTA_OIF])
    if RTA_PRIORITY in attrs:
        route.metric = _u32(attrs[RTA_PRIORITY])
    return route


# --- errors ------------------------------------------------------------------------------------
class NetlinkError(OSError):
    """The kernel refused a request. `errno` is positive; `extack` is the kernel's own text."""

    extack: str | None

    def __init__(self, code: int, message: str, extack: str | None = None) -> None:
        super().__init__(code, message)
        self.extack = extack

    @classmethod
    def from_kernel(cls, code: int, extack: str | None) -> NetlinkError:
        text = os.strerror(code)
        return cls(code, f"{text}: {extack}" if extack else text, extack)


def _error_code(msg: NlMsg) -> int:
    """The (negative) error of an NLMSG_ERROR or NLMSG_DONE; 0 is an ack / a clean end."""
    if len(msg.payload) < 4:
        return 0
    code: int = struct.unpack_from("=i", msg.payload)[0]
    return code


def _extack_text(msg: NlMsg) -> str | None:
    if not msg.flags & NLM_F_ACK_TLVS:
        return None
    offset = 4  # NLMSG_DONE: the TLVs follow the error code
    if msg.type == NLMSG_ERROR:
        # Then the echoed request: its header alone when capped, else the whole message.
        echoed = NLMSGHDR_LEN
        if not msg.flags & NLM_F_CAPPED:
            echoed = struct.unpack_from("=I", msg.payload, 4)[0]
        offset += align(echoed)
    text = parse_attrs(msg.payload, offset).get(NLMSGERR_ATTR_MSG)
    return _string(text) if text else None


def check_error(msg: NlMsg) -> None:
    """Raise NetlinkError for an NLMSG_ERROR / NLMSG_DONE carrying an error."""
    code = _error_code(msg)
    if code < 0:
        raise NetlinkError.from_kernel(-code, _extack_text(msg))


# --- network namespaces ------------------------------------------------------------------------
def netns_path(spec: str) -> str:
    """A namespace name (as `ip netns` names them) or an absolute path, to a path.

    Names are checked before they reach the file system: no '/', no '.' or '..'.
    """
    if spec.startswith("/"):
        return spec
    if not spec or "/" in spec or spec in (".", "..") or "\0" in spec or len(spec) > 255:
        raise ValueError(f"invalid network namespace name {spec!r}")
    return f"{NETNS_RUN_DIR}/{spec}"


def open_netns(spec: str) -> int:
    """An O_CLOEXEC fd on the network namespace `spec` (name or path), checked to be one.

    The fd is what IFLA_NET_NS_FD takes; the caller closes it.
    """
    path = netns_path(spec)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check_netns_fd(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_netns_fd(fd: int, path: str) -> None:
    # fcntl is tiny and only needed here; NS_GET_NSTYPE answers ENOTTY on a plain file, e.g.
    # /run/netns/x whose bind mount is gone.
    import fcntl

    try:
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        nstype = -1
    if nstype != CLONE_NEWNET:
        raise OSError(errno.EINVAL, "not a network namespace", path)


def _setns(fd: int) -> None:
    os_setns = getattr(os, "setns", None)  # Python >= 3.12
    if os_setns is not None:
        os_setns(fd, CLONE_NEWNET)
        return
    import ctypes  # Python 3.11 only: ~2 ms, so never at import time

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class enter_netns:  # lower case: used like a function, `with enter_netns(spec):`
    """Move the calling thread into a network namespace for the `with` block, then back.

    Only this thread moves (setns is per thread), and sockets created inside stay in the
    namespace after the block ends.
    """

    def __init__(self, spec: str) -> None:
        self._spec = spec
        self._home = -1

    def __enter__(self) -> None:
        target = open_netns(self._spec)
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
            except BaseException:
                os.close(home)
                raise
        finally:
            os.close(target)
        self._home = home

    def __exit__(self, *exc_info: object) -> None:
        try:
            _setns(self._home)
        finally:
            os.close(self._home)
            self._home = -1


# --- the socket --------------------------------------------------------------------------------
class Rtnl:
    """A NETLINK_ROUTE socket with sequence numbers, acks, dump retries and extended acks."""

    dump_attempts = 4  # NLM_F_DUMP_INTR means churn: retry, but not forever
    _BUFSIZE = 32768  # the kernel fills dump datagrams up to 32 KiB

    def __init__(self, sock: _Socket) -> None:
        self._sock = sock
        self._seq = 0
        self._buf = bytearray(self._BUFSIZE)

    @classmethod
    def open(cls, netns: str | None = None, groups: Iterable[int] = ()) -> Self:
        """A socket in the current namespace, or in `netns` (a name or a path).

        `groups` are RTNLGRP_* multicast groups to listen to (see link_events()); keep such a
        socket for events only, requests on it would skip the events that arrive meanwhile.
        """
        if netns is None:
            sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, NETLINK_ROUTE)
        else:
            with enter_netns(netns):
                sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, NETLINK_ROUTE)
        try:
            _configure(sock, groups)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def fileno(self) -> int:
        """For select/poll over many namespaces' event sockets."""
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, msg_type: int, flags: int, payload: bytes) -> list[NlMsg]:
        """Send one request; return the kernel's replies (not the ack).

        A dump (flags include NLM_F_DUMP) returns all its messages, retried from scratch when
        the kernel flags it inconsistent. Raises NetlinkError when the kernel refuses.
        """
        if flags & NLM_F_DUMP == NLM_F_DUMP:
            return self._dump(msg_type, flags, payload)
        return self._transact(msg_type, flags, payload)

    def _transact(self, msg_type: int, flags: int, payload: bytes) -> list[NlMsg]:
        seq = self._send(msg_type, flags | NLM_F_ACK, payload)
        replies: list[NlMsg] = []
        for msg in self._replies(seq):
            if msg.type == NLMSG_ERROR:
                check_error(msg)
                return replies
            replies.append(msg)
        raise AssertionError("unreachable")  # _replies() never ends

    def _dump(self, msg_type: int, flags: int, payload: bytes) -> list[NlMsg]:
        for _ in range(self.dump_attempts):
            replies, interrupted = self._dump_once(msg_type, flags, payload)
            if not interrupted:
                return replies
        raise NetlinkError(
            errno.EINTR, f"dump interrupted by concurrent changes {self.dump_attempts} times"
        )

    def _dump_once(self, msg_type: int, flags: int, payload: bytes) -> tuple[list[NlMsg], bool]:
        seq = self._send(msg_type, flags, payload)
        replies: list[NlMsg] = []
        interrupted = False
        for msg in self._replies(seq):
            interrupted = interrupted or bool(msg.flags & NLM_F_DUMP_INTR)
            if msg.type in (NLMSG_DONE, NLMSG_ERROR):
                check_error(msg)
                return replies, interrupted
            replies.append(msg)
        raise AssertionError("unreachable")

    def _send(self, msg_type: int, flags: int, payload: bytes) -> int:
        self._seq = self._seq % 0xFFFFFFFF + 1
        self._sock.send(nlmsg(msg_type, flags | NLM_F_REQUEST, self._seq, payload))
        return self._seq

    def _replies(self, seq: int) -> Iterator[NlMsg]:
        """Messages answering `seq`, forever; stale replies and notifications are dropped."""
        while True:
            for msg in parse_messages(self._recv()):
                if msg.seq == seq and msg.type not in (NLMSG_NOOP, NLMSG_OVERRUN):
                    yield msg

    def _recv(self) -> bytes:
        # Peek at the true size first: a datagram read into too small a buffer is cut and lost.
        size = self._sock.recv_into(self._buf, 0, _socket.MSG_PEEK | _socket.MSG_TRUNC)
        if size > len(self._buf):
            self._buf = bytearray(size)
        size = self._sock.recv_into(self._buf, size)
        return bytes(memoryview(self._buf)[:size])

    # --- links ---------------------------------------------------------------------------------
    def get_link(self, link: int | str) -> Link | None:
        """The link with this index or name, or None if there is none."""
        index, attrs = _select(link)
        try:
            replies = self.request(RTM_GETLINK, 0, ifinfomsg(index) + attrs)
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return decode_link(replies[0])

    def index_of(self, link: int | str) -> int:
        """The index of a link given by index or name; NetlinkError(ENODEV) if none."""
        if isinstance(link, int):
            return link
        found = self.get_link(link)
        if found is None:
            raise NetlinkError(errno.ENODEV, f"{os.strerror(errno.ENODEV)}: {link}")
        return found.index

    def list_links(self) -> list[Link]:
        replies = self.request(RTM_GETLINK, NLM_F_DUMP, ifinfomsg())
        return [decode_link(m) for m in replies if m.type == RTM_NEWLINK]

    def new_link(
        self,
        name: str,
        kind: str,
        info_data: Iterable[bytes] | None = None,
        *,
        up: bool = False,
        mtu: int | None = None,
        address: str | bytes | None = None,
        master: int | None = None,
        netns_fd: int | None = None,
        attrs: Iterable[bytes] = (),
    ) -> None:
        """Create a link of `kind`; `info_data` are its encoded IFLA_INFO_DATA options."""
        flags = IFF_UP if up else 0
        body = [nla_string(IFLA_IFNAME, name), *_link_attrs(mtu, address, master, netns_fd)]
        body.append(linkinfo(kind, info_data))
        body.extend(attrs)
        payload = ifinfomsg(0, flags, flags) + b"".join(body)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, payload)

    def set_link(
        self,
        link: int | str,
        *,
        up: bool | None = None,
        mtu: int | None = None,
        address: str | bytes | None = None,
        ifname: str | None = None,
        master: int | None = None,
        netns_fd: int | None = None,
        kind: str | None = None,
        info_data: Iterable[bytes] | None = None,
        slave_kind: str | None = None,
        slave_data: Iterable[bytes] | None = None,
        attrs: Iterable[bytes] = (),
    ) -> None:
        """Change a link in one RTM_NEWLINK: the kernel applies what it can in its own order
        and stops at the first error. master=0 releases the link from its master.

        Renaming a link given by name costs one more request, to find its index.
        """
        index, selector = (self.index_of(link), b"") if ifname is not None else _select(link)
        body = [selector, *_link_attrs(mtu, address, master, netns_fd)]
        if ifname is not None:
            body.append(nla_string(IFLA_IFNAME, ifname))
        if any(x is not None for x in (kind, info_data, slave_kind, slave_data)):
            body.append(linkinfo(kind, info_data, slave_kind, slave_data))
        body.extend(attrs)
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        # RTM_NEWLINK on an existing link rather than RTM_SETLINK: only the former passes
        # IFLA_INFO_DATA / IFLA_INFO_SLAVE_DATA on to the driver.
        self.request(RTM_NEWLINK, 0, ifinfomsg(index, flags, change) + b"".join(body))

    def del_link(self, link: int | str) -> None:
        index, selector = _select(link)
        self.request(RTM_DELLINK, 0, ifinfomsg(index) + selector)

    # --- addresses and routes ------------------------------------------------------------------
    def add_address(self, index: int, cidr: str) -> None:
        """Add '10.1.2.3/24' or '2001:db8::1/64' to the link; EEXIST if already there."""
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, _address_payload(index, cidr))

    def del_address(self, index: int, cidr: str) -> None:
        self.request(RTM_DELADDR, 0, _address_payload(index, cidr))

    def list_addresses(
        self, index: int | None = None, family: int = AF_UNSPEC
    ) -> list[tuple[int, int, str]]:
        """(ifindex, family, 'address/prefix') of every address, or of one link's."""
        replies = self.request(RTM_GETADDR, NLM_F_DUMP, ifaddrmsg(family, 0, 0))
        found = [decode_address(m) for m in replies if m.type == RTM_NEWADDR]
        # Filtered here: the kernel filters dumps by index only in strict-check mode.
        return [a for a in found if index is None or a[0] == index]

    def add_route(
        self,
        dst: str,
        gateway: str | None,
        oif: int | None,
        *,
        table: int | None = None,
        metric: int | None = None,
        protocol: int = RTPROT_BOOT,
    ) -> None:
        """Add a unicast route; dst is a prefix or 'default'. Without a gateway an IPv4 route
        gets link scope, as iproute2 gives it; EEXIST if the same route exists."""
        payload = _route_payload(dst, gateway, oif, table, metric, protocol, delete=False)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, payload)

    def del_route(
        self,
        dst: str,
        gateway: str | None = None,
        oif: int | None = None,
        *,
        table: int | None = None,
        metric: int | None = None,
    ) -> None:
        payload = _route_payload(dst, gateway, oif, table, metric, 0, delete=True)
        self.request(RTM_DELROUTE, 0, payload)

    def list_routes(self, family: int = AF_INET) -> list[Route]:
        """All routes of a family, every table (see Route.table)."""
        query = rtmsg(family, table=RT_TABLE_UNSPEC, protocol=0, route_type=0)
        replies = self.request(RTM_GETROUTE, NLM_F_DUMP, query)
        return [decode_route(m) for m in replies if m.type == RTM_NEWROUTE]

    # --- events --------------------------------------------------------------------------------
    def link_events(self, timeout: float | None = None) -> Iterator[tuple[str, Link]]:
        """("new" | "del", Link) for each link notification, on a socket opened with
        groups=[RTNLGRP_LINK]; ends after `timeout` seconds without one (None: never).

        An OSError(ENOBUFS) means notifications were lost: list_links() again.
        """
        for msg in self.notifications(timeout):
            if msg.type in (RTM_NEWLINK, RTM_DELLINK):
                yield ("new" if msg.type == RTM_NEWLINK else "del"), decode_link(msg)

    def notifications(self, timeout: float | None = None) -> Iterator[NlMsg]:
        """Every message of the groups this socket joined, undecoded; ends after `timeout`
        seconds without one (None: never; 0: what is queued now, for a poll() loop)."""
        self._sock.settimeout(timeout)
        try:
            while True:
                try:
                    data = self._recv()
                except (TimeoutError, BlockingIOError):  # BlockingIOError: timeout 0
                    return
                yield from parse_messages(data)
        finally:
            self._sock.settimeout(None)


def _configure(sock: _socket.socket, groups: Iterable[int]) -> None:
    sock.bind((0, 0))
    for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
        try:
            sock.setsockopt(SOL_NETLINK, option, 1)
        except OSError as e:  # kernels before 4.12 know neither: plain errors still work
            if e.errno != errno.ENOPROTOOPT:
                raise
    for group in groups:
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)


def _select(link: int | str) -> tuple[int, bytes]:
    """(ifi_index, attributes) naming a link: by index, or by IFLA_IFNAME with index 0."""
    if isinstance(link, int):
        return link, b""
    return 0, nla_string(IFLA_IFNAME, link)


def _link_attrs(
    mtu: int | None, address: str | bytes | None, master: int | None, netns_fd: int | None
) -> list[bytes]:
    attrs = []
    if mtu is not None:
        attrs.append(nla_u32(IFLA_MTU, mtu))
    if address is not None:
        attrs.append(nla_mac(IFLA_ADDRESS, address))
    if master is not None:
        attrs.append(nla_u32(IFLA_MASTER, master))
    if netns_fd is not None:
        attrs.append(nla_u32(IFLA_NET_NS_FD, netns_fd))
    return attrs


def _address_payload(index: int, cidr: str) -> bytes:
    family, raw, prefix = parse_cidr(cidr)
    # iproute2 sends both: IFA_LOCAL is the address, IFA_ADDRESS the (here identical) peer.
    attrs = nla(IFA_LOCAL, raw) + nla(IFA_ADDRESS, raw)
    return ifaddrmsg(family, prefix, index) + attrs


def _route_payload(
    dst: str,
    gateway: str | None,
    oif: int | None,
    table: int | None,
    metric: int | None,
    protocol: int,
    *,
    delete: bool,
) -> bytes:
    attrs = []
    if dst == "default":
        family = ip_bytes(gateway)[0] if gateway else AF_INET
        dst_len = 0
    else:
        family, raw, dst_len = parse_cidr(dst)
        attrs.append(nla(RTA_DST, raw))
    if gateway is not None:
        gw_family, raw_gw = ip_bytes(gateway)
        if gw_family != family:
            raise ValueError(f"gateway {gateway!r} and destination {dst!r} differ in family")
        attrs.append(nla(RTA_GATEWAY, raw_gw))
    if oif is not None:
        attrs.append(nla_u32(RTA_OIF, oif))
    if metric is not None:
        attrs.append(nla_u32(RTA_PRIORITY, metric))
    table = RT_TABLE_MAIN if table is None else table
    attrs.append(nla_u32(RTA_TABLE, table))  # rtm_table below only holds 0..255
    scope = _route_scope(family, gateway, delete)
    header = rtmsg(family, dst_len, table if table < 256 else RT_TABLE_UNSPEC, protocol, scope)
    return header + b"".join(attrs)


def _route_scope(family: int, gateway: str | None, delete: bool) -> int:
    # iproute2's defaults: NOWHERE matches any scope on delete; a directly connected IPv4
    # route is link scope; IPv6 routes are always universe.
    if delete:
        return RT_SCOPE_NOWHERE
    if family == AF_INET and gateway is None:
        return RT_SCOPE_LINK
    return RT_SCOPE_UNIVERSE
