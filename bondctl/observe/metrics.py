"""The monitor's rows as Prometheus series, in node_exporter's habits: `bondctl_` prefix, base
units in names (speed in bytes per second), `_total` on counters, `_info` on info metrics, one
series per label set and none for what is unknown.

Every series of an attachment carries its labels: network, netns_inode, container_id,
interface, pod, pod_namespace (empty for a host bond); per-slave series add `slave`.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from bondctl.errors import BusyError, ValidationError

from .inventory import VERDICTS, PodBond
from .speed import speed_bytes

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

    from .monitor import Monitor

Families = dict[str, Any]  # name -> a Gauge-, Counter- or InfoMetricFamily being filled
LABELS = ("network", "netns_inode", "container_id", "interface", "pod", "pod_namespace")
DEFAULT_PORT = 9465

# (name, kind, help): the catalogue docs/observability.md is checked against.
SERIES: tuple[tuple[str, str, str], ...] = (
    ("bondctl_bond", "info", "The bond's mode and whether it is the node's own (host)."),
    ("bondctl_bond_up", "gauge", "1 if the bond is administratively up and has carrier."),
    ("bondctl_bond_health", "gauge",
     "1 for the attachment's current verdict (ok, degraded, down, stale, gone), else 0."),
    ("bondctl_bond_slaves_configured", "gauge",
     "Slaves the attachment was made with (a host bond: slaves it has)."),
    ("bondctl_bond_slaves_up", "gauge", "Slaves whose MII status is up."),
    ("bondctl_bond_active_slave", "info", "The slave carrying traffic (modes with one)."),
    ("bondctl_bond_failovers_total", "counter",
     "Times traffic moved to another slave (or 802.3ad aggregator), from link events."),
    ("bondctl_bond_ad_aggregator_id", "gauge", "802.3ad: the active aggregator's id."),
    ("bondctl_bond_ad_ports", "gauge", "802.3ad: ports in the active aggregator."),
    ("bondctl_bond_ad_partner", "info",
     "802.3ad: the LACP partner's system MAC (all zeros: no partner)."),
    ("bondctl_bond_ad_partner_mac_changes_total", "counter",
     "802.3ad: times the LACP partner was lost or changed."),
    ("bondctl_slave_mii_up", "gauge", "1 if the slave's MII status is up."),
    ("bondctl_slave_link_failures_total", "counter",
     "The kernel's link failure count for the slave."),
    ("bondctl_slave_ad_aggregator_id", "gauge", "802.3ad: the aggregator the slave is in."),
    ("bondctl_slave_speed_bytes", "gauge", "The slave's link speed in bytes per second."),
    ("bondctl_monitor_attachments", "gauge", "Attachments the monitor knows, by verdict."),
    ("bondctl_monitor_resyncs_total", "counter",
     "Times link notifications were lost (ENOBUFS) and a namespace was read again."),
)


class BondCollector(Collector):
    """Reads the monitor's rows at each scrape: nothing is kept twice."""

    def __init__(self, rows: Callable[[], Sequence[PodBond]],
                 resyncs: Callable[[], int] = lambda: 0) -> None:
        self._rows = rows
        self._resyncs = resyncs

    def collect(self) -> Iterator[Metric]:
        fam: Families = {name: _family(name, kind, text) for name, kind, text in SERIES}
        counts = dict.fromkeys(VERDICTS, 0)
        for row in self._rows():
            counts[row.health] += 1
            add_row(fam, row)
        for verdict, count in counts.items():
            fam["bondctl_monitor_attachments"].add_metric([verdict], count)
        fam["bondctl_monitor_resyncs_total"].add_metric([], self._resyncs())
        yield from fam.values()


def _family(name: str, kind: str, text: str) -> Metric:
    if name == "bondctl_monitor_attachments":
        return GaugeMetricFamily(name, text, labels=["health"])
    if name == "bondctl_monitor_resyncs_total":
        return CounterMetricFamily(name, text, labels=[])
    labels = list(LABELS)
    if name.startswith("bondctl_slave_"):
        labels.append("slave")
    elif name == "bondctl_bond_health":
        labels.append("state")
    if kind == "info":
        return InfoMetricFamily(name, text, labels=labels)
    if kind == "counter":
        return CounterMetricFamily(name, text, labels=labels)
    return GaugeMetricFamily(name, text, labels=labels)


def add_row(fam: Families, row: PodBond) -> None:
    if not row.attachment.interface:
        return  # an untrusted record: counted by health, no series of its own
    labels = [row.attachment.labels()[name] for name in LABELS]
    for verdict in VERDICTS:
        _add(fam, "bondctl_bond_health", [*labels, verdict], float(row.health == verdict))
    if row.health == "gone":
        return
    state = row.state
    _add(fam, "bondctl_bond_slaves_configured", labels, row.slaves_configured)
    _add(fam, "bondctl_bond_up", labels,
         float(bool(state and state.up and state.operstate in ("UP", "UNKNOWN"))))
    if row.failovers is not None:
        _add(fam, "bondctl_bond_failovers_total", labels, row.failovers)
    if state is None:
        return
    _add(fam, "bondctl_bond_slaves_up", labels, row.slaves_up)
    fam["bondctl_bond"].add_metric(labels, {"mode": state.mode,
                                            "host": str(row.attachment.host).lower()})
    if state.active_slave:
        fam["bondctl_bond_active_slave"].add_metric(labels, {"slave": state.active_slave})
    if state.ad_info:
        ad = state.ad_info
        if "aggregator" in ad:
            _add(fam, "bondctl_bond_ad_aggregator_id", labels, ad["aggregator"])
        if "num_ports" in ad:
            _add(fam, "bondctl_bond_ad_ports", labels, ad["num_ports"])
        if "partner_mac" in ad:
            fam["bondctl_bond_ad_partner"].add_metric(labels, {"mac": str(ad["partner_mac"])})
        if row.partner_changes is not None:
            _add(fam, "bondctl_bond_ad_partner_mac_changes_total", labels, row.partner_changes)
    for slave in state.slaves:
        per = [*labels, slave.name]
        _add(fam, "bondctl_slave_mii_up", per, float(slave.mii_status == "up"))
        _add(fam, "bondctl_slave_link_failures_total", per, slave.link_failure_count)
        if slave.ad_aggregator_id is not None:
            _add(fam, "bondctl_slave_ad_aggregator_id", per, slave.ad_aggregator_id)
        speed = speed_bytes(row.speeds.get(slave.name))
        if speed is not None:
            _add(fam, "bondctl_slave_speed_bytes", per, speed)


def _add(fam: Families, name: str, labels: list[str], value: object) -> None:
    fam[name].add_metric(labels, float(value))  # type: ignore[arg-type]


def registry(monitor: Monitor) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(BondCollector(monitor.rows, lambda: monitor.resyncs))
    return reg


def parse_address(address: str) -> tuple[str, int]:
    """"HOST:PORT", "[V6]:PORT" or ":PORT" (127.0.0.1: never every address by accident)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(f"--metrics-address {address!r}: expected HOST:PORT, "
                              f"e.g. 127.0.0.1:{DEFAULT_PORT}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "127.0.0.1", int(port)


def serve(address: str, monitor: Monitor) -> WSGIServer:
    """Serve /metrics on `address` from a daemon thread; the caller shuts the server down."""
    from prometheus_client import start_http_server

    host, port = parse_address(address)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry(monitor))
    except OSError as exc:
        kind = BusyError if exc.errno == errno.EADDRINUSE else ValidationError
        raise kind(f"--metrics-address {address}: {exc.strerror or exc}") from None
    return server
