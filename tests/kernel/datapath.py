"""Datapath helpers for the failover tests: a switched topology around a bond, in-process
traffic (ICMP echo, a sequenced UDP stream) and the loss window computed from what arrived.

Sockets are made inside a namespace with `bondctl.netlink.enter_netns` and stay there after the
block; senders and receivers are threads of the test process. Inside User-Mode Linux a process
spawn costs ~90 ms and a Python start-up seconds, so no traffic tool runs as a subprocess, and
the cut itself is one in-process netlink request, timestamped on the same clock as the packets.
No tests here (pytest collects none).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from bondctl.names import check_ifname
from bondctl.netlink import Rtnl, enter_netns

T = TypeVar("T")

UDP_PORT = 40000
# LACP port state bits (IEEE 802.1AX): a port carries traffic when all four are set.
LACP_AGGREGATION, LACP_SYNC, LACP_COLLECTING, LACP_DISTRIBUTING = 0x04, 0x08, 0x10, 0x20
LACP_IN_USE = LACP_AGGREGATION | LACP_SYNC | LACP_COLLECTING | LACP_DISTRIBUTING


# -- waiting ---------------------------------------------------------------------------------
def wait_for(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and the last value.
    Bounded polling instead of sleeps: UML timers are coarse and its speed varies."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what} "
                                 f"(last: {value!r})")
        time.sleep(interval)


# -- reading the kernel back -----------------------------------------------------------------
def link_json(ns: Any, dev: str) -> dict[str, Any]:
    link: dict[str, Any] | None = ns.link(dev)
    assert link is not None, f"{dev} is not in {ns.name}"
    return link


def bond_data(ns: Any, bond: str) -> dict[str, Any]:
    """linkinfo.info_data of a bond, from `ip -j -d link show`."""
    data: dict[str, Any] = link_json(ns, bond)["linkinfo"]["info_data"]
    return data


def slave_data(ns: Any, slave: str) -> dict[str, Any]:
    """linkinfo.info_slave_data of a bond slave, from `ip -j -d link show`."""
    data: dict[str, Any] = link_json(ns, slave)["linkinfo"]["info_slave_data"]
    return data


def active_slave(ns: Any, bond: str) -> str | None:
    return bond_data(ns, bond).get("active_slave")


def tx_packets(ns: Any, dev: str) -> int:
    stats = ns.ip_json("-s", "link", "show", "dev", dev)[0]["stats64"]
    return int(stats["tx"]["packets"])


def fdb_ports(switch: Any, bridge: str, mac: str) -> list[str]:
    """Bridge ports `bridge` has learnt `mac` on (dynamic entries only)."""
    check_ifname(bridge)
    proc = switch.run("bridge", "-j", "fdb", "show", "br", bridge)
    return [e["ifname"] for e in json.loads(proc.stdout or "[]")
            if e.get("mac") == mac.lower() and "permanent" not in e.get("state", "")
            and not e.get("vlan")]


def lacp_in_use(ns: Any, slaves: list[str]) -> bool:
    """Every slave aggregated, in sync, collecting and distributing, on both ends' view."""
    for slave in slaves:
        data = slave_data(ns, slave)
        for key in ("ad_actor_oper_port_state", "ad_partner_oper_port_state"):
            if int(data.get(key, 0)) & LACP_IN_USE != LACP_IN_USE:
                return False
    return True


class Cut(NamedTuple):
    """When a link changed state: just before the netlink request and once the kernel acked
    it, on the monotonic clock the traffic threads stamp datagrams with. The change happened
    somewhere in between."""

    start_ns: int
    end_ns: int

    @property
    def took_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def set_link_up(ns: Any, dev: str, up: bool) -> Cut:
    """Set a link's admin state with one in-process netlink request, timestamped."""
    check_ifname(dev)
    with Rtnl.open(str(ns.path)) as rtnl:
        start = time.monotonic_ns()
        rtnl.set_link(dev, up=up)
        return Cut(start, time.monotonic_ns())


# -- topology --------------------------------------------------------------------------------
@dataclass
class Switched:
    """A bond in `pod`, its slaves' veth peers on bridge `bridge` in `switch`, and a `peer`
    host behind the same bridge. Addresses are prefix-less; both sit in one /24."""

    pod: Any
    switch: Any
    peer: Any
    bond: str
    slaves: list[str]
    ports: list[str]  # ports[i] is the switch-side veth peer of slaves[i]
    bond_addr: str
    peer_addr: str
    bridge: str = "br0"

    def port_of(self, slave: str) -> str:
        return self.ports[self.slaves.index(slave)]


def bridge_switch(switch: Any, ports: list[str], peer: Any, peer_addr: str, *,
                  bridge: str = "br0", uplink: str = "up0", peer_dev: str = "eth0") -> None:
    """A Linux bridge in `switch` over `ports`, plus a veth from it to `peer`, which gets
    `peer_addr`/24. STP stays off, so ports forward as soon as they are up."""
    for name in (bridge, uplink, peer_dev, *ports):
        check_ifname(name)
    switch.batch([
        f"link add {bridge} type bridge stp_state 0",
        f"link add {uplink} type veth peer name {peer_dev} netns {peer.name}",
        *(f"link set {port} master {bridge}" for port in (*ports, uplink)),
        *(f"link set {port} up" for port in (*ports, uplink)),
        f"link set {bridge} up",
    ])
    peer.batch([f"addr add {peer_addr}/24 dev {peer_dev}", f"link set {peer_dev} up"])


def add_address(ns: Any, dev: str, addr: str) -> None:
    check_ifname(dev)
    ns.ip("addr", "add", f"{addr}/24", "dev", dev)


# -- traffic ---------------------------------------------------------------------------------
def netns_socket(ns: Any, kind: int, proto: int = 0) -> socket.socket:
    """An IPv4 socket living in `ns` (it stays there once made)."""
    with enter_netns(str(ns.path)):
        return socket.socket(socket.AF_INET, kind, proto)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(ns: Any, dst: str, timeout: float = 1.0) -> float | None:
    """One ICMP echo from `ns` to `dst`: the round trip in ms, or None without a reply.
    A reply proves both directions of the path, through whatever the switch had to relearn."""
    ident = (os.getpid() ^ threading.get_ident()) & 0xFFFF
    seq = int(time.monotonic_ns() // 1000) & 0xFFFF
    payload = b"bondctl-failover"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
    with netns_socket(ns, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        start = time.monotonic()
        sock.sendto(packet, (dst, 0))
        deadline = start + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (src, _) = sock.recvfrom(2048)
            except TimeoutError:
                return None
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, r_ident, r_seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if src == dst and kind == 0 and (r_ident, r_seq) == (ident, seq):
                return (time.monotonic() - start) * 1000
    return None


def wait_ping(ns: Any, dst: str, timeout: float = 10.0) -> float:
    """Ping until a reply comes (the first ones may wait on ARP or on LACP); its RTT in ms."""
    def probe() -> tuple[float] | None:  # a 1-tuple: an RTT of 0.0 still counts as a reply
        rtt = ping(ns, dst, timeout=0.5)
        return None if rtt is None else (rtt,)

    reply = wait_for(probe, timeout, f"an echo reply from {dst}", interval=0)
    assert reply is not None  # wait_for returns only a truthy value
    return reply[0]


_DATAGRAM = struct.Struct("!IQ")  # sequence number, send time (monotonic ns)


class Arrival(NamedTuple):
    seq: int
    sent_ns: int
    recv_ns: int


@dataclass
class UdpStream:
    """A paced UDP stream: datagram n carries n and its send time; the receiver keeps each
    arrival. Paced on a deadline, so a late wake-up (UML) shortens the next sleep instead of
    drifting; it never bursts to catch up."""

    src: Any
    dst: Any
    dst_addr: str
    interval: float = 0.005
    port: int = UDP_PORT
    # By seq: monotonic ns just before and just after sendto. The datagram left in between;
    # under load the thread can stall on either side, so both are kept.
    sent: list[tuple[int, int]] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _error: list[BaseException] = field(default_factory=list)
    _closed: bool = False

    def __enter__(self) -> UdpStream:
        self._rx = netns_socket(self.dst, socket.SOCK_DGRAM)
        self._rx.bind((self.dst_addr, self.port))
        self._rx.settimeout(0.05)
        self._tx = netns_socket(self.src, socket.SOCK_DGRAM)
        for target in (self._receive, self._send):
            thread = threading.Thread(target=self._guard(target), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._rx.close()
        self._tx.close()
        if self._error:
            raise self._error[0]

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # surfaced by stop(), in the test's thread
                self._error.append(exc)
                self._stop.set()
        return run

    def _send(self) -> None:
        step = int(self.interval * 1e9)
        due = time.monotonic_ns()
        seq = 0
        while not self._stop.is_set():
            now = time.monotonic_ns()
            if due > now:
                time.sleep((due - now) / 1e9)
                now = time.monotonic_ns()
            # e.g. ENOBUFS while the bond has no usable slave: the datagram counts as lost.
            with contextlib.suppress(OSError):
                self._tx.sendto(_DATAGRAM.pack(seq, now), (self.dst_addr, self.port))
            self.sent.append((now, time.monotonic_ns()))
            seq += 1
            due = max(due + step, now)

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._rx.recv(64)
            except TimeoutError:
                continue
            seq, sent_ns = _DATAGRAM.unpack(data[:_DATAGRAM.size])
            self.arrivals.append(Arrival(seq, sent_ns, time.monotonic_ns()))

    def received_after(self, cut: Cut) -> int:
        """Datagrams that arrived having been sent after `cut` was made."""
        return sum(1 for a in list(self.arrivals) if a.sent_ns > cut.end_ns)


class LossWindow(NamedTuple):
    """The outage a stream saw around one cut.

    `lost` counts the datagrams missing from the largest gap in arrived sequence numbers and
    `window_ms` is lost * nominal interval (the nominal figure). The outage itself lies
    between two bounds from the sender's clock, which stay right when the sender runs late:
    `outage_min_ms` spans the first to the last lost datagram (the path was dead all that
    time) and `outage_max_ms` runs from the cut's request (or the last datagram that still got
    through, if later) to the first datagram that arrived after the gap. Each datagram left
    between the stamps taken just before and just after its sendto, and each bound takes the
    conservative one. The sender can stall (inside UML the whole guest does, under host load):
    a stall around the cut moves the bounds apart, and `max_send_gap_ms`, the longest pause
    between two sends there, says by how much. A stall can shorten `lost`, never lengthen it."""

    interval_ms: float
    sent: int
    received: int
    lost_total: int
    lost: int
    window_ms: float
    outage_min_ms: float
    outage_max_ms: float
    max_send_gap_ms: float
    gap_start_after_cut_ms: float  # first lost datagram's (latest) send time minus the cut's
    cut_took_ms: float  # how long the netlink request that cut the path took
    mean_interval_ms: float  # the pacing the sender really achieved

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v
                for k, v in self._asdict().items()}


def loss_window(stream: UdpStream, cut: Cut) -> LossWindow:
    """The loss window of `stream` around `cut`."""
    pre = [p for p, _ in stream.sent]
    post = [p for _, p in stream.sent]
    seqs = sorted(a.seq for a in stream.arrivals)
    assert len(set(seqs)) == len(seqs), "a datagram arrived twice"
    # The tail may still be in flight when the sender stopped: count only up to the last
    # arrival, so in-flight datagrams are not taken for lost ones.
    last = seqs[-1]
    assert pre[last] > cut.end_ns, "no datagram sent after the cut arrived"
    lost, first_lost, resumed = 0, 0, 0
    prev = -1
    for seq in seqs:
        if seq - prev - 1 > lost:
            lost, first_lost, resumed = seq - prev - 1, prev + 1, seq
        prev = seq
    if not lost:  # nothing lost: the first datagram sent once the cut was made arrived
        resumed = next(seq for seq in seqs if pre[seq] > cut.end_ns)
        first_lost = resumed
    began = max(cut.start_ns, pre[first_lost - 1]) if lost and first_lost else cut.start_ns
    around = [b - a for a, b in itertools.pairwise(pre)
              if cut.start_ns - 100_000_000 <= b and a <= pre[resumed]]
    interval_ms = stream.interval * 1000
    return LossWindow(
        interval_ms=interval_ms,
        sent=last + 1,
        received=len(seqs),
        lost_total=last + 1 - len(seqs),
        lost=lost,
        window_ms=lost * interval_ms,
        outage_min_ms=max(0, pre[resumed - 1] - post[first_lost]) / 1e6 if lost else 0.0,
        outage_max_ms=(post[resumed] - began) / 1e6,
        max_send_gap_ms=max(around, default=0) / 1e6,
        gap_start_after_cut_ms=(post[first_lost] - cut.start_ns) / 1e6 if lost else 0.0,
        cut_took_ms=cut.took_ms,
        mean_interval_ms=(pre[last] - pre[0]) / 1e6 / last if last else 0.0,
    )


@contextmanager
def streaming(src: Any, dst: Any, dst_addr: str, interval: float = 0.005,
              warmup: int = 40) -> Iterator[UdpStream]:
    """A running UdpStream that has already delivered `warmup` datagrams (a steady state)."""
    with UdpStream(src, dst, dst_addr, interval) as stream:
        wait_for(lambda: len(stream.arrivals) >= warmup, 10.0,
                 f"{warmup} datagrams to {dst_addr} before the cut")
        yield stream


def record(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    """Print a measurement (seen with -s) and keep it as JSON in the test's tmp dir."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\n[{name}] {json.dumps(data, sort_keys=True)}")
    return path
