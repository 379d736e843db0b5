"""The harness itself, against a real bonding driver: if these fail, nothing else in the
kernel suite means anything."""

from __future__ import annotations

from tests.harness.kernel import KernelInfo
from tests.harness.netns import Netns, run_ip


def test_bond_reads_back_as_bond(netns: Netns) -> None:
    netns.ip("link", "add", "bond0", "type", "bond", "mode", "active-backup", "miimon", "100")
    link = netns.link("bond0")
    assert link is not None
    assert link["linkinfo"]["info_kind"] == "bond"
    assert link["linkinfo"]["info_data"]["mode"] == "active-backup"
    assert netns.link("nope0") is None
    assert "UP" in netns.link("lo")["flags"]


def test_veth_slaves_enslave(netns: Netns, make_links, peer_netns: Netns) -> None:
    slaves = make_links(netns, 2)
    assert slaves == ["eth0", "eth1"]
    netns.batch(
        [
            "link add bond0 type bond mode active-backup miimon 100",
            *(f"link set {s} master bond0" for s in slaves),
            "link set bond0 up",
        ]
    )
    for name in slaves:
        link = netns.link(name)
        assert link["master"] == "bond0"
        assert link["linkinfo"]["info_slave_kind"] == "bond"
    # The peers are up in the peer namespace, so the slaves see carrier once the bond is up.
    for peer in [*slaves.peers, "lo"]:
        assert "UP" in peer_netns.link(peer)["flags"]


def test_namespace_is_isolated(netns: Netns, make_netns) -> None:
    netns.ip("link", "add", "bondiso0", "type", "bond")
    assert "bondiso0" not in run_ip("-br", "link", "show")
    other = make_netns()
    assert other.link("bondiso0") is None
    assert [link["ifname"] for link in other.links()] == ["lo"]
    assert netns.path.exists()


def test_dummy_links_and_kernel_info(netns: Netns, make_links, kernel_info: KernelInfo) -> None:
    assert kernel_info.release >= (4,)
    dummies = make_links(netns, 3, kind="dummy", prefix="d")
    assert dummies == ["d0", "d1", "d2"] and dummies.peers == []
    assert all(netns.link(d)["linkinfo"]["info_kind"] == "dummy" for d in dummies)


def test_the_guest_runs_no_uevent_helper_as_a_node_does() -> None:
    """UML's kernel names /sbin/hotplug; a node's names none. With it, each of a bond's ~20
    uevents had the kernel start a process, on the time of whatever ran next."""
    with open("/proc/sys/kernel/hotplug") as helper:
        assert helper.read().strip() == ""
