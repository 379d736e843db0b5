"""The sysfs backend's pure parts: reading sysfs text, rendering writes, the undo journal."""

from __future__ import annotations

import os

import pytest

from bondctl.backends import sysfs_netns
from bondctl.backends.sysfs import RenderContext, SysfsBackend, render_step
from bondctl.backends.sysfs_tree import (
    ad_info,
    bond_options,
    parse_option,
    read_links,
    to_bonds,
    to_link,
)
from bondctl.backends.sysfs_writes import RESTORE_ORDER, Writer
from bondctl.errors import KernelError, ValidationError
from bondctl.netns import CURRENT, Netns
from bondctl.options import OPTIONS
from bondctl.steps import CreateBond, DeleteLink, MoveLink, SetBond, SetLink, SetSlave


# -- sysfs text -> canonical values ------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("mode", "802.3ad 4", "802.3ad"),
        ("mode", "balance-rr 0", "balance-rr"),
        ("xmit_hash_policy", "layer3+4 1", "layer3+4"),
        ("arp_validate", "filter_backup 6", "filter_backup"),
        ("lacp_rate", "fast 1", "fast"),
        ("lacp_active", "on 1", 1),
        ("lacp_active", "off 0", 0),
        ("use_carrier", "1", 1),
        ("miimon", "100\n", 100),
        ("arp_ip_target", "192.0.2.1 192.0.2.2", ("192.0.2.1", "192.0.2.2")),
        ("arp_ip_target", "", ()),
        ("primary", "", ""),
        ("active_slave", "eth1", "eth1"),
        ("ad_actor_system", "02:00:00:00:00:42", "02:00:00:00:00:42"),
        ("ad_actor_sys_prio", "", None),  # empty outside 802.3ad
        ("ad_user_port_key", "", None),
        ("miimon", None, None),  # no such file on this kernel
    ],
)
def test_parse_option(name, text, value):
    assert parse_option(OPTIONS[name], text) == value


def test_options_without_a_file_are_not_seen():
    options = bond_options({"mode": "active-backup 1", "miimon": "100"})
    assert options == {"miimon": 100}
    assert "ns_ip6_target" not in bond_options({"ns_ip6_target": "2001:db8::1"})


def test_ad_info():
    files = {"ad_aggregator": "1", "ad_num_ports": "2", "ad_actor_key": "9",
             "ad_partner_key": "1", "ad_partner_mac": "00:00:00:00:00:00"}
    assert ad_info(files) == {"aggregator": 1, "num_ports": 2, "actor_key": 9,
                              "partner_key": 1, "partner_mac": "00:00:00:00:00:00"}
    assert ad_info({**files, "ad_aggregator": "0"}) is None  # no active aggregator
    assert ad_info({k: "" for k in files}) is None  # not 802.3ad


# -- a fake /sys/class/net ---------------------------------------------------------------------
def put(root, path, text):
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text + "\n")


def fake_link(root, name, index, flags="0x1003", master=None, devtype=None, slave=None):
    for file, text in {"ifindex": str(index), "mtu": "1500", "address": f"02:00:00:00:00:0{index}",
                       "operstate": "up", "flags": flags, "statistics/rx_bytes": "10",
                       "statistics/tx_bytes": "20"}.items():
        put(root, f"{name}/{file}", text)
    put(root, f"{name}/uevent", f"DEVTYPE={devtype}\nINTERFACE={name}" if devtype
        else f"INTERFACE={name}")
    if master:
        os.symlink(f"../{master}", root / name / "master")
    for file, text in (slave or {}).items():
        put(root, f"{name}/bonding_slave/{file}", text)


@pytest.fixture
def tree(tmp_path):
    put(tmp_path, "bonding_masters", "bond0")
    bonding = {"mode": "802.3ad 4", "miimon": "100", "lacp_rate": "fast 1",
               "lacp_active": "on 1", "arp_ip_target": "", "primary": "", "active_slave": "",
               "ad_actor_system": "02:00:00:00:00:42", "ad_actor_sys_prio": "65535",
               "ad_aggregator": "1", "ad_num_ports": "1", "ad_actor_key": "9",
               "ad_partner_key": "1", "ad_partner_mac": "00:00:00:00:00:00",
               "queue_id": "eth0:2 eth1:0", "slaves": "eth0 eth1", "mii_status": "up"}
    fake_link(tmp_path, "bond0", 4, flags="0x1403", devtype="bond")
    for file, text in bonding.items():
        put(tmp_path, f"bond0/bonding/{file}", text)
    fake_link(tmp_path, "eth1", 3, master="bond0", slave={
        "state": "backup", "mii_status": "going down", "link_failure_count": "3",
        "perm_hwaddr": "02:00:00:00:00:13", "queue_id": "0", "ad_aggregator_id": "N/A"})
    fake_link(tmp_path, "eth0", 2, master="bond0", slave={
        "state": "active", "mii_status": "up", "link_failure_count": "0",
        "perm_hwaddr": "02:00:00:00:00:02", "queue_id": "2", "ad_aggregator_id": "1"})
    fake_link(tmp_path, "lo", 1, flags="0x9", devtype=None)
    return tmp_path


def test_links_from_the_tree(tree):
    links = {link.name: link for link in map(to_link, read_links(str(tree)))}
    assert sorted(links) == ["bond0", "eth0", "eth1", "lo"]
    assert links["bond0"].kind == "bond" and links["bond0"].up and links["bond0"].index == 4
    assert links["eth1"].master == "bond0" and links["eth1"].perm_mac == "02:00:00:00:00:13"
    assert links["eth0"].perm_mac is None  # the same as its address
    assert (links["lo"].operstate, links["lo"].rx_bytes, links["lo"].tx_bytes) == ("UP", 10, 20)


def test_bonds_from_the_tree(tree):
    (bond,) = to_bonds(read_links(str(tree), detail=True), Netns("/x", "ns1"))
    assert (bond.name, bond.mode, bond.up, bond.mtu, bond.netns) == (
        "bond0", "802.3ad", True, 1500, "ns1")
    assert bond.options["lacp_rate"] == "fast" and bond.options["lacp_active"] == 1
    assert bond.options["ad_actor_system"] == "02:00:00:00:00:42"
    assert bond.options["arp_ip_target"] == () and bond.active_slave is None
    assert bond.ad_info == {"aggregator": 1, "num_ports": 1, "actor_key": 9, "partner_key": 1,
                            "partner_mac": "00:00:00:00:00:00"}
    assert bond.slave_names == ("eth0", "eth1")  # by ifindex
    eth0, eth1 = bond.slaves
    assert (eth0.state, eth0.queue_id, eth0.ad_aggregator_id, eth0.prio) == ("active", 2, 1, None)
    assert (eth1.mii_status, eth1.link_failure_count, eth1.ad_aggregator_id) == (
        "going_down", 3, None)


# -- --dry-run text ----------------------------------------------------------------------------
def test_render_create_and_enslave():
    known = RenderContext(set(), {})
    step = CreateBond("bond0", "active-backup",
                      {"miimon": 0, "arp_interval": 100,
                       "arp_ip_target": ("192.0.2.1", "192.0.2.2")}, mtu=9000,
                      mac="02:00:00:00:00:01")
    assert render_step(step, known) == [
        "echo +bond0 > /sys/class/net/bonding_masters",
        "ip link set dev bond0 address 02:00:00:00:00:01  # rtnetlink",
        "echo active-backup > /sys/class/net/bond0/bonding/mode",
        "echo 0 > /sys/class/net/bond0/bonding/miimon",
        "echo 100 > /sys/class/net/bond0/bonding/arp_interval",
        "echo +192.0.2.1 > /sys/class/net/bond0/bonding/arp_ip_target",
        "echo +192.0.2.2 > /sys/class/net/bond0/bonding/arp_ip_target",
        "echo 9000 > /sys/class/net/bond0/mtu",
    ]
    assert render_step(SetLink("eth0", up=False), known) == [
        "echo $(( $(cat /sys/class/net/eth0/flags) & ~0x1 )) > /sys/class/net/eth0/flags"]
    assert render_step(SetLink("eth0", master="bond0"), known) == [
        "echo +eth0 > /sys/class/net/bond0/bonding/slaves"]
    assert render_step(SetSlave("eth0", {"queue_id": 3}), known) == [
        "echo eth0:3 > /sys/class/net/eth0/master/bonding/queue_id"]
    assert render_step(SetLink("eth0", up=True), known) == [
        "echo $(( $(cat /sys/class/net/eth0/flags) | 0x1 )) > /sys/class/net/eth0/flags"]
    # The list rendered by the create is what a later SetBond of the same plan clears.
    assert render_step(SetBond("bond0", {"arp_ip_target": ("192.0.2.3",)}), known) == [
        "echo -192.0.2.1 > /sys/class/net/bond0/bonding/arp_ip_target",
        "echo -192.0.2.2 > /sys/class/net/bond0/bonding/arp_ip_target",
        "echo +192.0.2.3 > /sys/class/net/bond0/bonding/arp_ip_target",
    ]


def test_render_change_release_delete_move():
    known = RenderContext({"bond0"}, {"bond0": {"arp_ip_target": ("192.0.2.9",)}})
    assert render_step(SetBond("bond0", {"lacp_rate": "fast", "primary": ""}), known) == [
        "echo fast > /sys/class/net/bond0/bonding/lacp_rate",
        "echo '' > /sys/class/net/bond0/bonding/primary",
    ]
    assert render_step(SetBond("bond0", {"arp_ip_target": ()}), known) == [
        "echo -192.0.2.9 > /sys/class/net/bond0/bonding/arp_ip_target"]
    assert render_step(SetLink("eth0", master=""), known) == [
        "echo -eth0 > /sys/class/net/eth0/master/bonding/slaves"]
    assert render_step(SetLink("eth0", new_name="net1", mtu=1400), known) == [
        "ip link set dev eth0 name net1  # rtnetlink",
        "echo 1400 > /sys/class/net/net1/mtu",
    ]
    assert render_step(DeleteLink("bond0"), known) == [
        "echo -bond0 > /sys/class/net/bonding_masters"]
    assert render_step(DeleteLink("veth9"), known) == ["ip link delete dev veth9  # rtnetlink"]
    assert render_step(MoveLink("eth0", Netns("/run/netns/pod", "pod"), "net1"), known) == [
        "ip link set dev eth0 netns pod name net1  # rtnetlink"]


def test_render_names_the_namespace():
    lines = SysfsBackend().render([CreateBond("bond0", "balance-rr", {})],
                                  Netns("/run/netns/pod", "pod"))
    assert lines[0] == ("echo +bond0 > /sys/class/net/bonding_masters"
                        "  # in netns pod, /sys mounted there")
    assert SysfsBackend().render([SetLink("eth0", master="bond0")], CURRENT) == [
        "echo +eth0 > /sys/class/net/bond0/bonding/slaves"]


# -- what the backend offers -------------------------------------------------------------------
def test_offers_only_options_with_a_sysfs_file():
    assert "ns_ip6_target" not in SysfsBackend.options
    assert "coupled_control" not in SysfsBackend.options
    assert "mode" not in SysfsBackend.options and "lacp_rate" in SysfsBackend.options
    assert SysfsBackend.slave_options == {"queue_id"}
    assert (SysfsBackend.name, SysfsBackend.priority) == ("sysfs", 10)


# -- the undo journal, on plain files ----------------------------------------------------------
def test_restore_order():
    assert RESTORE_ORDER[0] == "mode"
    assert RESTORE_ORDER[-2:] == ["primary", "active_slave"]
    assert RESTORE_ORDER.index("miimon") < RESTORE_ORDER.index("arp_interval")
    assert sorted(RESTORE_ORDER) == sorted(OPTIONS)


def test_a_refused_write_undoes_the_call(tmp_path):
    """Plain files stand in for the kernel's: a directory where a file should be refuses the
    write (EISDIR), as the kernel refuses a value."""
    for file, text in {"mode": "active-backup 1", "miimon": "100", "updelay": "0",
                       "xmit_hash_policy": "layer2 0"}.items():
        put(tmp_path, f"bond0/bonding/{file}", text)
    (tmp_path / "bond0/bonding/lacp_rate").mkdir()
    put(tmp_path, "eth0/flags", "0x1003")
    steps = [
        SetLink("eth0", up=False),
        SetBond("bond0", {"miimon": 300, "updelay": 600}),
        SetBond("bond0", {"xmit_hash_policy": "layer3+4", "lacp_rate": "fast"}),
    ]
    result = Writer(str(tmp_path)).run(steps)
    assert result["failed"] == 2 and result["undo_errors"] == []
    assert "lacp_rate" in result["reason"] and "Is a directory" in result["reason"]
    files = {f: (tmp_path / "bond0/bonding" / f).read_text()
             for f in ("miimon", "updelay", "xmit_hash_policy")}
    assert files == {"miimon": "100\n", "updelay": "0\n", "xmit_hash_policy": "layer2\n"}
    assert (tmp_path / "eth0/flags").read_text() == "0x1003\n"


def test_names_are_checked_before_any_path(tmp_path):
    result = Writer(str(tmp_path)).run([SetLink("eth0", master="../../etc")])
    assert result["failed"] == 0 and "forbidden characters" in result["reason"]
    with pytest.raises(ValidationError, match="forbidden characters"):
        SysfsBackend().execute([SetBond("bond0", {"primary": "a/b"})], CURRENT)


# -- the helper process ------------------------------------------------------------------------
def test_current_namespace_runs_in_process():
    assert sysfs_netns.run(CURRENT, os.getpid) == os.getpid()


def test_child_failure_comes_back_as_kernel_error(tmp_path):
    not_a_netns = tmp_path / "plain"
    not_a_netns.write_text("")
    with pytest.raises(KernelError, match="not a network namespace"):
        sysfs_netns.run(Netns(str(not_a_netns), None), lambda: 1)
