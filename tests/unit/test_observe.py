"""The pure logic of `bondctl pods` and the monitor: verdicts, failover counting from a
sequence of link messages, the Prometheus text and the JSON model. The kernel side (real bonds
made by the CNI, a real failover) is tests/kernel/test_observe.py."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bondctl import netlink as rtnl
from bondctl.errors import ValidationError
from bondctl.model import BondState, SlaveState
from bondctl.observe.inventory import Attachment, PodBond, judge, read_records
from bondctl.observe.metrics import SERIES, BondCollector, parse_address, registry
from bondctl.observe.monitor import Monitor, Watch, changes
from bondctl.options import MODE, OPTIONS

REPO = Path(__file__).resolve().parents[2]
POD = Attachment(interface="bond0", network="bondnet", container_id="c1",
                 netns="/run/netns/p1", netns_id=(4, 4026532999), bond_index=10,
                 configured=("eth0", "eth1"), pod_name="web-1", pod_namespace="shop",
                 key="c1@bond0")


def slave(name: str, mii: str = "up", state: str = "backup", fails: int = 0,
          agg: int | None = None) -> SlaveState:
    return SlaveState(name, state, mii, fails, "", ad_aggregator_id=agg)


def bond(mode: str = "active-backup", active: str | None = "eth0",
         slaves: tuple[SlaveState, ...] | None = None, up: bool = True,
         operstate: str = "UP", ad: dict[str, Any] | None = None) -> BondState:
    if slaves is None:
        slaves = (slave("eth0", state="active"), slave("eth1"))
    return BondState("bond0", mode, {"active_slave": active or ""}, slaves, up, operstate,
                     1500, "02:00:00:00:00:01", 10, ad)


# -- verdicts ---------------------------------------------------------------------------------
def test_a_bond_with_every_slave_up_is_ok() -> None:
    assert judge(POD, bond()) == ("ok", "2/2 slaves up")


def test_a_slave_down_is_degraded_and_says_which() -> None:
    verdict, reason = judge(POD, bond(slaves=(slave("eth0", state="active"),
                                              slave("eth1", "down", fails=1))))
    assert verdict == "degraded" and "slave eth1 is down" in reason


def test_a_slave_that_left_the_bond_is_degraded() -> None:
    verdict, reason = judge(POD, bond(slaves=(slave("eth0", state="active"),)))
    assert verdict == "degraded" and "slave eth1 is no longer in the bond" in reason


def test_no_slave_up_or_no_active_slave_is_down() -> None:
    assert judge(POD, bond(active=None, operstate="DOWN",
                           slaves=(slave("eth0", "down"), slave("eth1", "down"))))[0] == "down"
    assert judge(POD, bond(active=None))[0] == "down"
    assert judge(POD, bond(up=False))[0] == "down"


def test_lacp_without_partner_is_degraded_with_partner_ok() -> None:
    slaves = (slave("eth0", agg=1), slave("eth1", agg=1))
    lonely = bond("802.3ad", None, slaves, ad={"aggregator": 1, "num_ports": 2,
                                               "partner_mac": "00:00:00:00:00:00"})
    assert judge(POD, lonely)[0] == "degraded"
    paired = bond("802.3ad", None, slaves, ad={"aggregator": 1, "num_ports": 2,
                                               "partner_mac": "02:aa:00:00:00:01"})
    assert judge(POD, paired) == ("ok", "2/2 slaves up, LACP partner 02:aa:00:00:00:01")
    split = bond("802.3ad", None, (slave("eth0", agg=1), slave("eth1", agg=2)),
                 ad={"aggregator": 1, "num_ports": 1, "partner_mac": "02:aa:00:00:00:01"})
    verdict, reason = judge(POD, split)
    assert verdict == "degraded" and "not in the active aggregator: eth1" in reason


def test_a_missing_bond_or_an_unfinished_add_is_stale() -> None:
    assert judge(POD, None)[0] == "stale"
    adding = Attachment(**{**POD.__dict__, "phase": "adding"})
    assert judge(adding, bond())[0] == "stale"


# -- events -----------------------------------------------------------------------------------
def test_changes_count_a_failover_only_from_one_slave_to_another() -> None:
    before = bond(active="eth0")
    after = bond(active="eth1", slaves=(slave("eth0", "down", fails=1), slave("eth1")))
    found = changes(before, after)
    assert {"event": "failover", "from": "eth0", "to": "eth1"} in found
    assert [e["event"] for e in found].count("slave_down") == 1
    assert [e for e in changes(before, bond(active=None)) if e["event"] == "failover"] == []
    assert changes(None, after) == [] and changes(before, before) == []


def _link(index: int, name: str, *, kind: str | None = None, master: int | None = None,
          info: dict[int, bytes] | None = None, slave_data: dict[int, bytes] | None = None,
          up: bool = True) -> rtnl.LinkMessage:
    link = rtnl.LinkMessage(index, name, rtnl.IFF_UP if up else 0)
    link.operstate = "UP"
    link.kind = kind
    link.master = master
    link.info_data = info or {}
    if slave_data is not None:
        link.slave_kind = "bond"
        link.slave_data = slave_data
    return link


def _ab_bond(active: int) -> rtnl.LinkMessage:
    return _link(10, "bond0", kind="bond", info={MODE.ifla: bytes([1]),
                 OPTIONS["active_slave"].ifla: struct.pack("=I", active)})


def _slave(index: int, name: str, mii: int, fails: int) -> rtnl.LinkMessage:
    return _link(index, name, master=10, slave_data={1: bytes([0]), 2: bytes([mii]),
                                                     3: struct.pack("=I", fails)})


class _Events:
    """Stands in for the event socket: the monitor only asks it for an fd (speed ioctl)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def test_every_message_counts_even_a_failover_that_flips_straight_back() -> None:
    events = _Events()
    try:
        watch = Watch(POD, events, [_ab_bond(11), _slave(11, "eth0", 0, 0),
                                    _slave(12, "eth1", 0, 0)])  # type: ignore[arg-type]
        assert (watch.health, watch.state and watch.state.active_slave) == ("ok", "eth0")
        seen = watch.apply("new", _slave(11, "eth0", 2, 1))
        assert [e["event"] for e in seen] == ["slave_down", "degraded"]
        seen = watch.apply("new", _ab_bond(12))
        assert [e["event"] for e in seen] == ["failover"] and watch.failovers == 1
        watch.apply("new", _link(99, "other0", kind="veth"))  # of no concern
        seen = watch.apply("new", _slave(11, "eth0", 0, 1))
        assert [e["event"] for e in seen] == ["slave_up", "healthy"]
        watch.apply("new", _ab_bond(11))
        assert watch.failovers == 2 and watch.health == "ok"
        row = watch.row()
        assert row.failovers == 2 and row.state and row.state.slave("eth0").link_failure_count == 1
        seen = watch.apply("del", _ab_bond(11))
        assert [e["event"] for e in seen] == ["stale"]
    finally:
        events.close()


# -- metrics ----------------------------------------------------------------------------------
def _scrape(rows: list[PodBond]) -> dict[str, list[Any]]:
    text = generate_latest(_Registry(rows)).decode()
    return {fam.name: fam.samples for fam in text_string_to_metric_families(text)}


class _Registry:
    def __init__(self, rows: list[PodBond]) -> None:
        self.collector = BondCollector(lambda: rows, lambda: 3)

    def collect(self) -> Any:
        return self.collector.collect()


def test_scraped_text_parses_and_carries_every_label() -> None:
    degraded = bond(active="eth1", slaves=(slave("eth0", "down", fails=2),
                                           slave("eth1", state="active")))
    host = Attachment(interface="bond9", netns_id=(4, 4026531840), host=True)
    rows = [PodBond(POD, "degraded", "slave eth0 is down", degraded, {"eth0": 10000,
                                                                      "eth1": None}, 1, 0),
            PodBond(host, "ok", "", bond(), {}, 0, 0),
            PodBond(Attachment(interface="", key="bad"), "stale", "not JSON")]
    fams = _scrape(rows)
    labels = {"network": "bondnet", "netns_inode": "4026532999", "container_id": "c1",
              "interface": "bond0", "pod": "web-1", "pod_namespace": "shop"}

    def value(name: str, **extra: str) -> float:
        family = name if name in fams else name.removesuffix("_total")
        (sample,) = [s for s in fams[family] if s.name == name
                     and s.labels == {**labels, **extra}]
        return float(sample.value)

    assert value("bondctl_bond_up") == 1
    assert value("bondctl_bond_info", mode="active-backup", host="false") == 1
    assert value("bondctl_bond_slaves_configured") == 2
    assert value("bondctl_bond_slaves_up") == 1
    assert value("bondctl_bond_failovers_total") == 1
    assert value("bondctl_bond_active_slave_info", slave="eth1") == 1
    assert value("bondctl_slave_mii_up", slave="eth0") == 0
    assert value("bondctl_slave_link_failures_total", slave="eth0") == 2
    assert value("bondctl_slave_speed_bytes", slave="eth0") == 1.25e9
    assert value("bondctl_bond_health", state="degraded") == 1
    assert value("bondctl_bond_health", state="ok") == 0
    assert not [s for s in fams["bondctl_slave_speed_bytes"] if s.labels["slave"] == "eth1"]
    by_health = {s.labels["health"]: s.value for s in fams["bondctl_monitor_attachments"]}
    assert by_health == {"ok": 1, "degraded": 1, "down": 0, "stale": 1, "gone": 0}
    hosts = [s for s in fams["bondctl_bond_up"] if s.labels["interface"] == "bond9"]
    assert hosts and hosts[0].labels["pod"] == "" and hosts[0].labels["netns_inode"] == \
        "4026531840"


def test_every_series_is_documented_and_named_as_node_exporter_does() -> None:
    doc = (REPO / "docs" / "observability.md").read_text()
    for name, kind, _ in SERIES:
        shown = name + ("_info" if kind == "info" else "")
        assert f"`{shown}`" in doc, f"docs/observability.md does not describe {shown}"
        assert name.startswith("bondctl_")
        assert name.endswith("_total") == (kind == "counter"), name


def test_the_registry_reads_the_monitor_at_each_scrape(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = Monitor(str(tmp_path / "absent"), None, host=False)
    text = generate_latest(registry(monitor)).decode()
    assert 'bondctl_monitor_attachments{health="ok"} 0.0' in text


@pytest.mark.parametrize("address,expected", [("127.0.0.1:9465", ("127.0.0.1", 9465)),
                                              (":9465", ("127.0.0.1", 9465)),
                                              ("[::1]:80", ("::1", 80))])
def test_metrics_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["9465", "host:", "h:0", "h:70000", "h:x"])
def test_bad_metrics_address(address: str) -> None:
    with pytest.raises(ValidationError, match="expected HOST:PORT"):
        parse_address(address)


# -- records and the JSON model ---------------------------------------------------------------
RECORD = {"version": 2, "network": "bondnet", "containerID": "c1", "ifname": "bond0",
          "netns": "/run/netns/p1", "netnsId": [4, 4026532999], "bond": "bond0",
          "bondIndex": 10, "linksInContainer": False, "phase": "added", "created": 1.0,
          "pod": {"name": "web-1", "namespace": "shop"},
          "links": [{"name": n, "host": True, "index": i, "mtu": 1500, "mac": None,
                     "permMac": None, "up": True} for i, n in ((3, "eth0"), (4, "eth1"))]}


def test_records_become_attachments_and_a_bad_one_a_stale_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BONDCTL_STATE_ROOT", str(tmp_path))
    state = tmp_path / "bond"
    state.mkdir(mode=0o700)
    (state / "c1@bond0.json").write_text(json.dumps(RECORD))
    (state / "c2@bond0.json").write_text("{not json")
    found, bad = read_records(str(state))
    assert found == [POD]
    assert [(row.attachment.key, row.health) for row in bad] == [("c2@bond0", "stale")]
    assert "not valid JSON" in bad[0].reason
    with pytest.raises(ValidationError, match="absolute"):
        read_records("relative/dir")
    with pytest.raises(ValidationError, match="--state-dir"):
        read_records(str(tmp_path.parent))  # outside BONDCTL_STATE_ROOT


def test_json_row() -> None:
    row = PodBond(POD, "ok", "2/2 slaves up", bond(), {"eth0": 10000})
    data = row.to_json()
    assert data["pod"] == {"name": "web-1", "namespace": "shop"}
    assert (data["health"], data["active_slave"], data["netns_inode"]) == \
        ("ok", "eth0", 4026532999)
    assert [s["name"] for s in data["slaves"]] == ["eth0", "eth1"]
    assert data["slaves"][0]["speed_mbps"] == 10000 and data["failovers"] is None
    json.dumps(data)


# -- the CLI ----------------------------------------------------------------------------------
def _bondctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bondctl.cli", *args], capture_output=True,
                          text=True, env={**os.environ, "BONDCTL_STATE_ROOT": "/var/lib/cni"})


@pytest.mark.parametrize("args,code,message", [
    (["pods", "--state-dir", "rel"], 2, "must be an absolute path"),
    (["monitor", "--metrics-address", "nope"], 2, "expected HOST:PORT"),
])
def test_bad_input_is_one_line_and_its_exit_code(args: list[str], code: int,
                                                  message: str) -> None:
    proc = _bondctl(*args)
    assert proc.returncode == code, proc
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_and_the_cni_path_do_not_load_prometheus_client() -> None:
    probe = ("import sys, runpy; sys.argv = ['bondctl', '--help']\n"
             "try:\n    runpy.run_module('bondctl.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "import bondctl.cni.plugin\n"
             "print(sorted(m for m in sys.modules if m.startswith(('prometheus_client', "
             "'bondctl.observe'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
