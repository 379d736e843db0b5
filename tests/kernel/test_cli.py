"""The installed `bondctl` executable against the real bonding driver, for every backend.

Each test runs bondctl as a subprocess with --netns and --backend, then reads the kernel back
on its own (`ip -j -d`, link notifications): the CLI's word is never the evidence.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bondctl.netlink import (
    RTNLGRP_IPV4_IFADDR,
    RTNLGRP_IPV4_ROUTE,
    RTNLGRP_IPV6_IFADDR,
    RTNLGRP_IPV6_ROUTE,
    RTNLGRP_LINK,
    Rtnl,
)
from bondctl.options import OPTIONS
from bondctl.registry import Registry

BACKENDS = sorted(Registry().backends())


def bondctl_path() -> str:
    beside = Path(sys.executable).with_name("bondctl")
    found = str(beside) if beside.exists() else shutil.which("bondctl")
    assert found, "the bondctl console script is not installed (pip install -e .)"
    return found


def bondctl(*args: str, check: bool = True, stdin: str | None = None):
    proc = subprocess.run([bondctl_path(), *args], capture_output=True, text=True,
                          input=stdin, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                            "NO_COLOR": "1", "COLUMNS": "120"}, timeout=120)
    if check:
        assert proc.returncode == 0, f"bondctl {' '.join(args)}: {proc.stderr}"
    return proc


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def info_data(ns, name):
    link = ns.link(name)
    assert link is not None and link["linkinfo"]["info_kind"] == "bond"
    return link["linkinfo"]["info_data"]


def kernel_value(data, name):
    opt = OPTIONS[name]
    raw = data.get(opt.json_key)
    if raw is None:
        raw = {"ipv4list": (), "ipv6list": (), "ifname": ""}.get(opt.kind, opt.default)
    return opt.parse(raw)


def addresses_of(ns, name):
    return {f"{a['local']}/{a['prefixlen']}" for link in ns.ip_json("address", "show", "dev", name)
            for a in link["addr_info"]}


def master_of(ns, name):
    return (ns.link(name) or {}).get("master")


def test_create_show_set_release_delete(backend, netns, make_links):
    eth0, eth1 = make_links(netns, 2)
    cli = ("--netns", netns.name, "--backend", backend)
    out = bondctl(*cli, "create", "bond0", "--mode", "active-backup", "--miimon", "100",
                  "-s", eth0, "-s", eth1, "--primary", eth1)
    assert "created bond0" in out.stdout
    data = info_data(netns, "bond0")
    assert (data["mode"], data["miimon"], data["primary"]) == ("active-backup", 100, eth1)
    assert master_of(netns, eth0) == master_of(netns, eth1) == "bond0"

    shown = json.loads(bondctl(*cli, "show", "bond0", "--json").stdout)
    link = netns.link("bond0")
    assert (shown["mode"], shown["mtu"], shown["mac"]) == (data["mode"], link["mtu"],
                                                          link["address"])
    for name, value in shown["options"].items():
        expected = kernel_value(data, name)
        assert (tuple(value) if isinstance(value, list) else value) == expected, name
    assert shown["active_slave"] == data["active_slave"] == eth1
    assert sorted(s["name"] for s in shown["slaves"]) == sorted([eth0, eth1])
    for slave in shown["slaves"]:
        kernel = netns.link(slave["name"])["linkinfo"]["info_slave_data"]
        assert slave["state"] == kernel["state"].lower()
        assert slave["mii_status"] == kernel["mii_status"].lower()
        assert slave["perm_hwaddr"] == kernel["perm_hwaddr"]

    bondctl(*cli, "set", "bond0", "miimon=200", "downdelay=400")
    data = info_data(netns, "bond0")
    assert (data["miimon"], data["downdelay"]) == (200, 400)

    out = bondctl(*cli, "set", "bond0", "mode=802.3ad", "lacp_rate=fast")
    assert "taken down" in out.stderr
    data = info_data(netns, "bond0")
    assert (data["mode"], data["ad_lacp_rate"]) == ("802.3ad", "fast")
    assert master_of(netns, eth0) == master_of(netns, eth1) == "bond0"

    bondctl(*cli, "release", "bond0", eth0)
    released = netns.link(eth0)
    assert "master" not in released and "UP" in released["flags"]

    bondctl(*cli, "delete", "bond0")
    assert netns.link("bond0") is None
    assert "master" not in netns.link(eth1) and "UP" in netns.link(eth1)["flags"]


def test_refusals_change_nothing(backend, netns, make_links):
    eth0, eth1 = make_links(netns, 2)
    cli = ("--netns", netns.name, "--backend", backend)
    before = netns.links()
    bad = bondctl(*cli, "create", "bond0", "--mode", "active-backup", "--lacp-rate", "fast",
                  "-s", eth0, check=False)
    assert bad.returncode == 2 and "not supported in mode" in bad.stderr
    planned = bondctl(*cli, "--dry-run", "create", "bond0", "--mode", "balance-xor", "-s",
                      eth0, "-s", eth1)
    assert planned.stdout.strip()
    missing = bondctl(*cli, "enslave", "bond9", eth0, check=False)
    assert missing.returncode == 3
    assert netns.links() == before


def link_events(ns):
    return Rtnl.open(str(ns.path), groups=[RTNLGRP_LINK])


def drain(sock, seconds=1.0):
    return [(kind, link.name) for kind, link in sock.link_events(timeout=seconds)]


def all_events(ns):
    """Links, addresses and routes: a no-op apply must send none of them."""
    return Rtnl.open(str(ns.path), groups=[RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR,
                                           RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE,
                                           RTNLGRP_IPV6_ROUTE])


def settle(sock, quiet=1.5, limit=8.0):
    """Swallow notifications until none came for `quiet` seconds (IPv6 DAD ends late)."""
    deadline = time.monotonic() + limit
    while list(sock.notifications(timeout=quiet)) and time.monotonic() < deadline:
        pass


def test_apply_twice_changes_nothing_the_second_time(backend, netns, make_links, tmp_path):
    eth0, eth1, eth2 = make_links(netns, 3)
    cli = ("--netns", netns.name, "--backend", backend)
    path = tmp_path / "bonds.yaml"
    path.write_text(f"""
- name: bond0
  mode: active-backup
  options: {{miimon: 100, primary: {eth0}, numGratArp: 2}}
  slaves: [{eth0}, {eth1}]
  mtu: 1400
  addresses: [10.61.0.1/24, 2001:db8:61::1/64]
  routes: [{{to: 10.62.0.0/16, via: 10.61.0.254}}]
  vlans: [{{id: 61, addresses: [10.63.0.1/24]}}]
""")
    first = bondctl(*cli, "apply", "-f", str(path))
    assert "+ bond0" in first.stdout
    data = info_data(netns, "bond0")
    assert (data["miimon"], data["primary"], data["num_peer_notif"]) == (100, eth0, 2)
    assert netns.link("bond0")["mtu"] == 1400
    assert addresses_of(netns, "bond0") >= {"10.61.0.1/24", "2001:db8:61::1/64"}
    assert addresses_of(netns, "bond0.61") >= {"10.63.0.1/24"}
    vlan = netns.link("bond0.61")
    assert (vlan["link"], vlan["linkinfo"]["info_data"]["id"]) == ("bond0", 61)
    route = json.loads(netns.ip("-j", "route", "show", "10.62.0.0/16"))
    assert [(r["gateway"], r["dev"]) for r in route] == [("10.61.0.254", "bond0")]
    failures = {s: netns.link(s)["linkinfo"]["info_slave_data"]["link_failure_count"]
                for s in (eth0, eth1)}

    with all_events(netns) as sock:
        settle(sock)  # late notifications of the first apply (carrier, IPv6 DAD)
        second = bondctl(*cli, "apply", "-f", str(path))
        events = [m.type for m in sock.notifications(timeout=1.0)]
    assert "up to date" in second.stdout
    assert events == [], f"a no-op apply sent netlink notifications: {events}"
    assert {s: netns.link(s)["linkinfo"]["info_slave_data"]["link_failure_count"]
            for s in (eth0, eth1)} == failures
    assert bondctl(*cli, "check", "-f", str(path)).returncode == 0

    # Out-of-band drift: check says so with exit 6, apply repairs only that.
    netns.ip("link", "set", "bond0", "type", "bond", "miimon", "300")
    drift = bondctl(*cli, "check", "-f", str(path), check=False)
    assert drift.returncode == 6 and "FAIL" in drift.stdout and "miimon" in drift.stderr
    path.write_text(path.read_text().replace(f"[{eth0}, {eth1}]", f"[{eth0}, {eth1}, {eth2}]"))
    diff = bondctl(*cli, "diff", "-f", str(path), "--json")
    changes = {c["what"] for c in json.loads(diff.stdout)[0]["changes"]}
    assert changes == {"miimon", "slaves"}
    bondctl(*cli, "apply", "-f", str(path))
    assert info_data(netns, "bond0")["miimon"] == 100
    assert master_of(netns, eth2) == "bond0"
    assert bondctl(*cli, "check", "-f", str(path)).returncode == 0


def test_apply_sets_a_new_mac_where_fail_over_mac_lets_it_take(backend, netns, make_links,
                                                               tmp_path):
    # In active-backup the kernel ignores a live bond's new MAC while fail_over_mac is not
    # none: apply sets it before turning the option on, and refuses when it is held both ways.
    eth0, eth1 = make_links(netns, 2)
    cli = ("--netns", netns.name, "--backend", backend)
    bondctl(*cli, "create", "bond0", "--mode", "active-backup", "--miimon", "100",
            "-s", eth0, "-s", eth1)
    path = tmp_path / "bond.json"

    def want(mac):
        path.write_text(json.dumps({
            "name": "bond0", "mode": "active-backup", "slaves": [eth0, eth1], "mac": mac,
            "options": {"miimon": 100, "fail_over_mac": "follow"}}))

    want("02:00:00:00:00:61")
    bondctl(*cli, "apply", "-f", str(path))
    assert netns.link("bond0")["address"] == "02:00:00:00:00:61"
    assert info_data(netns, "bond0")["fail_over_mac"] == "follow"
    assert {master_of(netns, s) for s in (eth0, eth1)} == {"bond0"}

    want("02:00:00:00:00:62")
    refused = bondctl(*cli, "apply", "-f", str(path), check=False)
    assert refused.returncode == 2, refused.stderr
    assert "fail_over_mac" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert netns.link("bond0")["address"] == "02:00:00:00:00:61"
    assert {master_of(netns, s) for s in (eth0, eth1)} == {"bond0"}

    # Released for the change, the bond would come back with its first slave's MAC.
    bondctl(*cli, "set", "bond0", "fail_over_mac=none")
    assert info_data(netns, "bond0")["fail_over_mac"] == "none"
    assert netns.link("bond0")["address"] == "02:00:00:00:00:61"
    assert {master_of(netns, s) for s in (eth0, eth1)} == {"bond0"}


def test_watch_reports_a_failover(netns, make_links):
    links = make_links(netns, 2)
    cli = ("--netns", netns.name)
    bondctl(*cli, "create", "bond0", "--mode", "active-backup", "--miimon", "50",
            "-s", links[0], "-s", links[1], "--primary", links[0])
    proc = subprocess.Popen([bondctl_path(), *cli, "watch", "bond0", "--json",
                             "--interval", "0.2", "--count", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["bond"]["active_slave"] == links[0]
        links.peer_ns.ip("link", "set", links.peers[0], "down")
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while time.monotonic() < deadline:
            frame = json.loads(proc.stdout.readline())
            seen += [e["text"] for e in frame["events"]]
            if any("failover" in t for t in seen):
                break
        assert f"{links[0]} link down" in seen
        assert f"failover: active slave {links[0]} -> {links[1]}" in seen
        assert frame["bond"]["active_slave"] == links[1]
    finally:
        proc.kill()
        proc.wait()


def test_demo_runs_and_leaves_nothing_behind():
    before = set(Path("/run/netns").iterdir())
    started = time.monotonic()
    out = bondctl("demo", "--here", "--pace", "0")
    assert time.monotonic() - started < 60
    assert "failover: active slave eth0 -> eth1" in out.stdout
    assert out.stdout.count("3/3 replies") == 2
    assert "nothing is left behind" in out.stdout
    assert set(Path("/run/netns").iterdir()) == before


def test_options_without_effect_in_the_mode_are_set_and_warned_about(netns, make_links,
                                                                     tmp_path):
    """The catalogue's one rule (bondctl.options.ineffective), for create and apply: the
    kernel keeps such an option, so it is set, but never in silence."""
    eth0, eth1 = make_links(netns, 2)
    done = bondctl("--netns", netns.name, "create", "bond0", "--mode", "active-backup",
                   "--min-links", "1", "--xmit-hash-policy", "layer3+4", "-s", eth0)
    assert "min_links has no effect in mode active-backup" in done.stderr
    assert "xmit_hash_policy has no effect in mode active-backup" in done.stderr
    data = info_data(netns, "bond0")
    assert (data["min_links"], data["xmit_hash_policy"]) == (1, "layer3+4")
    spec = tmp_path / "bond.yaml"
    spec.write_text(f"name: bond1\nmode: active-backup\n"
                    f"options: {{xmit_hash_policy: layer2+3}}\nslaves: [{eth1}]\n")
    done = bondctl("--netns", netns.name, "apply", "-f", str(spec))
    assert "xmit_hash_policy has no effect in mode active-backup" in done.stderr
    assert info_data(netns, "bond1")["xmit_hash_policy"] == "layer2+3"
