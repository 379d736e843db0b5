"""`bondctl pods` (every bond attachment on the node, with a health verdict), its `--watch`
form (the monitor in this process, drawn with the watch view) and `bondctl monitor` (the
monitor with its Prometheus endpoint, standalone)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bondctl.cli.session import Session, console, print_json

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

    from bondctl.cli.watch import Event
    from bondctl.observe.inventory import PodBond

HEALTH_STYLE = {"ok": "green", "degraded": "yellow", "down": "bold red", "stale": "dim",
                "gone": "dim"}
EVENT_LEVEL = {"failover": "warning", "slave_down": "error", "slave_up": "info",
               "partner_changed": "warning", "degraded": "warning", "down": "error",
               "healthy": "info", "stale": "warning", "gone": "warning", "attached": "info",
               "detached": "info"}
CONTAINER_WIDTH = 12  # as `crictl ps` shows IDs


def show(session: Session, state_dir: str, *, host: bool) -> None:
    from bondctl.observe.inventory import survey

    rows = survey(state_dir, host=host)
    if session.json:
        print_json([row.to_json() for row in rows])
        return
    out = console()
    if not rows:
        out.print(f"no bond attachments recorded in {state_dir}, and no host bonds",
                  markup=False)
        return
    out.print(pods_table(rows))


def _who(row: PodBond) -> str:
    att = row.attachment
    if att.host:
        return "(host)"
    if att.pod_name:
        return f"{att.pod_namespace}/{att.pod_name}"
    return att.container_id[:CONTAINER_WIDTH] or att.key


def _slaves(row: PodBond) -> str:
    if row.state is None:
        return "-"
    return ", ".join(f"{s.name} {s.mii_status}" + (f" ({s.link_failure_count} fails)"
                                                   if s.link_failure_count else "")
                     for s in row.state.slaves) or "none"


def _lacp(row: PodBond) -> str:
    ad = row.state.ad_info if row.state else None
    if not ad:
        return "-"
    return f"agg {ad.get('aggregator', '?')} partner {ad.get('partner_mac', '?')}"


def pods_table(rows: Sequence[PodBond]) -> Table:
    from rich.text import Text

    from bondctl.cli.render import FitTable

    table = FitTable(box=None, pad_edge=False, header_style="bold")
    columns = ["POD", "NETWORK", "IF", "MODE", "HEALTH", "ACTIVE", "SLAVES", "802.3AD",
               "NETNS", "REASON"]
    if any(row.failovers is not None for row in rows):
        columns.insert(6, "FAILOVERS")
    for column in columns:
        table.add_column(column, no_wrap=column != "REASON")
    for row in rows:
        att, state = row.attachment, row.state
        cells = [Text(_who(row)), Text(att.network or "-"), Text(att.interface or "-"),
                 Text(state.mode if state else "-"),
                 Text(row.health, style=HEALTH_STYLE.get(row.health, "")),
                 Text(state.active_slave or "-" if state else "-"),
                 Text(_slaves(row)), Text(_lacp(row)),
                 Text(att.netns or ("(host)" if att.host else "-")), Text(row.reason)]
        if "FAILOVERS" in columns:
            cells.insert(6, Text(str(row.failovers) if row.failovers is not None else "-"))
        table.add_row(*cells)
    return table


def as_watch_event(event: dict[str, Any]) -> Event:
    """A monitor event as a line of the watch view's event log."""
    from bondctl.cli.watch import Event

    who = event.get("pod") and f"{event['pod_namespace']}/{event['pod']}"
    where = f"{who or event.get('container_id', '')[:CONTAINER_WIDTH] or 'host'} " \
            f"{event['interface']}"
    detail = ""
    if event["event"] == "failover":
        detail = f"{event.get('from', event.get('from_aggregator'))} -> " \
                 f"{event.get('to', event.get('to_aggregator'))} " \
                 f"(failover #{event['failovers']})"
    elif "slave" in event:
        detail = f"{event['slave']} {event.get('mii_status', '')}"
    elif "reason" in event:
        detail = event["reason"]
    return Event(time.time(), EVENT_LEVEL.get(event["event"], "info"),
                 f"{where}: {event['event']} {detail}".rstrip())


def watch_screen(rows: Sequence[PodBond], log: Sequence[Event], source: str) -> Group:
    from rich.console import Group
    from rich.text import Text

    from bondctl.cli.render import DIM
    from bondctl.cli.watch import event_line

    stamp = time.strftime("%H:%M:%S")
    parts: list[Any] = [Text(f"pods · {stamp} · {source} · Ctrl-C stops", style=DIM),
                        pods_table(rows) if rows else Text("no bond attachments", style=DIM),
                        Text(), Text("Events", style="bold underline")]
    parts += [event_line(e) for e in log] or [Text("(none yet)", style=DIM)]
    return Group(*parts)


def watch(session: Session, state_dir: str, *, host: bool, interval: float, count: int) -> None:
    """The monitor in this process: a live table and event log, or JSON lines (--json)."""
    import typer
    from rich.live import Live

    from bondctl.cli.session import EXIT_INTERRUPTED
    from bondctl.cli.watch import LOG_LINES, event_line, print_json_line
    from bondctl.observe.inventory import read_records
    from bondctl.observe.monitor import Monitor

    read_records(state_dir)  # a bad --state-dir is an error before anything is drawn
    pending: list[dict[str, Any]] = []
    monitor = Monitor(state_dir, pending.append, host=host)
    log: deque[Event] = deque(maxlen=LOG_LINES)
    out = console()
    live = None
    if not session.json and out.is_terminal:
        live = Live(console=out, auto_refresh=False, transient=False)
        live.start()
    frames = 0
    next_sync = 0.0
    try:
        while True:
            if time.monotonic() >= next_sync:
                monitor.sync()
                next_sync = time.monotonic() + interval
            monitor.poll(max(0.0, next_sync - time.monotonic()))
            events, pending[:] = list(pending), []
            frames += 1
            if session.json:
                for event in events:
                    print_json_line(event)
            else:
                log.extend(as_watch_event(e) for e in events)
                screen = watch_screen(monitor.rows(), log, "link events")
                if live is not None:
                    live.update(screen, refresh=True)
                elif frames == 1:
                    out.print(screen)
                else:
                    for event in events:  # not a terminal: a log, one line per event
                        out.print(event_line(as_watch_event(event)))
            if count and frames >= count:
                return
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if live is not None:
            live.stop()
        monitor.close()


def monitor(address: str | None, state_dir: str, *, host: bool) -> None:
    """`bondctl monitor`: the monitor until SIGTERM or Ctrl-C, events as JSON lines on stdout."""
    import signal
    import threading

    import typer

    from bondctl.cli.session import EXIT_INTERRUPTED
    from bondctl.observe.inventory import read_records
    from bondctl.observe.metrics import parse_address
    from bondctl.observe.monitor import run

    if address is not None:
        parse_address(address)
    read_records(state_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run(address, state_dir, stop, host=host)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
