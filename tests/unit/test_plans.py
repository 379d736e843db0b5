"""Planning (bondctl.ops) and the iproute2 translation of plans, without a kernel."""

import pytest

from bondctl.backends.iproute2 import Iproute2Backend, step_argv
from bondctl.errors import UnsupportedError, ValidationError
from bondctl.model import BondSpec, BondState, SlaveState
from bondctl.netns import Netns
from bondctl.ops import check_supported, plan_create, plan_set
from bondctl.steps import CreateBond, MoveLink, SetBond, SetLink, SetSlave


def test_create_plan_enslaves_down_then_sets_primary_last():
    spec = BondSpec.build("bond0", "active-backup",
                          {"primary": "eth1", "miimon": 100, "fail_over_mac": 1},
                          ["eth0", "eth1"], slave_options={"eth0": {"queue_id": 3}})
    steps = plan_create(spec)
    assert steps[0] == CreateBond("bond0", "active-backup",
                                  {"miimon": 100, "fail_over_mac": "active"})
    assert steps[1:5] == [SetLink("eth0", up=False), SetLink("eth0", master="bond0"),
                          SetSlave("eth0", {"queue_id": 3}), SetLink("eth0", up=True)]
    assert steps[-2] == SetLink("bond0", up=True)
    assert steps[-1] == SetBond("bond0", {"primary": "eth1"})


def _state(mode="802.3ad", up=True, slaves=("eth0", "eth1")):
    return BondState("bond0", mode, {"lacp_rate": "slow", "miimon": 100},
                     tuple(SlaveState(s, "active", "up", 0, "") for s in slaves),
                     up, "UP", 1500, "02:00:00:00:00:01")


def test_down_only_option_takes_bond_down_and_says_so():
    steps, notes = plan_set(_state(), {"lacp_rate": "fast"})
    assert steps == [SetLink("bond0", up=False), SetBond("bond0", {"lacp_rate": "fast"}),
                     SetLink("bond0", up=True)]
    assert "taken down to change lacp_rate" in notes[0]


def test_plain_option_changes_without_disturbing():
    steps, notes = plan_set(_state(), {"miimon": 200})
    assert steps == [SetBond("bond0", {"miimon": 200})] and notes == []


def test_mode_change_with_slaves_releases_and_reenslaves():
    steps, notes = plan_set(_state(), {"mode": "active-backup"})
    assert steps[:3] == [SetLink("eth0", master=""), SetLink("eth1", master=""),
                         SetLink("bond0", up=False)]
    assert SetBond("bond0", {"mode": "active-backup"}) in steps
    assert steps[-1] == SetLink("bond0", up=True)
    assert steps.count(SetLink("eth1", master="bond0")) == 1
    assert len(notes) == 2


def test_unsupported_option_is_named():
    class Narrow(Iproute2Backend):
        name = "narrow"
        options = frozenset({"miimon"})

    with pytest.raises(UnsupportedError, match="backend narrow cannot set lacp_rate"):
        check_supported(Narrow, ["miimon", "lacp_rate"])


def test_iproute2_lines():
    assert step_argv(CreateBond("b0", "802.3ad", {"lacp_rate": "fast",
                                                  "arp_ip_target": ("1.1.1.1", "2.2.2.2")},
                                mtu=9000)) == [
        "link", "add", "name", "b0", "mtu", "9000", "type", "bond", "mode", "802.3ad",
        "lacp_rate", "fast", "arp_ip_target", "1.1.1.1,2.2.2.2"]
    assert step_argv(SetLink("e0", master="")) == ["link", "set", "dev", "e0", "nomaster"]
    assert step_argv(SetBond("b0", {"active_slave": ""})) == [
        "link", "set", "dev", "b0", "type", "bond", "clear_active_slave"]
    assert step_argv(MoveLink("e0", Netns("/run/netns/pod", "pod"), "net1")) == [
        "link", "set", "dev", "e0", "netns", "pod", "name", "net1"]
    rendered = Iproute2Backend().render([SetLink("e0", up=True)],
                                        Netns("/proc/9/ns/net", None))
    assert rendered == ["nsenter --net=/proc/9/ns/net ip link set dev e0 up"]


def _active_backup(fail_over_mac):
    return BondState("bond0", "active-backup", {"miimon": 100, "fail_over_mac": fail_over_mac},
                     (SlaveState("eth0", "active", "up", 0, ""),), True, "UP", 1500,
                     "02:00:00:00:00:01")


def test_a_bond_released_for_a_change_gets_its_mac_back_while_the_kernel_takes_it():
    # Its last slave gone, the kernel gives the bond a random MAC; fail_over_mac follow would
    # then ignore the MAC being set back, so it goes before the option.
    steps, _ = plan_set(_active_backup("none"), {"fail_over_mac": "follow"})
    keep = SetLink("bond0", mac="02:00:00:00:00:01")
    assert steps.index(keep) < steps.index(SetBond("bond0", {"fail_over_mac": "follow"}))
    assert steps.index(keep) > steps.index(SetLink("eth0", master=""))
    steps, _ = plan_set(_active_backup("follow"), {"fail_over_mac": "none"},
                        mac="02:00:00:00:00:02")
    new = SetLink("bond0", mac="02:00:00:00:00:02")
    assert steps.index(new) > steps.index(SetBond("bond0", {"fail_over_mac": "none"}))
    assert steps.index(new) < steps.index(SetLink("eth0", master="bond0"))


def test_a_new_mac_the_kernel_would_ignore_before_and_after_is_refused():
    with pytest.raises(ValidationError, match="fail_over_mac is follow"):
        plan_set(_active_backup("follow"), {}, mac="02:00:00:00:00:02")
    steps, notes = plan_set(_active_backup("follow"), {"fail_over_mac": "active"})
    assert not any(isinstance(s, SetLink) and s.mac for s in steps)
    assert "could not be kept" in notes[0]
