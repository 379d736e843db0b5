"""The netlink backend against the real bonding driver, beyond the conformance suite: it reads
exactly what the iproute2 backend reads, the kernel's own error text reaches the caller, links
move between namespaces named by path and back home, and nothing is spawned on the way."""

from __future__ import annotations

import _posixsubprocess
import json
import os
import secrets
import subprocess

import pytest

from bondctl import netlink as rtnl
from bondctl.backend import StepError
from bondctl.backends.iproute2 import Iproute2Backend
from bondctl.backends.netlink import NetlinkBackend
from bondctl.model import BondSpec, BondState, diff
from bondctl.netns import CURRENT, Netns
from bondctl.ops import Bonds
from bondctl.options import OPTIONS
from bondctl.registry import Registry
from bondctl.steps import MoveLink, SetBond
from tests.harness.netns import IpError, run_ip

NETLINK = NetlinkBackend()
IPROUTE2 = Iproute2Backend()


def settled(ns, name: str) -> tuple[BondState, BondState]:
    """(netlink's read, iproute2's read) of one bond, taken while the kernel held still:
    link_failure_count, ad_info and operstate move on their own while slaves come up.

    Options this host's ip cannot print at all (no key in its JSON: the kernel is newer than
    iproute2, e.g. coupled_control on Debian's 6.1 with iproute2 6.1) are left out of ours,
    once checked to be exactly those."""
    where = Netns(str(ns.path), ns.name)
    for _ in range(20):
        before = IPROUTE2.read(name, where)
        ours = NETLINK.read(name, where)
        after = IPROUTE2.read(name, where)
        if before == after:
            break
    else:
        raise AssertionError(f"{name} never held still long enough to compare readers")
    printed = ns.link(name)["linkinfo"]["info_data"]
    unseen = set(ours.options) - set(after.options)
    assert {key for key in unseen if OPTIONS[key].json_key in printed} == set()
    assert unseen <= NEWER_THAN_IP
    kept = {key: value for key, value in ours.options.items() if key not in unseen}
    return ours._replace(options=kept), after


# What ip 6.1 cannot print but a kernel may report (Debian's 6.1.176 sends coupled_control).
NEWER_THAN_IP = {"coupled_control"}


def differences(ours: BondState, theirs: BondState) -> dict[str, tuple[object, object]]:
    """Field by field (options and slaves one by one): empty when the readers agree."""
    found: dict[str, tuple[object, object]] = {}
    for key in set(ours.options) | set(theirs.options):
        if ours.options.get(key, "<absent>") != theirs.options.get(key, "<absent>"):
            found[key] = (ours.options.get(key, "<absent>"), theirs.options.get(key, "<absent>"))
    for mine, other in zip(ours.slaves, theirs.slaves, strict=False):
        if mine != other:
            found[f"slave {mine.name}"] = (mine, other)
    for field in BondState._fields:
        if field not in ("options", "slaves") and getattr(ours, field) != getattr(theirs, field):
            found[field] = (getattr(ours, field), getattr(theirs, field))
    return found


CASES = {
    "lacp": ("802.3ad", {"lacp_rate": "fast", "ad_actor_system": "02:00:00:00:00:42",
                         "xmit_hash_policy": "layer3+4"}, {}),
    # Nobody answers the ARP targets: a long interval keeps the monitor from flipping slave
    # states between the two reads being compared.
    "active-backup": ("active-backup", {"arp_interval": 60000, "miimon": 0,
                                        "arp_ip_target": "192.0.2.1,192.0.2.2",
                                        "ns_ip6_target": ["2001:db8::1", "2001:db8::2"],
                                        "arp_validate": "active", "primary": "eth1"},
                      {"eth0": {"queue_id": 2, "prio": 5}}),
    "tlb": ("balance-tlb", {"tlb_dynamic_lb": 0, "lp_interval": 3}, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reads_exactly_what_iproute2_reads(netns, make_links, case):
    mode, options, slave_options = CASES[case]
    names = list(make_links(netns, 2))
    spec = BondSpec.build("bond0", mode, options, names, slave_options=slave_options)
    Bonds(NETLINK, netns.name).create(spec)
    ours, theirs = settled(netns, "bond0")
    assert differences(ours, theirs) == {}
    assert ours == theirs
    assert diff(spec, ours) == []
    # Spot checks against the kernel's own JSON, so that agreeing on a wrong value fails too.
    data = netns.link("bond0")["linkinfo"]["info_data"]
    assert ours.mode == data["mode"] == mode
    for name, value in spec.options.items():
        assert ours.options[name] == value, name
    if case == "lacp":
        assert data["ad_lacp_rate"] == "fast" and data["ad_actor_system"] == "02:00:00:00:00:42"
        assert ours.ad_info is not None and "aggregator" in ours.ad_info
    if case == "active-backup":
        assert set(data["ns_ip6_target"]) == {"2001:db8::1", "2001:db8::2"}
        assert (ours.slave("eth0").queue_id, ours.slave("eth0").prio) == (2, 5)
    if case == "tlb":
        assert data["tlb_dynamic_lb"] == 0 and "ad_actor_system" not in ours.options


def test_lists_and_links_match_iproute2(netns, make_links):
    names = list(make_links(netns, 4))
    bonds = Bonds(NETLINK, netns.name)
    bonds.create(BondSpec.build("bond0", "balance-xor", {"miimon": 100}, names[:2]))
    bonds.create(BondSpec.build("bond1", "active-backup", {"primary": names[3]}, names[2:],
                                mtu=1400))
    where = Netns(str(netns.path), netns.name)
    counters = {"rx_bytes": 0, "tx_bytes": 0}  # traffic moves them between two reads

    def read(backend):
        return [link._replace(**counters) for link in backend.links(where)]

    for _ in range(20):  # operstate moves while the slaves' carrier comes up: read when still
        before, ours, theirs = read(IPROUTE2), read(NETLINK), read(IPROUTE2)
        if before == theirs:
            break
    assert ours == theirs
    assert {link.name: link.master for link in ours if link.master} == {
        names[0]: "bond0", names[1]: "bond0", names[2]: "bond1", names[3]: "bond1"}
    assert [b.name for b in NETLINK.list_bonds(where)] == ["bond0", "bond1"]
    for name in ("bond0", "bond1"):
        mine, other = settled(netns, name)
        assert differences(mine, other) == {}
        assert mine == other


def test_kernel_error_text_reaches_the_step_error(netns, make_links):
    names = list(make_links(netns, 2))
    Bonds(NETLINK, netns.name).create(BondSpec.build("bond0", "802.3ad", {}, names))
    # ip prints the kernel's extended ack as "Error: TEXT."; the same request must carry it.
    with pytest.raises(IpError) as ip_failed:
        netns.ip("link", "set", "bond0", "type", "bond", "lacp_rate", "fast")
    kernel_text = ip_failed.value.stderr.strip().removeprefix("Error: ").rstrip(".")
    assert kernel_text and "Error:" in ip_failed.value.stderr
    where = Netns(str(netns.path), netns.name)
    with pytest.raises(StepError) as caught:
        NETLINK.execute([SetBond("bond0", {"lacp_rate": "fast"})], where)
    assert kernel_text in str(caught.value)
    assert caught.value.done == 0 and "lacp_rate=fast on bond0" in str(caught.value)
    assert netns.link("bond0")["linkinfo"]["info_data"]["ad_lacp_rate"] == "slow"


def _own_link(name: str) -> dict | None:
    """A link in the test process's own namespace, as ip sees it."""
    try:
        return json.loads(run_ip("-j", "link", "show", "dev", name))[0]
    except IpError:
        return None


def test_move_between_namespaces_by_path_and_home(netns, make_netns, make_links):
    [name] = make_links(netns, 1)
    other = make_netns()
    source = Netns(str(netns.path), None)  # by path alone: no `ip -n` name to fall back on
    target = Netns(str(other.path), None)
    NETLINK.execute([MoveLink(name, target, "moved0")], source)
    assert netns.link(name) is None
    assert other.link("moved0") is not None
    home = f"nlt{secrets.token_hex(4)}"
    try:
        NETLINK.execute([MoveLink("moved0", CURRENT, home)], target)
        assert other.link("moved0") is None
        mine = _own_link(home)
        assert mine is not None and mine["ifname"] == home
        with rtnl.Rtnl.open() as sock:  # and in this very process's namespace
            assert sock.get_link(home) is not None
        NETLINK.execute([MoveLink(home, source, name)], CURRENT)
    finally:
        if _own_link(home) is not None:
            run_ip("link", "del", home)
    assert _own_link(home) is None
    back = netns.link(name)
    assert back is not None and back["ifname"] == name


def test_rename_and_move_of_a_missing_link_fail_by_name(netns, make_netns):
    other = make_netns()
    with pytest.raises(StepError, match="No such device") as caught:
        NETLINK.execute([MoveLink("ghost0", Netns(str(other.path), None), "x0")],
                        Netns(str(netns.path), None))
    assert caught.value.done == 0
    with pytest.raises(StepError, match="not a network namespace: /proc/self/status"):
        NETLINK.execute([MoveLink("lo", Netns("/proc/self/status", None))],
                        Netns(str(netns.path), None))


def _refuse(*args, **kwargs):
    raise AssertionError("the netlink backend spawned a process")


def test_no_process_is_spawned_to_create_and_read(netns, make_links, monkeypatch):
    names = list(make_links(netns, 2))  # the fixtures spawn ip: before the trap is set
    for module, attr in [(subprocess, "Popen"), (_posixsubprocess, "fork_exec"),
                         (os, "fork"), (os, "posix_spawn"), (os, "posix_spawnp"),
                         (os, "system"), (os, "execv"), (os, "execve"), (os, "execvp")]:
        monkeypatch.setattr(module, attr, _refuse)
    with pytest.raises(AssertionError, match="spawned"):
        subprocess.run(["true"])  # the trap works
    bonds = Bonds(NETLINK, netns.name)
    spec = BondSpec.build("bond0", "active-backup", {"miimon": 100, "primary": names[1]},
                          names)
    outcome = bonds.create(spec)
    listed = bonds.list()
    bonds.set_options("bond0", {"mode": "balance-rr"})
    links = NETLINK.links(bonds.netns)
    monkeypatch.undo()
    assert outcome.state is not None and diff(spec, outcome.state) == []
    assert [b.name for b in listed] == ["bond0"]
    assert {link.name for link in links} >= {"lo", "bond0", *names}
    data = netns.link("bond0")["linkinfo"]["info_data"]
    assert data["mode"] == "balance-rr"
    assert {netns.link(n)["master"] for n in names} == {"bond0"}


def test_available_and_preferred(monkeypatch):
    monkeypatch.delenv("BONDCTL_BACKEND", raising=False)
    available = NetlinkBackend.availability()
    assert available.ok, available.reason
    assert os.path.isdir("/sys/module/bonding")
    assert Registry().select().name == "netlink"
