"""`bondctl watch`: a live view of one bond, redrawn on kernel link events or every interval.

The bond is read back through the backend each time something happens (a netlink
RTNLGRP_LINK notification in the bond's namespace, or the interval passing); comparing with
the previous reading gives the event log (slaves going down or up, failovers, slaves joining
or leaving), and the links' byte counters give per-slave rates.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bondctl.cli.session import Session, console
from bondctl.errors import NotFoundError
from bondctl.model import BondState, Link
from bondctl.names import check_ifname
from bondctl.netns import Netns

if TYPE_CHECKING:
    from rich.console import Group
    from rich.text import Text

    from bondctl.netlink import Rtnl

BARS = "▁▂▃▄▅▆▇█"
HISTORY = 12  # samples per sparkline: the table fits 80 columns
LOG_LINES = 8


def sparkline(values: Iterable[float], width: int = HISTORY) -> str:
    """Bars scaled to the largest value shown; blank where there is no sample yet."""
    samples = list(values)[-width:]
    top = max(samples, default=0.0)
    bars = [BARS[min(len(BARS) - 1, int(v / top * len(BARS)))] if top > 0 else BARS[0]
            for v in samples]
    return " " * (width - len(samples)) + "".join(bars)


def human_rate(bytes_per_second: float) -> str:
    value = bytes_per_second
    for unit in ("B/s", "KB/s", "MB/s", "GB/s"):
        if value < 1000 or unit == "GB/s":
            return f"{value:.0f} {unit}" if unit == "B/s" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB/s"  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class Event:
    when: float
    level: str  # "info", "warning" or "error"
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"time": self.when, "level": self.level, "text": self.text}


def compare(before: BondState | None, after: BondState | None, name: str) -> list[Event]:
    """What changed between two readings of the bond, as events a person reads."""
    now = time.time()
    if before is None and after is None:
        return []
    if after is None:
        return [Event(now, "error", f"{name} disappeared")]
    if before is None:
        return [Event(now, "info", f"{name} present ({after.mode}, "
                                   f"{len(after.slaves)} slaves)")]
    events: list[Event] = []
    if before.operstate != after.operstate:
        level = "info" if after.operstate == "UP" else "error"
        events.append(Event(now, level, f"{name} {before.operstate} -> {after.operstate}"))
    old, new = set(before.slave_names), set(after.slave_names)
    events += [Event(now, "info", f"{s} joined") for s in sorted(new - old)]
    events += [Event(now, "warning", f"{s} left") for s in sorted(old - new)]
    for slave in after.slaves:
        prev = before.slave(slave.name)
        if prev is None:
            continue
        if prev.mii_status != slave.mii_status:
            level = "info" if slave.mii_status == "up" else "error"
            events.append(Event(now, level, f"{slave.name} link {slave.mii_status}"))
        elif slave.link_failure_count > prev.link_failure_count:
            events.append(Event(now, "warning", f"{slave.name} link flapped "
                                                f"({slave.link_failure_count} failures)"))
    if before.active_slave != after.active_slave:
        events.append(Event(now, "warning", f"failover: active slave "
                                            f"{before.active_slave or 'none'} -> "
                                            f"{after.active_slave or 'none'}"))
    return events


@dataclass
class Tracker:
    """Readings over time: the last state, byte counters, rate history, the event log."""

    name: str
    state: BondState | None = None
    counters: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    rx: dict[str, deque[float]] = field(default_factory=dict)
    tx: dict[str, deque[float]] = field(default_factory=dict)
    log: deque[Event] = field(default_factory=lambda: deque(maxlen=LOG_LINES))

    def update(self, state: BondState | None, links: Mapping[str, Link],
               now: float) -> list[Event]:
        events = compare(self.state, state, self.name)
        self.state = state
        self.log.extend(events)
        for slave in state.slave_names if state else ():
            link = links.get(slave)
            if link is None:
                continue
            last = self.counters.get(slave)
            self.counters[slave] = (now, link.rx_bytes, link.tx_bytes)
            if last is None or now <= last[0]:
                continue
            span = now - last[0]
            self.rx.setdefault(slave, deque(maxlen=HISTORY)).append(
                max(0, link.rx_bytes - last[1]) / span)
            self.tx.setdefault(slave, deque(maxlen=HISTORY)).append(
                max(0, link.tx_bytes - last[2]) / span)
        return events

    def rates(self, slave: str) -> tuple[Sequence[float], Sequence[float]]:
        return list(self.rx.get(slave, ())), list(self.tx.get(slave, ()))

    def frame_json(self) -> dict[str, Any]:
        from bondctl.cli.views import bond_view

        view = bond_view(self.state) if self.state else None
        return {
            "time": time.time(),
            "bond": view.summary_json() if view else None,
            "slaves": {s.name: {"state": s.state, "mii_status": s.mii_status,
                                "link_failure_count": s.link_failure_count,
                                "rx_rate": (self.rates(s.name)[0] or [0])[-1],
                                "tx_rate": (self.rates(s.name)[1] or [0])[-1]}
                       for s in (self.state.slaves if self.state else ())},
        }


def screen(tracker: Tracker, source: str, *, clock: float | None = None) -> Group:
    """The watch screen: the bond, its slaves with traffic, and the event log."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from bondctl.cli.render import BAD, DIM, OK, WARN, header, problems
    from bondctl.cli.views import bond_view

    stamp = time.strftime("%H:%M:%S", time.localtime(clock if clock is not None
                                                     else time.time()))
    parts: list[Any] = [Text(f"watch {tracker.name} · {stamp} · {source} · Ctrl-C stops",
                             style=DIM)]
    if tracker.state is None:
        parts.append(Text(f"{tracker.name} does not exist (any more)", style=BAD))
    else:
        view = bond_view(tracker.state)
        parts.append(header(view))
        if view.problems:
            parts.append(problems(view.problems))
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("SLAVE", "STATE", "MII", "FAILS", "RX", "", "TX", ""):
            table.add_column(column, no_wrap=True)
        for seen in view.slaves:
            slave = seen.slave
            rx, tx = tracker.rates(slave.name)
            table.add_row(
                Text(slave.name, style="bold" if slave.name == view.bond.active_slave else ""),
                Text(slave.state, style=OK if slave.state == "active" else ""),
                Text(slave.mii_status, style=OK if seen.healthy else BAD),
                Text(str(slave.link_failure_count),
                     style=WARN if slave.link_failure_count else ""),
                human_rate(rx[-1] if rx else 0), Text(sparkline(rx), style="cyan"),
                human_rate(tx[-1] if tx else 0), Text(sparkline(tx), style="magenta"),
            )
        parts += [Text(), table]
    parts += [Text(), Text("Events", style="bold underline")]
    if not tracker.log:
        parts.append(Text("(none yet)", style=DIM))
    parts += [event_line(event) for event in tracker.log]
    return Group(*parts)


def event_line(event: Event) -> Text:
    from rich.text import Text

    from bondctl.cli.render import BAD, DIM, WARN

    styles = {"info": "", "warning": WARN, "error": BAD}
    line = Text(time.strftime("%H:%M:%S ", time.localtime(event.when)), style=DIM)
    line.append(event.text, style=styles.get(event.level, ""))
    return line


def open_events(netns: Netns) -> Rtnl | None:
    """A socket on the namespace's link notifications; None means poll instead."""
    from bondctl.netlink import RTNLGRP_LINK, Rtnl

    try:
        return Rtnl.open(netns.path, groups=[RTNLGRP_LINK])
    except OSError:
        return None


def wait(sock: Rtnl | None, seconds: float) -> None:
    """Sleep up to `seconds`, waking early (after a short settle) on a link event."""
    if sock is None:
        time.sleep(seconds)
        return
    deadline = time.monotonic() + seconds
    try:
        for _ in sock.link_events(timeout=max(0.01, seconds)):
            break
        # A failover comes as a burst (carrier, slave state, bond): take it as one change.
        settle = min(0.15, max(0.0, deadline - time.monotonic()))
        end = time.monotonic() + settle
        while time.monotonic() < end:
            for _ in sock.link_events(timeout=max(0.01, end - time.monotonic())):
                break
    except OSError:
        time.sleep(max(0.0, deadline - time.monotonic()))  # ENOBUFS: we re-read anyway


class Watcher:
    """Reads a bond again and again; shared by `watch` and the demo."""

    def __init__(self, session: Session, name: str) -> None:
        self.bonds = session.bonds()
        self.name = name
        self.tracker = Tracker(name)
        self.sock = open_events(self.bonds.netns)
        self.source = "link events" if self.sock else "polling"

    def read(self) -> list[Event]:
        try:
            state: BondState | None = self.bonds.show(self.name)
        except NotFoundError:
            if self.tracker.state is None:
                raise
            state = None
        links = self.bonds.links()
        return self.tracker.update(state, links, time.monotonic())

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def run(session: Session, name: str, *, interval: float, count: int) -> None:
    from rich.live import Live

    check_ifname(name, "bond name")
    watcher = Watcher(session, name)
    out = console()
    frames = 0
    live: Live | None = None
    if not session.json and out.is_terminal and count != 1:
        live = Live(console=out, auto_refresh=False, transient=False)
        live.start()
    try:
        while True:
            events = watcher.read()
            frames += 1
            if session.json:
                frame = watcher.tracker.frame_json()
                frame["events"] = [e.to_json() for e in events]
                print_json_line(frame)
            elif live is not None:
                live.update(screen(watcher.tracker, watcher.source), refresh=True)
            elif frames == 1 or (count and frames >= count):
                out.print(screen(watcher.tracker, watcher.source))
            else:
                for event in events:  # not a terminal: a log, one line per event
                    out.print(event_line(event))
            if count and frames >= count:
                return
            wait(watcher.sock, interval)
    except KeyboardInterrupt:
        # Ctrl-C is how a watch ends: no error line, but the documented status, so a script
        # can tell an interrupted watch from one that reached --count.
        import typer

        from bondctl.cli.session import EXIT_INTERRUPTED

        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if live is not None:
            live.stop()
        watcher.close()


def print_json_line(data: Mapping[str, Any]) -> None:
    import json
    import sys

    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


