"""The rtnetlink socket: requests with acks, dumps with retries, link events."""

from __future__ import annotations

import _socket
import errno
import os

from .codec import (
    LinkMessage,
    NetlinkError,
    NlMsg,
    Route,
    check_error,
    decode_address,
    decode_link,
    decode_route,
    ifaddrmsg,
    ifinfomsg,
    ip_bytes,
    linkinfo,
    nla,
    nla_mac,
    nla_string,
    nla_u32,
    nlmsg,
    parse_cidr,
    parse_messages,
    rtmsg,
)
from .constants import (
    AF_INET,
    AF_UNSPEC,
    IFA_ADDRESS,
    IFA_LOCAL,
    IFF_UP,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_NET_NS_FD,
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_ROUTE,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_NOOP,
    NLMSG_OVERRUN,
    RT_SCOPE_LINK,
    RT_SCOPE_NOWHERE,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RT_TABLE_UNSPEC,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_PRIORITY,
    RTA_TABLE,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTPROT_BOOT,
    SOL_NETLINK,
)
from .ns import (
    enter_netns,
)

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
    def get_link(self, link: int | str) -> LinkMessage | None:
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

    def list_links(self) -> list[LinkMessage]:
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
    def link_events(self, timeout: float | None = None) -> Iterator[tuple[str, LinkMessage]]:
        """("new" | "del", LinkMessage) for each link notification, on a socket opened with
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
