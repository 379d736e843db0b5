"""Netlink messages and attributes to bytes and back, and the records they decode to.

No typing, dataclasses or enum at run time: the CNI plugin imports this once per pod."""

from __future__ import annotations

import _socket
import os
import struct

from .constants import (
    _IFADDRMSG,
    _IFINFOMSG,
    _INT_FORMATS,
    _NLMSGHDR,
    _RTMSG,
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    IFA_ADDRESS,
    IFA_LOCAL,
    IFADDRMSG_LEN,
    IFF_LOOPBACK,
    IFF_LOWER_UP,
    IFF_UP,
    IFINFOMSG_LEN,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_INFO_SLAVE_DATA,
    IFLA_INFO_SLAVE_KIND,
    IFLA_LINK,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_OPERSTATE,
    IFLA_PERM_ADDRESS,
    IFLA_STATS64,
    NLA_F_NESTED,
    NLA_TYPE_MASK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    NLMSGHDR_LEN,
    OPERSTATES,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_PRIORITY,
    RTA_TABLE,
    RTMSG_LEN,
    RTN_UNICAST,
    RTPROT_BOOT,
    VETH_INFO_PEER,
    WireValue,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


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


class LinkMessage(_Record):
    """A decoded RTM_NEWLINK, as the wire has it: master and link are ifindexes, info_data /
    slave_data map IFLA_*_DATA attribute types to raw payloads (the caller decodes each with
    decode() and the wire type it knows). It stays below the backend contract, which hands
    out bondctl.model.Link."""

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

    @property
    def loopback(self) -> bool:
        return bool(self.flags & IFF_LOOPBACK)


def decode_link(msg: NlMsg) -> LinkMessage:
    _family, _type, index, flags, _change = struct.unpack_from(_IFINFOMSG, msg.payload)
    attrs = parse_attrs(msg.payload, IFINFOMSG_LEN)
    link = LinkMessage(index, _string(attrs.get(IFLA_IFNAME, b"")), flags)
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


def _decode_linkinfo(link: LinkMessage, info: dict[int, bytes]) -> None:
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
