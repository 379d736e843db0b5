"""Watch every pod's bond on the node from its link events, count failovers, log transitions.

One NETLINK_ROUTE socket per namespace joins RTNLGRP_LINK; one poll() waits on all of them.
The kernel sends a full RTM_NEWLINK for the bond on each failover (NETDEV_BONDING_FAILOVER)
and for a slave on each change of its bonding state (NETDEV_CHANGELOWERSTATE), so every
message is applied in order to a copy of the namespace's links and the bond is decoded again
(the netlink backend's decoder): a failover is counted from the messages themselves, never by
polling, and one that flips back within a millisecond still counts. When notifications were
lost (ENOBUFS) the namespace is dumped again and compared.

The state records are read again every `rescan` seconds: attachments come and go with ADD and
DEL. An event socket holds its namespace alive, so a watch is dropped as soon as the record's
path no longer leads to the namespace it names (its pod is gone): the monitor never keeps a
dead pod's links from going home.

Each event is one JSON object (see EVENTS) handed to `emit`: `bondctl monitor` and the agent
print it as one line.
"""

from __future__ import annotations

import errno
import json
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from bondctl import netlink as rtnl
from bondctl.health import NO_PARTNER
from bondctl.model import BondState
from bondctl.options import aggregates

from .inventory import (
    Attachment,
    PodBond,
    host_bonds,
    judge,
    read_bond,
    read_records,
    slave_speeds,
)

EVENTS = ("failover", "slave_down", "slave_up", "partner_changed", "degraded", "down", "healthy",
          "stale", "gone", "attached", "detached")
RESCAN = 2.0  # seconds between readings of the state records
Emit = Callable[[dict[str, Any]], None]


def print_event(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, sort_keys=False) + "\n")
    sys.stdout.flush()


def changes(before: BondState | None, after: BondState | None) -> list[dict[str, Any]]:
    """What happened between two readings of one bond: failovers and slaves going down or up.

    A failover is traffic moving from one slave to another: the active slave changing from
    one to a different one, or in 802.3ad the active aggregator changing (the kernel has no
    active slave there). Losing the last slave is the bond going down, not a failover."""
    if before is None or after is None:
        return []
    found: list[dict[str, Any]] = []
    old, new = before.active_slave, after.active_slave
    if old and new and old != new:
        found.append({"event": "failover", "from": old, "to": new})
    if aggregates(after.mode) and aggregates(before.mode):
        was, now = aggregator(before), aggregator(after)
        if was and now and was != now:
            found.append({"event": "failover", "from_aggregator": was, "to_aggregator": now})
    for slave in after.slaves:
        prev = before.slave(slave.name)
        if prev is None or (prev.mii_status == "up") == (slave.mii_status == "up"):
            continue
        kind = "slave_up" if slave.mii_status == "up" else "slave_down"
        found.append({"event": kind, "slave": slave.name, "mii_status": slave.mii_status,
                      "link_failure_count": slave.link_failure_count})
    return found


def aggregator(state: BondState) -> int | None:
    value = (state.ad_info or {}).get("aggregator")
    return value if isinstance(value, int) and value > 0 else None


def partner(state: BondState | None) -> str | None:
    """The LACP partner's MAC; None without one (the kernel reports all zeros)."""
    value = (state.ad_info or {}).get("partner_mac") if state else None
    return str(value) if value and value != NO_PARTNER else None


HEALTH_EVENT = {"ok": "healthy", "degraded": "degraded", "down": "down", "stale": "stale",
                "gone": "gone"}


class Watch:
    """One attachment: its namespace's links as the messages left them, the bond decoded from
    them, and what the monitor counted."""

    def __init__(self, att: Attachment, events: rtnl.Rtnl,
                 links: Iterable[rtnl.LinkMessage]) -> None:
        self.att = att
        self.events = events
        self.links = {link.index: link for link in links}
        self.state = read_bond(att, list(self.links.values()))
        self.health, self.reason = judge(att, self.state)
        self.failovers = 0
        self.partner_changes = 0
        self.partner = partner(self.state)
        self.speeds = slave_speeds(events.fileno(), self.state)
        self._speed_key = _speed_key(self.state)

    def concerns(self, link: rtnl.LinkMessage) -> bool:
        """Whether a message can change the bond: the bond itself, or a link that is or was
        one of its slaves."""
        if self.state is None:
            return link.kind == "bond"
        if link.index == self.state.index or (link.master and link.master == self.state.index):
            return True
        return link.name in self.state.slave_names

    def apply(self, kind: str, link: rtnl.LinkMessage) -> list[dict[str, Any]]:
        """Take one link message; the events it brings (none for links of no concern)."""
        concerns = self.concerns(link)
        if kind == "del":
            self.links.pop(link.index, None)
        else:
            self.links[link.index] = link
        return self.reread() if concerns else []

    def reread(self) -> list[dict[str, Any]]:
        before = self.state
        self.state = read_bond(self.att, list(self.links.values()))
        found = changes(before, self.state)
        self.failovers += sum(1 for e in found if e["event"] == "failover")
        now = partner(self.state)
        # Losing or changing the partner is churn; a partner after none is LACP converging,
        # which is what should happen.
        if self.partner is not None and now != self.partner and self.state is not None:
            self.partner_changes += 1
            found.append({"event": "partner_changed", "from": self.partner, "to": now})
        self.partner = now
        verdict, self.reason = judge(self.att, self.state)
        if verdict != self.health:
            found.append({"event": HEALTH_EVENT[verdict], "from": self.health,
                          "reason": self.reason})
            self.health = verdict
        key = _speed_key(self.state)
        if key != self._speed_key:
            self._speed_key = key
            self.speeds = slave_speeds(self.events.fileno(), self.state)
        return found

    def resync(self, links: Iterable[rtnl.LinkMessage]) -> list[dict[str, Any]]:
        """After lost notifications: the namespace as a fresh dump shows it."""
        self.links = {link.index: link for link in links}
        return self.reread()

    def row(self) -> PodBond:
        return PodBond(self.att, self.health, self.reason, self.state, dict(self.speeds),
                       self.failovers, self.partner_changes)

    def close(self) -> None:
        self.events.close()


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns


def _speed_key(state: BondState | None) -> tuple[tuple[str, str], ...]:
    return tuple((s.name, s.operstate) for s in state.slaves) if state else ()


class Monitor:
    """Every attachment of the node, watched. `poll()` waits for and applies link events;
    `sync()` follows the records; `rows()` is what the metrics and `pods --watch` show.
    Thread-safe for one poller and any number of readers of rows()."""

    def __init__(self, state_dir: str, emit: Emit | None = print_event, *,
                 host: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.emit = emit
        self.host = host
        self.clock = clock
        self.watches: dict[str, Watch] = {}
        self.unwatched: dict[str, PodBond] = {}  # gone or untrusted: shown, not watched
        self.resyncs = 0
        self._stamp: tuple[int, int, int] | None = None
        self._records: tuple[list[Attachment], list[PodBond]] = ([], [])
        self._by_fd: dict[int, Watch] = {}
        self._poller = select.poll()
        self._lock = threading.Lock()

    # -- following the records ----------------------------------------------------------------
    def sync(self) -> None:
        from bondctl.cni.pods import ident

        # Records are only ever renamed into place or unlinked: both change the directory's
        # mtime, so an unchanged directory needs no reading (100 records cost ~50 ms of CPU
        # in UML every time).
        stamp = _stamp(self.state_dir)
        if stamp is None or stamp != self._stamp:
            self._records = read_records(self.state_dir)
            self._stamp = stamp
        found, bad = self._records
        wanted = {att.ident: att for att in found}
        if self.host:
            wanted.update((att.ident, att) for att in host_bonds())
        for key, watch in list(self.watches.items()):
            att = wanted.get(key)
            if att is None:
                self._drop(key, "detached", "the record is gone (DEL)" if not watch.att.host
                           else "the host bond is gone")
            elif att != watch.att:
                self._drop(key, "detached", "the record changed")
            elif not att.host and ident(att.netns or "") != list(att.netns_id or ()):
                self._drop(key, "gone", f"namespace {att.netns} no longer exists")
        unwatched = {row.attachment.ident: row for row in bad}
        for key, att in wanted.items():
            if key not in self.watches:
                row = self._add(att)
                if row is not None:
                    unwatched[key] = row
        with self._lock:
            self.unwatched = unwatched

    def _add(self, att: Attachment) -> PodBond | None:
        """Watch `att`; the row to show instead when its namespace is gone or unreadable."""
        from bondctl.cni.pods import pin_recorded, unpin

        netns = None
        if not att.host:
            netns = pin_recorded(att.netns or "", list(att.netns_id or ()))
            if netns is None:
                return PodBond(att, "gone", f"namespace {att.netns} no longer exists (or is "
                               "another one now): the record outlived its pod")
        path = netns.path if netns else None
        try:
            events = rtnl.Rtnl.open(path, groups=[rtnl.RTNLGRP_LINK])
            try:
                with rtnl.Rtnl.open(path) as sock:
                    links = sock.list_links()
                watch = Watch(att, events, links)
            except BaseException:
                events.close()
                raise
        except OSError as exc:
            return PodBond(att, "stale", f"cannot watch the namespace: {exc.strerror or exc}")
        finally:
            unpin(netns)
        with self._lock:
            self.watches[att.ident] = watch
            self._by_fd[events.fileno()] = watch
        self._poller.register(events.fileno(), select.POLLIN)
        self._send(watch, {"event": "attached", "health": watch.health,
                           "reason": watch.reason})
        return None

    def _drop(self, key: str, event: str, reason: str) -> None:
        with self._lock:
            watch = self.watches.pop(key)
            fd = watch.events.fileno()
            self._by_fd.pop(fd, None)
        self._poller.unregister(fd)
        watch.close()
        self._send(watch, {"event": event, "reason": reason})

    # -- events ----------------------------------------------------------------------------
    def poll(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for link events and apply them; how many messages."""
        done = 0
        for fd, _ in self._poller.poll(max(0, int(timeout * 1000))):
            watch = self._by_fd.get(fd)
            if watch is not None:
                done += self._drain(watch)
        return done

    def _drain(self, watch: Watch) -> int:
        found: list[dict[str, Any]] = []
        done = 0
        try:
            with self._lock:
                for kind, link in watch.events.link_events(timeout=0):
                    done += 1
                    found += watch.apply(kind, link)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            found += self._resync(watch)
        for event in found:
            self._send(watch, event)
        return done

    def _resync(self, watch: Watch) -> list[dict[str, Any]]:
        from bondctl.cni.pods import pin_recorded, unpin

        self.resyncs += 1
        netns = None if watch.att.host else pin_recorded(watch.att.netns or "",
                                                         list(watch.att.netns_id or ()))
        if netns is None and not watch.att.host:
            return []  # the pod is gone: the next sync() drops the watch
        try:
            with rtnl.Rtnl.open(netns.path if netns else None) as sock:
                links = sock.list_links()
        finally:
            unpin(netns)
        with self._lock:
            return watch.resync(links)

    def _send(self, watch: Watch, event: dict[str, Any]) -> None:
        if self.emit is None:
            return
        stamp = self.clock()
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
               + f".{int(stamp * 1000) % 1000:03d}Z", "event": event["event"]}
        out.update({k: v for k, v in event.items() if k != "event"})
        out.update(watch.att.labels())
        out["host"] = watch.att.host
        out["failovers"] = watch.failovers
        self.emit(out)

    # -- reading -----------------------------------------------------------------------------
    def rows(self) -> list[PodBond]:
        with self._lock:
            return [w.row() for w in self.watches.values()] + list(self.unwatched.values())

    def run(self, stop: threading.Event, *, rescan: float = RESCAN) -> None:
        """Until `stop` is set: follow the records every `rescan` seconds, apply events as
        they come."""
        next_sync = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_sync:
                self.sync()
                next_sync = now + rescan
            self.poll(min(0.5, max(0.0, next_sync - time.monotonic())))

    def close(self) -> None:
        for key in list(self.watches):
            with self._lock:
                watch = self.watches.pop(key)
                self._by_fd.pop(watch.events.fileno(), None)
            self._poller.unregister(watch.events.fileno())
            watch.close()


def run(address: str | None, state_dir: str, stop: threading.Event, *,
        emit: Emit | None = print_event, host: bool = True) -> None:
    """The monitor until `stop` is set, serving Prometheus text on `address` ("HOST:PORT";
    None: no metrics). The entry point `bondctl monitor` and the node agent call."""
    monitor = Monitor(state_dir, emit, host=host)
    server = None
    try:
        if address is not None:
            from .metrics import serve

            server = serve(address, monitor)
        monitor.run(stop)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        monitor.close()
