"""The sysfs backend against the real bonding driver: what it reads equals what iproute2 reads,
work in a pod namespace stays there, and a refused write leaves the bond as it was."""

from __future__ import annotations

import os
import time

import pytest

from bondctl.backend import StepError
from bondctl.backends.iproute2 import Iproute2Backend
from bondctl.backends.sysfs import SysfsBackend
from bondctl.model import BondSpec, BondState, diff
from bondctl.netns import CURRENT, resolve
from bondctl.ops import Bonds
from bondctl.options import OPTIONS
from bondctl.steps import MoveLink, SetBond, SetLink

CONFIGS = {
    "lacp": ("802.3ad", {"lacp_rate": "fast", "ad_actor_system": "02:00:00:00:00:42"}),
    "ab-arp": ("active-backup", {"miimon": 0, "arp_interval": 100,
                                 "arp_ip_target": "192.0.2.1,192.0.2.2", "primary": "@1"}),
    "tlb": ("balance-tlb", {"tlb_dynamic_lb": 0}),
}


def blind_prio(state: BondState) -> BondState:
    """sysfs has no file for a slave's prio: the one field the readers may differ in."""
    return state._replace(slaves=tuple(s._replace(prio=None) for s in state.slaves))


def answer_arp(links):
    """Bridge the veth peers and give the bridge the ARP targets: the ARP monitor then sees
    replies on the active slave and traffic on the backup, and stops flapping."""
    peer = links.peer_ns
    peer.batch(["link add br0 type bridge", "addr add 192.0.2.1/24 dev br0",
                "addr add 192.0.2.2/24 dev br0", "addr add 192.0.2.9/24 dev br0",
                *(f"link set {p} master br0" for p in links.peers), "link set br0 up"])


def read(path):
    with open(path) as handle:
        return handle.read()


def info_data(ns, name):
    link = ns.link(name)
    assert link is not None, f"{name} is not in {ns.name}"
    return link["linkinfo"]["info_data"]


@pytest.mark.parametrize("maker", ["sysfs", "iproute2"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_reads_equal_iproute2(netns, make_links, config, maker):
    mode, options = CONFIGS[config]
    links = make_links(netns, 2)
    slaves = list(links)
    if "arp_interval" in options:
        answer_arp(links)
    options = {k: slaves[1] if v == "@1" else v for k, v in options.items()}
    made_by = SysfsBackend() if maker == "sysfs" else Iproute2Backend()
    spec = BondSpec.build("bond0", mode, options, slaves)
    Bonds(made_by, netns.name).create(spec)
    ns = resolve(netns.name)
    sysfs, iproute2 = SysfsBackend(), Iproute2Backend()
    # 802.3ad state (ad_info, aggregator ids) settles over a few LACP ticks: compare a sysfs
    # read taken between two equal iproute2 reads.
    for _ in range(20):
        before = iproute2.read("bond0", ns)
        seen = sysfs.read("bond0", ns)
        after = iproute2.read("bond0", ns)
        if before == after:
            break
        time.sleep(0.2)
    assert before == after, "the bond never held still"
    assert seen.slaves[0].prio is None and before.slaves[0].prio == 0
    # sysfs sees every option but those without a file (ns_ip6_target, coupled_control).
    unseen = set(before.options) - set(seen.options)
    assert unseen <= {n for n, o in OPTIONS.items() if o.sysfs is None}
    assert "ns_ip6_target" in unseen and not set(seen.options) - set(before.options)
    before = before._replace(options={k: v for k, v in before.options.items()
                                      if k not in unseen})
    assert blind_prio(seen) == blind_prio(before)
    assert diff(spec, seen) == []
    assert seen.slave_names == tuple(slaves)


def test_work_in_a_pod_namespace_stays_there(netns, make_netns, make_links):
    other = make_netns()
    slaves = list(make_links(netns, 2))
    mounts_before = read("/proc/self/mountinfo")
    bonds = Bonds(SysfsBackend(), netns.name)
    bonds.create(BondSpec.build("bsys7", "active-backup", {"miimon": 100}, slaves))
    assert info_data(netns, "bsys7")["mode"] == "active-backup"
    assert not os.path.exists("/sys/class/net/bsys7")  # not in the test's own namespace
    assert "bsys7" not in read("/sys/class/net/bonding_masters").split()
    assert other.link("bsys7") is None
    assert [b.name for b in SysfsBackend().list_bonds(resolve(other.name))] == []
    # The child's private /sys never shows up in the caller's mount table.
    assert read("/proc/self/mountinfo") == mounts_before
    bonds.delete("bsys7")
    assert netns.link("bsys7") is None


def test_current_namespace_works_in_process(netns):
    name = f"bsc{os.getpid() % 100000}"
    backend = SysfsBackend()
    try:
        Bonds(backend, None).create(BondSpec.build(name, "balance-xor",
                                                   {"xmit_hash_policy": "layer2+3"}))
        with open(f"/sys/class/net/{name}/bonding/xmit_hash_policy") as handle:
            assert handle.read().split()[0] == "layer2+3"
        assert backend.read(name, CURRENT).options["xmit_hash_policy"] == "layer2+3"
        assert name in {link.name for link in backend.links(CURRENT)}
    finally:
        if os.path.exists(f"/sys/class/net/{name}"):
            with open("/sys/class/net/bonding_masters", "w") as handle:
                handle.write(f"-{name}\n")
    assert not os.path.exists(f"/sys/class/net/{name}")


def test_failed_set_restores_what_was_written(netns, make_links):
    slaves = list(make_links(netns, 2))
    Bonds(SysfsBackend(), netns.name).create(
        BondSpec.build("bond0", "active-backup", {"miimon": 100}, slaves))
    before = info_data(netns, "bond0")
    step = SetBond("bond0", {"miimon": 300, "updelay": 600, "primary": slaves[1],
                             "lacp_rate": "fast"})
    with pytest.raises(StepError) as caught:
        SysfsBackend().execute([step], resolve(netns.name))
    assert caught.value.step == step and caught.value.done == 0
    assert "lacp_rate" in str(caught.value)
    assert "not supported in the bond's current mode" in str(caught.value)
    after = info_data(netns, "bond0")
    assert (after["miimon"], after["updelay"], after.get("primary")) == (100, 0, None)
    assert after == before


def test_failed_set_restores_side_effects_and_lists(netns, make_links):
    """Switching to the ARP monitor turns miimon off and fills the target list: all of it is
    put back, and the bond taken down earlier in the same call comes up again."""
    links = make_links(netns, 2)
    slaves = list(links)
    answer_arp(links)
    Bonds(SysfsBackend(), netns.name).create(BondSpec.build(
        "bond0", "active-backup",
        {"miimon": 0, "arp_interval": 100, "arp_ip_target": "192.0.2.9"}, slaves))
    before = info_data(netns, "bond0")
    steps = [
        SetLink("bond0", up=False),
        SetBond("bond0", {"miimon": 100, "updelay": 200}),
        SetBond("bond0", {"arp_interval": 300, "arp_ip_target": ("192.0.2.1", "192.0.2.2"),
                          "active_slave": "ghost0"}),
    ]
    with pytest.raises(StepError) as caught:
        SysfsBackend().execute(steps, resolve(netns.name))
    assert caught.value.step == steps[2]
    assert "active_slave" in str(caught.value) and "were undone" in str(caught.value)
    assert caught.value.done == 0
    after = info_data(netns, "bond0")
    assert (after["miimon"], after["arp_interval"], after["arp_ip_target"]) == (
        0, 100, ["192.0.2.9"])
    chosen = "active_slave"  # the kernel's own choice, whenever a slave comes up
    assert {k: v for k, v in after.items() if k != chosen} == {
        k: v for k, v in before.items() if k != chosen}
    assert "UP" in netns.link("bond0")["flags"]


def test_kernel_reason_is_named(netns, make_links):
    slaves = list(make_links(netns, 2))
    Bonds(SysfsBackend(), netns.name).create(BondSpec.build("bond0", "802.3ad", {}, slaves))
    with pytest.raises(StepError) as caught:
        SysfsBackend().execute([SetBond("bond0", {"lacp_rate": "fast"})], resolve(netns.name))
    message = str(caught.value)
    assert "Device or resource busy" in message and "must be down" in message
    assert info_data(netns, "bond0")["ad_lacp_rate"] == "slow"


def test_move_link_between_namespaces(netns, make_netns, make_links):
    other = make_netns()
    (name,) = make_links(netns, 1)
    backend = SysfsBackend()
    backend.execute([MoveLink(name, resolve(other.name), "moved0")], resolve(netns.name))
    assert netns.link(name) is None and other.link("moved0") is not None
    backend.execute([MoveLink("moved0", resolve(netns.name), name)], resolve(other.name))
    assert other.link("moved0") is None and netns.link(name) is not None
