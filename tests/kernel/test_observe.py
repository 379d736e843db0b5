"""Acceptance of issue 13 on a real kernel: three pods' bonds made by the CNI plugin (an
active-backup one, an 802.3ad one with a real LACP partner bond, and one whose namespace was
then deleted), seen by `bondctl pods --json` and by the monitor, whose failover counter, health
transitions and Prometheus text are checked against `ip -d -j` read in each pod.

One world for the module (the CNI ADDs and the LACP negotiation are the slow part). The last
test measures the monitor's cost with 100 pods' bonds for docs/performance.md.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.netns import LinkFactory, Netns, NetnsPool, PeerNetns
from tests.kernel.datapath import lacp_in_use, set_link_up, wait_for
from tests.kernel.test_cni_support import STATE_ROOT, Env

pytestmark = pytest.mark.kernel

MIIMON = 100
MARGIN = 1.5  # seconds beyond one miimon interval: UML timers and a busy 2-CPU host
BONDCTL = [sys.executable, "-m", "bondctl.cli"]


@dataclass
class World:
    host: Netns
    switch: Netns
    state_dir: Path
    ab: Env
    lacp: Env
    gone: Env
    ab_links: list[str]
    ab_peers: list[str]
    lacp_links: list[str]
    partner_mac: str

    def pods(self) -> list[dict[str, Any]]:
        proc = self.host.run(*BONDCTL, "pods", "--json", "--state-dir", str(self.state_dir),
                             check=False)
        assert proc.returncode == 0 and proc.stderr == "", proc
        rows: list[dict[str, Any]] = json.loads(proc.stdout)
        return rows


def cni_args(pod: str) -> dict[str, str]:
    return {"CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAME={pod};K8S_POD_NAMESPACE=shop"}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    pool = NetnsPool()
    peers = PeerNetns(pool)
    make_links = LinkFactory(peers)
    token = secrets.token_hex(4)
    state_dir = STATE_ROOT / f"bond-observe-{token}"
    ipam = STATE_ROOT / f"ipam-observe-{token}"
    host = pool.new("oh")
    try:
        switch = peers.get()
        envs = [Env(host, pool.new("op"), state_dir, ipam) for _ in range(3)]
        ab, lacp, gone = envs
        ab_links = make_links(host, 2, prefix="ab")
        ab.ok("ADD", ab.conf(list(ab_links), miimon=str(MIIMON)), cid="ctr-ab",
              env=cni_args("web-ab"))

        lacp_links = make_links(host, 2, prefix="la")
        switch.batch(["link add sw0 type bond mode 802.3ad lacp_rate fast miimon 100",
                      *(f"link set {p} down" for p in lacp_links.peers),
                      *(f"link set {p} master sw0" for p in lacp_links.peers),
                      *(f"link set {p} up" for p in lacp_links.peers), "link set sw0 up"])
        lacp.ok("ADD", lacp.conf(list(lacp_links), mode="802.3ad", lacpRate="fast",
                                 miimon=str(MIIMON)), cid="ctr-lacp", env=cni_args("db-0"))
        wait_for(lambda: lacp_in_use(lacp.pod, list(lacp_links))
                 and lacp_in_use(switch, lacp_links.peers), 30.0, "LACP between the pod and sw0")

        gone_links = make_links(host, 2, prefix="go")
        gone.ok("ADD", gone.conf(list(gone_links), miimon=str(MIIMON)), cid="ctr-gone",
                env=cni_args("job-1"))
        subprocess.run(["ip", "netns", "del", gone.pod.name], check=True)

        # A bond of the "node" itself (the namespace bondctl runs in), over a dummy.
        host.batch(["link add hb0 type dummy", "link add hbond0 type bond mode active-backup "
                    "miimon 100", "link set hb0 master hbond0", "link set hbond0 up"])
        partner = switch.link("sw0")
        assert partner is not None
        yield World(host, switch, state_dir, ab, lacp, gone, list(ab_links), ab_links.peers,
                    list(lacp_links), partner["address"])
    finally:
        pool.close()
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(ipam, ignore_errors=True)


def by_pod(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["pod"]["name"] if row["pod"] else f"host:{row['interface']}": row
            for row in rows}


def ip_bond(ns: Netns, bond: str = "bond0") -> dict[str, Any]:
    """What `ip -d -j` says in the pod, in the terms the checks compare."""
    links = ns.ip_json("link", "show")
    data = next(link for link in links if link["ifname"] == bond)["linkinfo"]["info_data"]
    slaves = {link["ifname"]: link["linkinfo"]["info_slave_data"] for link in links
              if link.get("master") == bond}
    return {"active": data.get("active_slave"), "ad": data.get("ad_info"),
            "slaves": {name: {"mii_up": s["mii_status"] == "UP",
                              "failures": s["link_failure_count"],
                              "aggregator": s.get("ad_aggregator_id")}
                       for name, s in slaves.items()}}


def test_pods_reports_each_attachment_and_the_host_bond(world: World) -> None:
    rows = by_pod(world.pods())
    assert set(rows) == {"web-ab", "db-0", "job-1", "host:hbond0"}, rows

    ab = rows["web-ab"]
    kernel = ip_bond(world.ab.pod)
    assert (ab["health"], ab["mode"], ab["network"], ab["container_id"]) == \
        ("ok", "active-backup", "bondnet", "ctr-ab"), ab
    assert ab["pod"] == {"name": "web-ab", "namespace": "shop"} and not ab["host"]
    assert ab["netns"] == str(world.ab.pod.path)
    assert ab["netns_inode"] == os.stat(world.ab.pod.path).st_ino
    assert ab["active_slave"] == kernel["active"] in world.ab_links
    assert {s["name"]: (s["mii_status"] == "up", s["link_failure_count"])
            for s in ab["slaves"]} == {n: (s["mii_up"], s["failures"])
                                       for n, s in kernel["slaves"].items()}
    assert (ab["slaves_configured"], ab["slaves_up"]) == (2, 2)

    lacp = rows["db-0"]
    kernel = ip_bond(world.lacp.pod)
    assert (lacp["health"], lacp["mode"]) == ("ok", "802.3ad"), lacp
    assert lacp["ad"]["partner_mac"] == kernel["ad"]["partner_mac"] == world.partner_mac
    assert lacp["ad"]["aggregator"] == kernel["ad"]["aggregator"]
    assert {s["ad_aggregator_id"] for s in lacp["slaves"]} == {kernel["ad"]["aggregator"]}

    stale = rows["job-1"]
    assert stale["health"] == "gone" and "no longer exists" in stale["reason"], stale
    assert stale["record"] and stale["slaves"] == [] and stale["mode"] is None

    host = rows["host:hbond0"]
    assert host["host"] and host["network"] is None and host["mode"] == "active-backup"
    assert [s["name"] for s in host["slaves"]] == ["hb0"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    """The monitor's run() in a thread of this process, as the agent runs it."""

    def __init__(self, state_dir: Path, host: bool = False) -> None:
        from bondctl.observe.monitor import run

        self.port = free_port()
        self.events: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run, args=(f"127.0.0.1:{self.port}", str(state_dir), self.stop),
            kwargs={"emit": self.events.append, "host": host}, daemon=True)
        self.thread.start()
        self._open = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
        wait_for(self._answers, 15.0, "the metrics endpoint to answer")

    def _answers(self) -> bool:
        assert self.thread.is_alive(), "the monitor stopped"
        try:
            self.scrape()
        except OSError:
            return False
        return True

    def scrape(self) -> dict[str, list[Any]]:
        """Samples by their series name (a counter's family drops `_total`, its samples not)."""
        with self._open(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        out: dict[str, list[Any]] = {}
        for fam in text_string_to_metric_families(text):
            for sample in fam.samples:
                out.setdefault(sample.name, []).append(sample)
        return out

    def value(self, family: str, pod: str, **labels: str) -> float | None:
        fams = self.scrape()
        for sample in fams.get(family, []):
            if sample.labels.get("pod") == pod and all(
                    sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
        return None

    def of(self, pod: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["pod"] == pod and e["event"] == kind]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.mark.uml_weight(6)
def test_a_cut_path_counts_one_failover_degrades_and_heals(world: World) -> None:
    mon = Running(world.state_dir)
    try:
        wait_for(lambda: mon.value("bondctl_bond_health", "web-ab", state="ok") == 1, 15.0,
                 "the monitor to watch web-ab")
        wait_for(lambda: mon.of("job-1", "attached") == [] and mon.value(
            "bondctl_bond_health", "job-1", state="gone") == 1, 5.0, "job-1 reported gone")
        assert mon.value("bondctl_bond_failovers_total", "web-ab") == 0
        assert mon.value("bondctl_bond_failovers_total", "db-0") == 0

        active = ip_bond(world.ab.pod)["active"]
        peer = world.ab_peers[world.ab_links.index(active)]
        (other,) = [name for name in world.ab_links if name != active]
        cut = set_link_up(world.switch, peer, False)
        degraded = wait_for(lambda: mon.of("web-ab", "degraded"), MIIMON / 1000 + MARGIN,
                            "the degraded event")
        seen = time.monotonic_ns()
        assert (seen - cut.start_ns) / 1e9 <= MIIMON / 1000 + MARGIN
        assert "slave " + active in degraded[0]["reason"]
        wait_for(lambda: ip_bond(world.ab.pod)["active"] == other, 5.0, "the kernel's failover")
        wait_for(lambda: mon.value("bondctl_bond_failovers_total", "web-ab") == 1, 5.0,
                 "the failover counted")
        (failover,) = mon.of("web-ab", "failover")
        assert (failover["from"], failover["to"]) == (active, other)
        assert failover["container_id"] == "ctr-ab" and failover["network"] == "bondnet"
        assert failover["pod_namespace"] == "shop"
        assert mon.value("bondctl_bond_failovers_total", "db-0") == 0
        assert mon.of("db-0", "failover") == [] and mon.of("db-0", "degraded") == []
        assert mon.value("bondctl_bond_health", "web-ab", state="degraded") == 1
        assert_matches_ip(mon, world, "web-ab", world.ab.pod)
        assert_matches_ip(mon, world, "db-0", world.lacp.pod)

        set_link_up(world.switch, peer, True)
        wait_for(lambda: mon.of("web-ab", "healthy"), 5.0, "the healthy event")
        assert mon.value("bondctl_bond_health", "web-ab", state="ok") == 1
        assert mon.value("bondctl_bond_failovers_total", "web-ab") == 1  # no fail-back
        assert_matches_ip(mon, world, "web-ab", world.ab.pod)
        time.sleep(0.5)
        assert len(mon.of("web-ab", "failover")) == 1
        assert all(e["event"] in ("attached", "gone") for e in mon.events
                   if e["pod"] != "web-ab"), mon.events
    finally:
        mon.close()


def assert_matches_ip(mon: Running, world: World, pod: str, ns: Netns) -> None:
    kernel = ip_bond(ns)
    fams = mon.scrape()

    def samples(family: str) -> list[Any]:
        return [s for s in fams.get(family, []) if s.labels["pod"] == pod]

    up = sum(1 for s in kernel["slaves"].values() if s["mii_up"])
    assert [s.value for s in samples("bondctl_bond_slaves_up")] == [up]
    assert {s.labels["slave"]: s.value for s in samples("bondctl_slave_mii_up")} == \
        {n: float(s["mii_up"]) for n, s in kernel["slaves"].items()}
    assert {s.labels["slave"]: s.value for s in samples("bondctl_slave_link_failures_total")
            } == {n: float(s["failures"]) for n, s in kernel["slaves"].items()}
    if kernel["active"]:
        assert [s.labels["slave"] for s in samples("bondctl_bond_active_slave_info")] == \
            [kernel["active"]]
    if kernel["ad"]:
        assert [s.value for s in samples("bondctl_bond_ad_aggregator_id")] == \
            [kernel["ad"]["aggregator"]]
        assert [s.labels["mac"] for s in samples("bondctl_bond_ad_partner_info")] == \
            [kernel["ad"]["partner_mac"]]
    speeds = {s.labels["slave"]: s.value for s in samples("bondctl_slave_speed_bytes")}
    assert speeds == dict.fromkeys(kernel["slaves"], 10_000 * 1e6 / 8)  # veth: 10 Gb/s
    inode = str(os.stat(ns.path).st_ino)
    assert {s.labels["netns_inode"] for s in samples("bondctl_bond_up")} == {inode}


# -- cost with 100 pods' bonds ----------------------------------------------------------------
PODS = 100
BENCH_OUT_ENV = "BONDCTL_OBSERVE_BENCH_OUT"  # where to write the figures (docs/performance.md)


def proc_cost(pid: int) -> tuple[int, float]:
    """(RSS in KiB, CPU seconds used so far) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line.split()[1] for line in status.splitlines()
                   if line.startswith("VmRSS:")))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Standalone:
    """`bondctl monitor` as its own process, as the agent would run it: events to a file."""

    def __init__(self, state_dir: Path, out: Path) -> None:
        self.port = free_port()
        self.out = out
        self.proc = subprocess.Popen(
            [*BONDCTL, "monitor", "--metrics-address", f"127.0.0.1:{self.port}",
             "--state-dir", str(state_dir), "--no-host"],
            stdout=out.open("w"), stderr=subprocess.PIPE, text=True)
        self._open = urllib.request.build_opener(urllib.request.ProxyHandler({})).open

    def scrape(self) -> list[Any]:
        assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
        try:
            with self._open(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as r:
                text = r.read().decode()
        except OSError:
            return []
        return [s for fam in text_string_to_metric_families(text) for s in fam.samples]

    def count(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.scrape() if s.name == name
                   and all(s.labels.get(k) == v for k, v in labels.items()))

    def events(self, kind: str) -> list[dict[str, Any]]:
        text = self.out.read_text()
        lines = text[: text.rfind("\n") + 1].splitlines()  # a line still being written waits
        return [e for e in map(json.loads, lines) if e["event"] == kind]

    def close(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(20) == 0, self.proc.stderr.read() if self.proc.stderr else ""


def bench_pods(pool: NetnsPool, state_dir: Path) -> Netns:
    """PODS namespaces, each an active-backup bond over two veths whose peers sit in one
    switch namespace, and a state record for each, as ADD writes it (the plugin's own ADD
    costs a Python start per pod in UML: minutes, for nothing the monitor sees differently)."""
    from bondctl.cni.state import StateDir
    from bondctl.model import BondSpec
    from bondctl.ops import Bonds
    from bondctl.registry import Registry

    switch = pool.new("bs")
    pods = [Netns(f"bb{i:03d}-{secrets.token_hex(3)}") for i in range(PODS)]
    subprocess.run(["ip", "-batch", "-"], input="".join(f"netns add {p.name}\n" for p in pods),
                   text=True, check=True, capture_output=True)
    pool.created += pods
    switch.batch(f"link add s{i}{x} up type veth peer name eth{x} netns {p.name}"
                 for i, p in enumerate(pods) for x in (0, 1))
    backend = Registry().select("netlink")
    store = StateDir(str(state_dir))
    try:
        for i, pod in enumerate(pods):
            state = Bonds(backend, str(pod.path)).create(BondSpec.build(
                "bond0", "active-backup", {"miimon": MIIMON}, ["eth0", "eth1"])).state
            assert state is not None
            ident = os.stat(pod.path)
            store.write(f"bench{i}@bond0", {
                "version": 2, "network": "bench", "containerID": f"bench{i}",
                "ifname": "bond0", "netns": str(pod.path),
                "netnsId": [ident.st_dev, ident.st_ino], "bond": "bond0",
                "bondIndex": state.index, "linksInContainer": True, "phase": "added",
                "created": time.time(), "pod": {"name": f"pod-{i}", "namespace": "bench"},
                "links": [{"name": s.name, "host": False, "index": 1, "mtu": s.mtu,
                           "mac": None, "permMac": None, "up": True} for s in state.slaves]})
    finally:
        store.close()
    return switch


@pytest.mark.uml_weight(12)
def test_cost_of_watching_100_pods_and_a_failover_storm(tmp_path: Path) -> None:
    pool = NetnsPool()
    token = secrets.token_hex(4)
    empty, state_dir = STATE_ROOT / f"bond-empty-{token}", STATE_ROOT / f"bond-bench-{token}"
    figures: dict[str, Any] = {"pods": PODS, "miimon_ms": MIIMON}
    try:
        base = Standalone(empty, tmp_path / "empty.jsonl")
        try:
            wait_for(lambda: base.scrape(), 60.0, "the idle monitor's endpoint")
            figures["rss_kib_no_pods"] = proc_cost(base.proc.pid)[0]
        finally:
            base.close()

        started = time.monotonic()
        switch = bench_pods(pool, state_dir)
        figures["setup_s"] = round(time.monotonic() - started, 1)
        mon = Standalone(state_dir, tmp_path / "events.jsonl")
        try:
            started = time.monotonic()
            wait_for(lambda: mon.count("bondctl_bond_health", state="ok") == PODS, 120.0,
                     f"the monitor to watch {PODS} healthy bonds", interval=0.5)
            figures["attach_all_s"] = round(time.monotonic() - started, 1)
            _, cpu = proc_cost(mon.proc.pid)
            idle = 10.0
            time.sleep(idle)
            rss_idle, cpu_idle = proc_cost(mon.proc.pid)
            figures["rss_kib_100_pods"] = rss_idle
            figures["rss_kib_per_pod"] = round((rss_idle - figures["rss_kib_no_pods"]) / PODS, 1)
            figures["idle_cpu_percent"] = round((cpu_idle - cpu) / idle * 100, 2)

            actives = {s.labels["pod"]: s.labels["slave"] for s in mon.scrape()
                       if s.name == "bondctl_bond_active_slave_info"}
            assert len(actives) == PODS
            cuts = [f"link set s{i}{actives[f'pod-{i}'][-1]} down" for i in range(PODS)]
            _, cpu0 = proc_cost(mon.proc.pid)
            started = time.monotonic()
            switch.batch(cuts)
            wait_for(lambda: len(mon.events("failover")) >= PODS, 60.0,
                     f"{PODS} failovers logged", interval=0.2)
            figures["storm_all_logged_s"] = round(time.monotonic() - started, 2)
            switch.batch(cut.replace(" down", " up") for cut in cuts)
            wait_for(lambda: len(mon.events("healthy")) >= PODS, 60.0, f"{PODS} healthy again",
                     interval=0.2)
            rss_storm, cpu1 = proc_cost(mon.proc.pid)
            figures["storm_cpu_s"] = round(cpu1 - cpu0, 2)
            figures["storm_cpu_ms_per_pod"] = round((cpu1 - cpu0) * 1000 / PODS, 1)
            figures["rss_kib_after_storm"] = rss_storm

            failovers = [s for s in mon.scrape() if s.name == "bondctl_bond_failovers_total"]
            assert sorted(s.value for s in failovers) == [1.0] * PODS  # each exactly once
            assert {e["pod"] for e in mon.events("failover")} == {f"pod-{i}" for i in
                                                                    range(PODS)}
            assert mon.count("bondctl_monitor_resyncs_total") == 0
        finally:
            mon.close()
    finally:
        pool.close()
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(empty, ignore_errors=True)
    out = os.environ.get(BENCH_OUT_ENV)
    if out:
        Path(out).write_text(json.dumps(figures, indent=1) + "\n")
    # Bounded: a pod costs kilobytes at rest and milliseconds of CPU per failover (UML, where
    # a syscall costs ~10x native; measured 49 KiB, 3.2 % idle for all 100, 22 ms).
    assert figures["rss_kib_per_pod"] < 512, figures
    assert figures["idle_cpu_percent"] < 10, figures
    assert figures["storm_cpu_ms_per_pod"] < 200, figures
