"""Other tools' files: import(export(x)) == x for every format, less exactly what the
warnings name; real tools' checks where they run here (netplan generate, nmcli --offline)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bondctl import formats
from bondctl.document import Bond, from_mapping
from bondctl.formats import networkd
from bondctl.ipconfig import IpConfig
from bondctl.model import BondSpec
from bondctl.options import OPTIONS

LACP = {
    "name": "bond0", "mode": "802.3ad",
    "options": {"miimon": 100, "updelay": 200, "lacp_rate": "fast", "xmit_hash_policy":
                "layer3+4", "min_links": 1, "ad_actor_sys_prio": 100, "ad_select": "count",
                "lacp_active": 0, "coupled_control": 0, "use_carrier": 1},
    "slaves": ["eth0", "eth1"], "mtu": 9000,
    "addresses": ["10.71.0.1/24", "2001:db8:71::1/64"],
    "routes": [{"to": "10.73.0.0/16", "via": "10.71.0.254", "metric": 100},
               {"to": "default", "via": "2001:db8:71::fe", "table": 200}],
    "vlans": [{"id": 71, "addresses": ["10.72.0.1/24"], "mtu": 1500,
               "routes": [{"to": "10.74.0.0/16", "via": "10.72.0.254"}]},
              {"id": 72, "name": "storage"}],
}
BACKUP = {
    "name": "bond1", "mode": "active-backup",
    "options": {"miimon": 50, "downdelay": 100, "primary": "eth3", "primary_reselect":
                "better", "fail_over_mac": "follow", "num_grat_arp": 3, "peer_notif_delay": 100,
                "all_slaves_active": 1, "resend_igmp": 2},
    "slaves": ["eth2", {"name": "eth3", "queue_id": 2}], "mac": "02:00:00:00:00:b1",
    "addresses": ["192.0.2.10/28"], "routes": [], "vlans": [],
}
ARP = {
    "name": "bond2", "mode": "balance-rr",
    "options": {"arp_interval": 200, "arp_ip_target": ["10.9.0.1", "10.9.0.2"],
                "arp_validate": "all", "arp_all_targets": "all", "arp_missed_max": 3,
                "packets_per_slave": 4},
    "slaves": ["eth4"], "addresses": [], "routes": [], "vlans": [],
}
TLB = {
    "name": "bond3", "mode": "balance-alb",
    "options": {"tlb_dynamic_lb": 0, "lp_interval": 5},
    "slaves": ["eth5", "eth6"], "addresses": ["10.80.0.1/16"], "routes": [], "vlans": [],
}
BONDS = [from_mapping(item) for item in (LACP, BACKUP, ARP, TLB)]


def can(fmt: str, bond: Bond, name: str) -> bool:
    opt = OPTIONS[name]
    if fmt in ("networkd", "netplan") and name == "lp_interval":  # sent only with ARP
        return bool(bond.spec.options.get("arp_interval"))
    return {"networkd": opt.networkd is not None, "netplan": opt.netplan is not None,
            "nmstate": opt.nmstate, "nm-keyfile": opt.nm, "ifupdown2": opt.ifupdown2}[fmt]


def expressible(bond: Bond, fmt: str) -> Bond:
    """What the format can carry of `bond`: the round trip must give exactly this."""
    spec = bond.spec
    options = {k: v for k, v in spec.options.items() if can(fmt, bond, k)}
    slave_options = {s.name: dict(s.options) for s in spec.slaves
                     if s.options and fmt == "nm-keyfile"}
    return Bond(BondSpec.build(spec.name, spec.mode, options, sorted(spec.slave_names),
                               mtu=spec.mtu, mac=spec.mac, slave_options=slave_options),
                None, bond.ip)


def normal(bond: Bond) -> Bond:
    """Slaves in name order; nothing managed (None) as nothing there (): a file that
    recreates a link says what it has, so an unmanaged field comes back empty."""
    spec = bond.spec
    vlans = tuple(v._replace(addresses=v.addresses or (), routes=v.routes or ())
                  for v in bond.ip.vlans or ())
    ip = IpConfig(bond.ip.addresses or (), bond.ip.routes or (), vlans)
    return Bond(spec._replace(slaves=tuple(sorted(spec.slaves))), None, ip)


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_import_of_export_gives_the_bonds_back_less_what_the_warnings_name(fmt):
    exported = formats.export(fmt, BONDS)
    parsed = formats.parse(fmt, exported.files)
    assert parsed.warnings == []
    assert sorted(map(normal, parsed.bonds)) == sorted(normal(expressible(b, fmt))
                                                       for b in BONDS)
    lost = {(b.spec.name, k) for b in BONDS for k in b.spec.options if not can(fmt, b, k)}
    lost |= {(b.spec.name, f"{s.name} queue_id") for b in BONDS for s in b.spec.slaves
             if s.options and fmt != "nm-keyfile"}
    for bond, what in lost:
        key = what.split()[-1]
        assert any(bond in w and key in w for w in exported.warnings), (fmt, bond, what)
    assert len(exported.warnings) == len(lost)
    again = formats.export(fmt, parsed.bonds)
    assert again.files == formats.export(fmt, [expressible(b, fmt) for b in parsed.bonds]).files


def test_export_spells_options_as_each_tool_does():
    files = formats.export("networkd", BONDS[:1]).files
    assert "MIIMonitorSec=100ms" in files["10-bond0.netdev"]
    assert "LACPTransmitRate=fast" in files["10-bond0.netdev"]
    assert "VLAN=bond0.71" in files["10-bond0.network"]
    assert "Bond=bond0" in files["10-eth0.network"]
    backup = formats.export("networkd", BONDS[1:2]).files
    assert "PrimarySlave=yes" in backup["10-eth3.network"]
    interfaces = formats.export("ifupdown2", BONDS[:1]).files["interfaces"]
    assert "bond-lacp-rate 1" in interfaces and "bond-slaves eth0 eth1" in interfaces
    assert "post-up ip route add 10.73.0.0/16 via 10.71.0.254 metric 100 dev bond0" in interfaces
    state = yaml.safe_load(formats.export("nmstate", BONDS[1:2]).files["bondctl.yml"])
    assert state["interfaces"][0]["link-aggregation"]["options"]["all_slaves_active"] == (
        "delivered")


def test_unknown_keys_in_foreign_files_are_named_not_dropped():
    parsed = formats.parse("networkd", {
        "b.netdev": "[NetDev]\nName=b\nKind=bond\n[Bond]\nMode=802.3ad\nFrobnicate=1\n"})
    assert parsed.warnings == ["networkd: b: [Bond] Frobnicate= is not a bonding option "
                               "bondctl knows; ignored"]
    parsed = formats.parse("ifupdown2", {"interfaces": "iface b\n  bond-slaves x\n"
                                                       "  post-up /bin/true\n"})
    assert "is not a route bondctl reads" in parsed.warnings[0]


# -- the real tools --------------------------------------------------------------------------
NMCLI = [Path("/usr/bin/nmcli"), Path("/var/cache/bondctl/nmcli/usr/bin/nmcli")]


def test_netplan_generate_makes_what_our_networkd_export_says(tmp_path):
    netplan = shutil.which("netplan")
    assert netplan, "netplan.io is not installed (scripts/setup.sh installs it)"
    etc = tmp_path / "etc" / "netplan"
    etc.mkdir(parents=True)
    files = formats.export("netplan", BONDS).files
    for name, text in files.items():
        (etc / name).write_text(text)
        (etc / name).chmod(0o600)
    proc = subprocess.run([netplan, "generate", "--root-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run" / "systemd" / "network"
    generated = {p.name: p.read_text() for p in out.iterdir()}
    theirs = networkd.parse(generated)
    both = [expressible(expressible(b, "netplan"), "networkd") for b in BONDS]
    ours = networkd.parse(formats.export("networkd", both).files)
    assert theirs.warnings == []
    # netplan writes LearnPacketIntervalSec= without ARPIntervalSec= too: networkd ignores it.
    applied = [expressible(b, "networkd") for b in theirs.bonds]
    assert sorted(map(normal, applied)) == sorted(map(normal, ours.bonds))


def _nmcli() -> Path:
    found = next((p for p in NMCLI if p.exists()), None)
    assert found, "nmcli is missing (scripts/setup.sh extracts it)"
    return found


def test_networkmanager_reads_every_key_of_our_keyfiles(tmp_path):
    nmcli = _nmcli()
    env = {"PATH": "/usr/bin:/bin"}
    for name, text in formats.export("nm-keyfile", BONDS).files.items():
        proc = subprocess.run([str(nmcli), "--offline", "connection", "modify",
                               "connection.autoconnect", "yes"], input=text,
                              capture_output=True, text=True, env=env, timeout=30)
        assert proc.returncode == 0, (name, proc.stderr)
        ours = networkd.read_ini(text)
        kept = {(s, k): v for s, pairs in networkd.read_ini(proc.stdout) for k, v in pairs}
        for section, pairs in ours:
            for key, value in pairs:
                assert kept.get((section, key)) == value, (name, section, key, value)


# nmstate is not packaged in Debian 12: its YAML API as documented (nmstate.io, "YAML API",
# Interfaces / Bond Interface / VLAN Interface / IP / Routes) is the schema checked here.
NMSTATE_BOND_OPTIONS = {
    "ad_actor_sys_prio", "ad_actor_system", "ad_select", "ad_user_port_key",
    "all_slaves_active", "arp_all_targets", "arp_interval", "arp_ip_target", "arp_validate",
    "downdelay", "fail_over_mac", "lacp_rate", "lp_interval", "miimon", "min_links",
    "num_grat_arp", "num_unsol_na", "packets_per_slave", "primary", "primary_reselect",
    "resend_igmp", "tlb_dynamic_lb", "updelay", "use_carrier", "xmit_hash_policy",
    "balance_slb"}
NMSTATE_MODES = {"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
                 "balance-tlb", "balance-alb"}


def _check_ip(section):
    assert set(section) <= {"enabled", "dhcp", "autoconf", "address"}
    assert isinstance(section["enabled"], bool)
    for address in section.get("address", []):
        assert set(address) == {"ip", "prefix-length"}
        assert isinstance(address["prefix-length"], int)


def test_nmstate_export_follows_the_documented_yaml_api():
    assert {o.name for o in OPTIONS.values() if o.nmstate and o.name != "mode"} <= (
        NMSTATE_BOND_OPTIONS)
    doc = yaml.safe_load(formats.export("nmstate", BONDS).files["bondctl.yml"])
    assert set(doc) <= {"interfaces", "routes"}
    names = {i["name"] for i in doc["interfaces"]}
    for iface in doc["interfaces"]:
        assert set(iface) <= {"name", "type", "state", "mtu", "mac-address", "ipv4", "ipv6",
                              "link-aggregation", "vlan"}
        assert iface["state"] in ("up", "down") and iface["type"] in ("bond", "vlan")
        _check_ip(iface["ipv4"])
        _check_ip(iface["ipv6"])
        if iface["type"] == "bond":
            agg = iface["link-aggregation"]
            assert set(agg) <= {"mode", "options", "port"} and agg["mode"] in NMSTATE_MODES
            assert set(agg["options"]) <= NMSTATE_BOND_OPTIONS
            assert all(isinstance(p, str) for p in agg["port"])
            if "all_slaves_active" in agg["options"]:
                assert agg["options"]["all_slaves_active"] in ("dropped", "delivered")
        else:
            assert set(iface["vlan"]) == {"base-iface", "id"}
            assert iface["vlan"]["base-iface"] in names
    for route in doc["routes"]["config"]:
        assert set(route) <= {"destination", "next-hop-interface", "next-hop-address",
                              "metric", "table-id"}
        assert route["next-hop-interface"] in names
