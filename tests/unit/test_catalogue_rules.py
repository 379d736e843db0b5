"""The catalogue states only exceptions, and the rules between options live in its rows: what
follows from that for the rest of bondctl, and the records that replaced typing.NamedTuple."""

import pickle
import subprocess
import sys

import pytest

from bondctl.backends.iproute2 import step_argv
from bondctl.model import BondState, Link, SlaveState
from bondctl.ops import plan_set
from bondctl.options import ACTIVE, MODE, OPTIONS, SETTINGS, Option, camel, mac_held_by
from bondctl.steps import SetBond, SetSlave


def test_a_row_without_exceptions_is_spelled_by_its_name_everywhere():
    opt = Option("some_new_option", doc="d", ifla=99)
    assert (opt.ip, opt.sysfs, opt.json_key, opt.cni_key, opt.ifla_name) == (
        "some_new_option", "some_new_option", "some_new_option", "someNewOption",
        "IFLA_BOND_SOME_NEW_OPTION")
    assert (opt.kind, opt.wire, opt.default, opt.when_absent) == ("int", "u32", 0, None)


def test_kind_wire_and_default_follow_from_what_a_row_says():
    assert (OPTIONS["primary"].kind, OPTIONS["primary"].wire) == ("ifname", "ifindex")
    assert OPTIONS["primary"].when_absent == "" and OPTIONS["arp_ip_target"].when_absent == ()
    assert OPTIONS["xmit_hash_policy"].default == "layer2"
    assert OPTIONS["arp_validate"].wire == "u32" and OPTIONS["lacp_rate"].wire == "u8"
    assert OPTIONS["coupled_control"].ip is None and OPTIONS["coupled_control"].sysfs is None
    assert camel("peer_notif_delay") == "peerNotifDelay"


def test_the_rules_between_options_are_flags_of_the_rows():
    assert MODE.name == "mode" and MODE.name not in SETTINGS
    assert ACTIVE.name == "active_slave"
    assert {o.name for o in OPTIONS.values() if o.needs_miimon} == {
        "updelay", "downdelay", "peer_notif_delay"}
    assert {o.name for o in OPTIONS.values() if o.names_slave} == {"primary", "active_slave"}
    assert {o.name for o in OPTIONS.values() if o.needs_arp} == {"arp_ip_target",
                                                                "ns_ip6_target"}
    assert {o.name: o.takes_bond_mac for o in OPTIONS.values() if o.takes_bond_mac} == {
        "fail_over_mac": "active"}
    assert {o.name for o in OPTIONS.values() if o.holds_bond_mac} == {"fail_over_mac"}


def test_a_live_bond_mac_is_held_by_fail_over_mac_only_where_it_takes_effect():
    assert mac_held_by("active-backup", {"fail_over_mac": "follow"}) is OPTIONS["fail_over_mac"]
    assert mac_held_by("active-backup", {"fail_over_mac": "active"}) is OPTIONS["fail_over_mac"]
    assert mac_held_by("active-backup", {"fail_over_mac": "none"}) is None
    assert mac_held_by("active-backup", {}) is None
    assert mac_held_by("balance-rr", {"fail_over_mac": "follow"}) is None


def _state(**slave_options):
    slave = SlaveState("eth0", "active", "up", 0, "", **slave_options)
    return BondState("bond0", "active-backup", {"miimon": 100}, (slave,), False, "DOWN", 1500,
                     "02:00:00:00:00:01")


def test_a_slave_released_for_a_change_comes_back_with_every_per_slave_option():
    steps, _ = plan_set(_state(queue_id=2, prio=7), {"fail_over_mac": "active"})
    assert SetSlave("eth0", {"queue_id": 2, "prio": 7}) in steps


def test_per_slave_options_at_their_default_or_unseen_are_not_written_back():
    steps, _ = plan_set(_state(queue_id=0, prio=None), {"fail_over_mac": "active"})
    assert not any(isinstance(s, SetSlave) for s in steps)


def test_a_per_slave_option_the_new_mode_refuses_is_not_written_back():
    steps, _ = plan_set(_state(queue_id=2, prio=7), {"mode": "802.3ad"})
    assert SetSlave("eth0", {"queue_id": 2}) in steps


def test_only_per_slave_options_the_backend_can_set_are_written_back():
    steps, _ = plan_set(_state(queue_id=2, prio=7), {"fail_over_mac": "active"}, {"queue_id"})
    assert SetSlave("eth0", {"queue_id": 2}) in steps


def test_ip_clears_an_empty_request_with_its_clear_keyword():
    assert step_argv(SetBond("bond0", {"active_slave": ""}))[-1] == "clear_active_slave"


def test_records_compare_hash_replace_and_refuse_changes_as_named_tuples_did():
    link = Link("eth0", 3, 1500, "02:00:00:00:00:01", True, "UP")
    same = Link(name="eth0", index=3, mtu=1500, mac="02:00:00:00:00:01", up=True,
                operstate="UP")
    assert link == same and hash(link) == hash(same) and link != link._replace(mtu=9000)
    assert link._replace(mtu=9000).mtu == 9000 and link._asdict()["index"] == 3
    assert sorted([link._replace(name="eth1"), link])[0] is link
    assert pickle.loads(pickle.dumps(link)) == link
    assert repr(link).startswith("Link(name='eth0', index=3,")
    with pytest.raises(AttributeError):
        link.mtu = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Link("eth0")  # type: ignore[call-arg]


def test_the_core_records_import_no_typing_enum_or_re():
    code = ("import sys; import bondctl.model, bondctl.steps, bondctl.netns, bondctl.options; "
            "print(sorted({'typing', 'enum', 're', 'dataclasses'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert out.stdout.strip() == "[]"
