# ruff: noqa: F811  (the cni fixture is imported from test_cni_support)
"""Failover in the real datapath: a bond in a "pod" namespace, its slaves' veth peers on a
"switch", traffic to a peer, one path cut from the switch side so the bond learns of it only
from its slave's carrier, as from a pulled cable. Every claim is read back from the kernel
(`ip -j -d`, `bridge -j fdb`, link counters) or proven by packets that arrived; loss windows
are measured, printed (-s) and kept as JSON in the test's tmp dir. docs/reliability.md
"Datapath failover" has the figures."""

from __future__ import annotations

import time

from bondctl.model import BondSpec
from bondctl.ops import Bonds
from bondctl.registry import Registry
from tests.kernel.datapath import (
    Cut,
    Switched,
    active_slave,
    add_address,
    bond_data,
    bridge_switch,
    fdb_ports,
    lacp_in_use,
    link_json,
    loss_window,
    ping,
    record,
    set_link_up,
    slave_data,
    streaming,
    tx_packets,
    wait_for,
    wait_ping,
)
from tests.kernel.test_cni_support import cni  # noqa: F401

MIIMON = 50
# Allowed loss beyond one miimon period. The bond acts on the MII poll after the carrier
# drops, so the ideal window is at most miimon; on top come the poll's re-arm when it cannot
# take rtnl at once (one jiffy per retry: 10 ms, UML's kernel has HZ=100), the workqueue's
# scheduling latency and the paced sender waking late, all coarse and jittery inside
# User-Mode Linux, whose timers run off host signals and whose CPU is shared with the host's
# load. See docs/reliability.md for the figures seen against this bound.
MARGIN_MS = 200
BOUND_MS = MIIMON + MARGIN_MS
INTERVAL = 0.005  # one datagram every 5 ms: a 5 ms resolution on the window
AFTER_CUT = 40  # datagrams that must arrive after the cut: the stream really goes on
BOND_ADDR, PEER_ADDR = "198.51.100.1", "198.51.100.2"


def ab_topology(pod, switch, peer, make_links, **options) -> Switched:
    """Active-backup bond0 (miimon 50, plus `options`) made by the default backend over two
    veths whose peers sit on a bridge in `switch`, with `peer` on the same bridge."""
    slaves = make_links(pod, 2)
    assert slaves.peer_ns.name == switch.name
    bridge_switch(switch, slaves.peers, peer, PEER_ADDR)
    spec = BondSpec.build("bond0", "active-backup", {"miimon": MIIMON, **options},
                          list(slaves))
    Bonds(Registry().select(), pod.name).create(spec)
    add_address(pod, "bond0", BOND_ADDR)
    return Switched(pod, switch, peer, "bond0", list(slaves), slaves.peers, BOND_ADDR, PEER_ADDR)


def assert_ab_steady(top: Switched) -> str:
    """One slave ACTIVE, the other BACKUP, both MII up, echo works; the active one's name."""
    active = active_slave(top.pod, top.bond)
    assert active in top.slaves
    states = {s: slave_data(top.pod, s) for s in top.slaves}
    assert {s: d["state"] for s, d in states.items()} == {
        s: "ACTIVE" if s == active else "BACKUP" for s in top.slaves}
    assert all(d["mii_status"] == "UP" for d in states.values()), states
    assert wait_ping(top.pod, top.peer_addr) is not None
    return active


def cut_path(top: Switched, slave: str) -> tuple[int, Cut]:
    """Take `slave`'s path down on the switch side; returns the slave's link failure count
    from before, and when the cut was made."""
    failures = int(slave_data(top.pod, slave)["link_failure_count"])
    return failures, set_link_up(top.switch, top.port_of(slave), False)


def through_cut(stream, cut: Cut) -> None:
    """Let AFTER_CUT datagrams sent after the cut arrive, then stop the stream. Nothing here
    spawns a process: inside UML a fork stalls the test process, sender thread included, for
    tens of ms, long enough to send nothing into the outage and hide it. Read-back waits."""
    wait_for(lambda: stream.received_after(cut) >= AFTER_CUT, 10.0,
             f"{AFTER_CUT} datagrams sent after the cut to arrive")
    stream.stop()


def check_ab_failover(top: Switched, before: str, failures: int) -> str:
    """The bond moved from `before` to the other slave, as the kernel reports it; returns
    the new active slave."""
    (other,) = [s for s in top.slaves if s != before]
    wait_for(lambda: active_slave(top.pod, top.bond) == other, 5.0,
             f"{top.bond}'s active slave to move from {before} to {other}")
    old, new = slave_data(top.pod, before), slave_data(top.pod, other)
    assert old["mii_status"] == "DOWN" and old["state"] == "BACKUP", old
    assert int(old["link_failure_count"]) == failures + 1
    assert new["mii_status"] == "UP" and new["state"] == "ACTIVE", new
    assert "LOWER_UP" in link_json(top.pod, top.bond)["flags"]
    return other


def test_active_backup_failover_keeps_traffic_flowing(netns, peer_netns, make_netns,
                                                      make_links):
    top = ab_topology(netns, peer_netns, make_netns("ph"), make_links)
    before = assert_ab_steady(top)
    mac = link_json(top.pod, top.bond)["address"]
    assert fdb_ports(top.switch, top.bridge, mac) == [top.port_of(before)]

    after = check_ab_failover(top, before, cut_path(top, before)[0])
    sent = tx_packets(top.pod, after)
    rtts = [wait_ping(top.pod, top.peer_addr, timeout=5.0) for _ in range(5)]
    print(f"\n[ab-failover] {before} -> {after}; echo RTTs after failover (ms): "
          + ", ".join(f"{r:.1f}" for r in rtts))
    # The replies came back through the switch, which relearnt the bond's MAC on the new path.
    assert tx_packets(top.pod, after) >= sent + len(rtts)
    assert fdb_ports(top.switch, top.bridge, mac) == [top.port_of(after)]


def measure(stream, cut: Cut, name: str, tmp_path, delay_ms: int = 0, **extra) -> dict:
    """The loss window around `cut`, recorded, and checked to fit `delay_ms` (a downdelay)
    plus one miimon period plus the margin."""
    window = loss_window(stream, cut)
    bound = delay_ms + BOUND_MS
    data = {"miimon_ms": MIIMON, "bound_ms": bound, **extra, **window.as_dict()}
    record(tmp_path, name, data)
    # All loss sits in the one gap around the cut, the stream resumed, and the gap fits. Only
    # figures a stalled sender cannot inflate are held to the bound: under host load UML
    # stalls for 100 ms and more, which widens outage_max_ms without the bond being slower.
    assert window.lost_total == window.lost, data
    assert window.received >= window.sent - window.lost, data
    assert window.window_ms <= bound, data
    assert window.outage_min_ms <= bound, data
    if window.lost:
        assert window.gap_start_after_cut_ms >= -4 * window.interval_ms, data
    return data


def test_active_backup_loss_window(netns, peer_netns, make_netns, make_links, tmp_path):
    top = ab_topology(netns, peer_netns, make_netns("ph"), make_links)
    before = assert_ab_steady(top)
    with streaming(top.pod, top.peer, top.peer_addr, INTERVAL) as stream:
        failures, cut = cut_path(top, before)
        through_cut(stream, cut)
    after = check_ab_failover(top, before, failures)
    measure(stream, cut, "loss-window-active-backup", tmp_path,
            mode="active-backup", cut_slave=before, to_slave=after)


def test_loss_window_tracks_downdelay(netns, peer_netns, make_netns, make_links, tmp_path):
    """The control for the measurement: with downdelay the bond keeps sending into the dead
    path for that long after miimon sees it, so the window must be at least downdelay (and
    the measurement is not one that reads zero whatever happens)."""
    downdelay = 4 * MIIMON
    top = ab_topology(netns, peer_netns, make_netns("ph"), make_links, downdelay=downdelay)
    assert bond_data(top.pod, top.bond)["downdelay"] == downdelay
    before = assert_ab_steady(top)
    with streaming(top.pod, top.peer, top.peer_addr, INTERVAL) as stream:
        failures, cut = cut_path(top, before)
        through_cut(stream, cut)
    after = check_ab_failover(top, before, failures)
    data = measure(stream, cut, "loss-window-active-backup-downdelay", tmp_path,
                   delay_ms=downdelay, mode="active-backup", downdelay_ms=downdelay,
                   cut_slave=before, to_slave=after)
    # Timers only fire late, never early: the outage lasts at least downdelay, and the upper
    # bound cannot be below the outage. A bond that ignored downdelay would fail here.
    assert data["lost"] > 0, data
    assert data["outage_max_ms"] >= downdelay, data


def lacp_pair(pod, switch, make_links) -> tuple[list[str], list[str]]:
    """bond0 in `pod` and its LACP partner sw0 in `switch` (both 802.3ad, lacp_rate fast,
    miimon 50), their slaves paired by direct veths: LACPDUs cross a veth as they are."""
    slaves = make_links(pod, 2)
    assert slaves.peer_ns.name == switch.name
    backend = Registry().select()
    options = {"miimon": MIIMON, "lacp_rate": "fast"}
    Bonds(backend, switch.name).create(BondSpec.build("sw0", "802.3ad", options, slaves.peers))
    Bonds(backend, pod.name).create(BondSpec.build("bond0", "802.3ad", options, list(slaves)))
    add_address(switch, "sw0", PEER_ADDR)
    add_address(pod, "bond0", BOND_ADDR)
    return list(slaves), slaves.peers


def assert_aggregated(ns, bond: str, slaves: list[str], partner_mac: str) -> int:
    info = bond_data(ns, bond)["ad_info"]
    assert info["partner_mac"] == partner_mac, info
    assert info["num_ports"] == len(slaves), info
    ids = {slave_data(ns, s)["ad_aggregator_id"] for s in slaves}
    assert ids == {info["aggregator"]}, (ids, info)
    return int(info["aggregator"])


def test_lacp_failover_with_real_partner(netns, peer_netns, make_links, tmp_path):
    pod, switch = netns, peer_netns
    slaves, ports = lacp_pair(pod, switch, make_links)
    started = time.monotonic()
    for ns, members in ((pod, slaves), (switch, ports)):
        wait_for(lambda ns=ns, members=members: lacp_in_use(ns, members), 20.0,
                 f"LACP to bring {members} in {ns.name} into use")
    negotiated = time.monotonic() - started
    pod_mac, sw_mac = (link_json(pod, "bond0")["address"], link_json(switch, "sw0")["address"])
    assert pod_mac != sw_mac
    assert_aggregated(pod, "bond0", slaves, sw_mac)
    assert_aggregated(switch, "sw0", ports, pod_mac)
    assert wait_ping(pod, PEER_ADDR) is not None

    with streaming(pod, switch, PEER_ADDR, INTERVAL) as stream:
        # One flow hashes to one slave: find it by its counter, and cut that one.
        counts = {s: tx_packets(pod, s) for s in slaves}
        base = len(stream.arrivals)
        wait_for(lambda: len(stream.arrivals) >= base + 40, 10.0, "40 more datagrams")
        grown = {s: tx_packets(pod, s) - counts[s] for s in slaves}
        carrying = max(grown, key=grown.__getitem__)
        (other,) = [s for s in slaves if s != carrying]
        assert grown[carrying] >= 30 and grown[other] < 10, grown
        port = ports[slaves.index(carrying)]
        sent_other = tx_packets(pod, other)
        cut = set_link_up(switch, port, False)
        through_cut(stream, cut)
    wait_for(lambda: slave_data(pod, carrying)["mii_status"] == "DOWN", 5.0,
             f"bond0 to see {carrying} down")
    assert tx_packets(pod, other) - sent_other >= AFTER_CUT
    # Both ends now aggregate over the surviving pair only, still with each other. The LACP
    # state machines (a 100 ms tick) detach the dead port from the aggregator: wait for it.
    info = wait_for(lambda: (i := bond_data(pod, "bond0")["ad_info"])["num_ports"] == 1 and i,
                    5.0, "bond0's aggregator to drop the dead port")
    assert info["partner_mac"] == sw_mac, info
    assert slave_data(pod, other)["ad_aggregator_id"] == info["aggregator"]
    assert lacp_in_use(pod, [other])
    assert ping(pod, PEER_ADDR, timeout=2.0) is not None
    measure(stream, cut, "loss-window-802.3ad", tmp_path, mode="802.3ad", cut_slave=carrying,
            to_slave=other, lacp_negotiation_s=round(negotiated, 2))


def test_cni_bond_failover(cni, peer_netns, make_netns, make_links, tmp_path):
    """The bond made by a CNI ADD (links from a "host" namespace into the pod) fails over in
    the datapath like one made directly; DEL then gives the links back to the host."""
    links = make_links(cni.host, 2)
    assert links.peer_ns.name == peer_netns.name
    peer = make_netns("ph")
    bridge_switch(peer_netns, links.peers, peer, PEER_ADDR)
    conf = cni.conf(list(links), miimon=str(MIIMON))
    conf["ipam"] = {"type": "static", "addresses": [{"address": f"{BOND_ADDR}/24"}]}
    result = cni.ok("ADD", conf)
    assert [ip["address"] for ip in result["ips"]] == [f"{BOND_ADDR}/24"]
    assert all(cni.host.link(name) is None for name in links)
    top = Switched(cni.pod, peer_netns, peer, "bond0", list(links), links.peers, BOND_ADDR,
                   PEER_ADDR)
    assert bond_data(cni.pod, "bond0")["mode"] == "active-backup"
    assert bond_data(cni.pod, "bond0")["miimon"] == MIIMON

    before = assert_ab_steady(top)
    with streaming(top.pod, top.peer, top.peer_addr, INTERVAL) as stream:
        failures, cut = cut_path(top, before)
        through_cut(stream, cut)
    after = check_ab_failover(top, before, failures)
    assert ping(top.pod, PEER_ADDR, timeout=2.0) is not None
    measure(stream, cut, "loss-window-cni-active-backup", tmp_path,
            mode="active-backup (CNI ADD)", cut_slave=before, to_slave=after)

    cni.ok("DEL", {**conf, "prevResult": result})
    assert cni.pod.link("bond0") is None
    for name in links:
        link = cni.host.link(name)
        assert link is not None and link.get("master") is None, link
    assert cni.records() == []
