"""The contract every backend honours, built-in or third-party.

A backend translates steps (bondctl.steps) into kernel changes in a network namespace and reads
bonds and links back into the model. Planning, validation, verification and rollback live in
bondctl.ops, once, for every backend.
"""

from __future__ import annotations

import _socket
import errno
import os
from abc import ABC, abstractmethod

from .errors import KernelError, NotFoundError
from .model import BondState, Link
from .netns import Netns
from .record import Record
from .steps import Step, describe

TYPE_CHECKING = False  # typing and collections cost milliseconds per CNI start: checker only
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, ClassVar

    from .netlink import LinkMessage, Route, Rtnl

    RouteHops = tuple[Route, list[tuple[int, str | None]]]


class Availability(Record):
    ok: bool
    reason: str  # why not, or what it uses when it can


class StepError(KernelError):
    """A step the kernel refused. `done` counts the steps that took effect before it."""

    def __init__(self, step: Step, reason: str, done: int) -> None:
        super().__init__(f"{describe(step)}: {reason}")
        self.step = step
        self.reason = reason
        self.done = done


class LinkContract:
    """The part of the contract about links, addresses and routes (what the CNI needs beyond
    bonds), written once here over rtnetlink. Every Backend has it and may override any of it;
    on its own it serves whoever must reach links before or without a backend (the CNI's
    checks before the bond is made, and its undoing, which must not depend on the configured
    backend being usable now). Links are named by ifindex: a name is the namespace owner's to
    change, an index is not. The kernel's refusals come out as OSError (a NetlinkError)."""

    def link_records(self, netns: Netns) -> list[Link]:
        """Every link with its index, kind, permanent MAC, master and lower link."""
        with _rtnl(netns) as sock:
            found = sock.list_links()
        names = {x.index: x.name for x in found}
        return [link_from_message(x, names) for x in found]

    def link_record(self, link: int | str, netns: Netns) -> Link | None:
        with _rtnl(netns) as sock:
            found = sock.get_link(link)
            if found is None:
                return None
            master = sock.get_link(found.master) if found.master else None
        return link_from_message(found, {master.index: master.name} if master else {})

    def set_link(self, index: int, netns: Netns, *, up: bool | None = None,
                 mtu: int | None = None, mac: str | None = None, name: str | None = None,
                 master: int | None = None) -> None:
        """Change a link's attributes in one request; master=0 releases it from its master."""
        with _rtnl(netns) as sock:
            sock.set_link(index, up=up, mtu=mtu, address=mac, ifname=name, master=master)

    def move_link(self, index: int, netns: Netns, target: Netns | int,
                  name: str | None = None) -> None:
        """Take a link down and into `target` (a namespace, or an fd on one), renamed to
        `name` if given: it arrives under that name or not at all."""
        from .netlink import open_netns

        fd = target if isinstance(target, int) else open_netns(target.path or "/proc/self/ns/net")
        try:
            with _rtnl(netns) as sock:
                sock.set_link(index, up=False, netns_fd=fd, ifname=name)
        finally:
            if not isinstance(target, int):
                os.close(fd)

    def delete_link(self, index: int, netns: Netns) -> None:
        with _rtnl(netns) as sock:
            sock.del_link(index)

    def addresses(self, index: int, netns: Netns) -> list[str]:
        """The link's addresses as "address/prefix"."""
        with _rtnl(netns) as sock:
            return [cidr for _, _, cidr in sock.list_addresses(index)]

    def add_address(self, index: int, cidr: str, netns: Netns, *,
                    broadcast: str | None = None) -> None:
        """Add an address (EEXIST if there); an IPv4 one may get a broadcast address."""
        from . import netlink as nl

        family, raw, prefix = nl.parse_cidr(cidr)
        attrs = nl.nla(nl.IFA_LOCAL, raw) + nl.nla(nl.IFA_ADDRESS, raw)
        if broadcast is not None:
            attrs += nl.nla(nl.IFA_BROADCAST, _socket.inet_pton(family, broadcast))
        with _rtnl(netns) as sock:
            sock.request(nl.RTM_NEWADDR, nl.NLM_F_CREATE | nl.NLM_F_EXCL,
                         nl.ifaddrmsg(family, prefix, index) + attrs)

    def routes(self, netns: Netns) -> list[RouteHops]:
        """Every IPv4 and IPv6 route of every table, each with its multipath next hops as
        (ifindex, gateway): a multipath route has no output link, only hops that name one."""
        from . import netlink as nl
        from .hostlinks import multipath_hops

        out = []
        with _rtnl(netns) as sock:
            for family in (nl.AF_INET, nl.AF_INET6):
                query = nl.rtmsg(family, table=nl.RT_TABLE_UNSPEC, protocol=0, route_type=0)
                for msg in sock.request(nl.RTM_GETROUTE, nl.NLM_F_DUMP, query):
                    if msg.type != nl.RTM_NEWROUTE:
                        continue
                    route = nl.decode_route(msg)
                    multipath = nl.parse_attrs(msg.payload, nl.RTMSG_LEN).get(nl.RTA_MULTIPATH)
                    out.append((route, multipath_hops(route.family, multipath)
                                if multipath else []))
        return out

    def add_route(self, dst: str, gateway: str | None, oif: int, netns: Netns, *,
                  table: int | None = None, metric: int | None = None,
                  protocol: int | None = None) -> None:
        """Add a unicast route through link `oif`; dst is a prefix or 'default'. `protocol`:
        who made it (RTPROT_*); None gives "boot", as `ip route add` does."""
        from .netlink import RTPROT_BOOT

        with _rtnl(netns) as sock:
            sock.add_route(dst, gateway, oif, table=table, metric=metric,
                           protocol=RTPROT_BOOT if protocol is None else protocol)

    def delete_address(self, index: int, cidr: str, netns: Netns) -> None:
        with _rtnl(netns) as sock:
            sock.del_address(index, cidr)

    def delete_route(self, dst: str, gateway: str | None, oif: int, netns: Netns, *,
                     table: int | None = None, metric: int | None = None) -> None:
        with _rtnl(netns) as sock:
            sock.del_route(dst, gateway, oif, table=table, metric=metric)

    def add_vlan(self, name: str, lower: int, vlan_id: int, netns: Netns, *,
                 mtu: int | None = None) -> None:
        """Make VLAN `name` (802.1Q, id `vlan_id`) on link `lower`, up."""
        from . import netlink as nl

        with _rtnl(netns) as sock:
            sock.new_link(name, "vlan", [nl.nla_u16(nl.IFLA_VLAN_ID, vlan_id)], up=True,
                          mtu=mtu, attrs=[nl.nla_u32(nl.IFLA_LINK, lower)])

    def lower_is_local(self, index: int, netns: Netns) -> bool:
        """Whether link `index`'s lower link (IFLA_LINK) is in this namespace: with
        IFLA_LINK_NETNSID it is an index in another one (a veth's peer in a pod, a VLAN whose
        lower was taken before), which may equal one of ours by chance. False if it is gone."""
        from . import netlink as nl

        with _rtnl(netns) as sock:
            try:
                replies = sock.request(nl.RTM_GETLINK, 0, nl.ifinfomsg(index))
            except nl.NetlinkError as exc:
                if exc.errno == errno.ENODEV:
                    return False
                raise
        return nl.IFLA_LINK_NETNSID not in nl.parse_attrs(replies[0].payload, nl.IFINFOMSG_LEN)

    def survey_link(self, index: int, netns: Netns) -> dict[str, Any]:
        """What the namespace loses when the link leaves it: bondctl.hostlinks.survey."""
        from .links import Links

        return Links(self, netns).survey(index)

    def restore_link(self, index: int, found: Mapping[str, Any], netns: Netns) -> list[str]:
        """Put back what survey_link recorded: bondctl.hostlinks.restore; returns failures."""
        from .links import Links

        return Links(self, netns).restore(index, found)


class Backend(LinkContract, ABC):
    """Subclass, fill in the class attributes and the abstract methods, then register the
    class from a `bondctl_register_backends` hook (see bondctl.hookspecs)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    priority: ClassVar[int] = 0  # the best available backend is the one with the highest
    options: ClassVar[frozenset[str]]  # bond options (catalogue names) it can set
    slave_options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Whether this backend can work on this host, and why not."""

    @abstractmethod
    def execute(self, steps: Sequence[Step], netns: Netns) -> None:
        """Carry out the steps in order; stop at the first failure with a StepError."""

    @abstractmethod
    def render(self, steps: Sequence[Step], netns: Netns) -> list[str]:
        """The exact commands, writes or messages `execute` would use, for --dry-run."""

    @abstractmethod
    def list_bonds(self, netns: Netns) -> list[BondState]:
        """Every bond in the namespace, read back from the kernel."""

    @abstractmethod
    def links(self, netns: Netns) -> list[Link]:
        """Every link in the namespace."""

    def read(self, name: str, netns: Netns) -> BondState:
        """One bond; NotFoundError when there is no bond of that name."""
        for bond in self.list_bonds(netns):
            if bond.name == name:
                return bond
        raise NotFoundError(f"no bond named {name} in {netns.label}")

    def link(self, name: str, netns: Netns) -> Link | None:
        return next((link for link in self.links(netns) if link.name == name), None)


def link_from_message(msg: LinkMessage, names: Mapping[int, str]) -> Link:
    """The model's Link of a decoded RTM_NEWLINK: the one translation from the wire, for the
    contract and the netlink backend. `names` maps ifindexes to names, for the master's."""
    stats = msg.stats
    return Link(
        name=msg.name,
        index=msg.index,
        mtu=msg.mtu or 0,
        mac=msg.address or "",
        up=msg.up,
        operstate=msg.operstate,
        kind=msg.kind or "",
        master=ifname_of(msg.master, names) if msg.master else None,
        perm_mac=msg.perm_address,
        rx_bytes=stats.rx_bytes if stats else 0,
        tx_bytes=stats.tx_bytes if stats else 0,
        master_index=msg.master or None,
        lower=msg.link,
        loopback=msg.loopback,
        vlan_id=_vlan_id(msg),
    )


def _vlan_id(msg: LinkMessage) -> int | None:
    if msg.kind != "vlan":
        return None
    from .netlink import IFLA_VLAN_ID, decode

    raw = msg.info_data.get(IFLA_VLAN_ID)
    return None if raw is None else int(decode("u16", raw))  # type: ignore[arg-type]


def ifname_of(index: int, names: Mapping[int, str]) -> str:
    return names.get(index, f"if{index}")  # what ip prints for an index it cannot name



def _rtnl(netns: Netns) -> Rtnl | _Kept:
    from .netlink import Rtnl

    if _kept is None:
        return Rtnl.open(netns.path)
    # Kept by the namespace's identity, not by its path: a pinned pod is /proc/PID/fd/N, and
    # N is another pod's once that one is unpinned. The socket is opened through the very
    # descriptor that was identified, and holds its namespace, whose inode then stays its own.
    try:
        fd = os.open(netns.path or "/proc/thread-self/ns/net",
                     os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a planted FIFO must not hang
    except OSError:
        return Rtnl.open(netns.path)  # which says why, as without keeping
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        sock = _kept.get(key)
        if sock is None:
            try:
                sock = _kept[key] = Rtnl.open(f"/proc/self/fd/{fd}" if netns.path else None)
            except OSError as exc:  # named by the path the caller knows, not our descriptor
                raise OSError(exc.errno, exc.strerror, netns.path) from None
    finally:
        os.close(fd)
    return _Kept(sock)


# Namespace identity (st_dev, st_ino) -> its socket, while keep_sockets() is in force.
_kept: dict[tuple[int, int], Rtnl] | None = None


class keep_sockets:  # lower case: used like a function, `with keep_sockets():`
    """Within: the link contract keeps one rtnetlink socket per namespace instead of opening
    one per call. Opening enters the namespace and comes back (in UML ~1.3 ms; ten times in
    an ADD). For one command's span only: a kept socket holds its namespace alive, and a
    long-lived process must not keep a deleted pod's namespace."""

    def __enter__(self) -> None:
        global _kept
        self._outer = _kept is not None
        if not self._outer:
            _kept = {}

    def __exit__(self, *exc_info: object) -> None:
        global _kept
        if self._outer or _kept is None:
            return
        socks, _kept = list(_kept.values()), None
        for sock in socks:
            sock.close()


class _Kept:
    """A kept socket lent to one `with`: leaving it does not close it."""

    def __init__(self, sock: Rtnl) -> None:
        self._sock = sock

    def __enter__(self) -> Rtnl:
        return self._sock

    def __exit__(self, *exc_info: object) -> None:
        pass
