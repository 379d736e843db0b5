"""Specs are validated once; states compare cleanly with specs."""

import pytest

from bondctl.errors import ValidationError
from bondctl.model import BondSpec, BondState, SlaveState, diff


def spec(**kw):
    args = {"name": "bond0", "mode": "active-backup", "options": {"miimon": "100"},
            "slaves": ["eth0", "eth1"]}
    args.update(kw)
    return BondSpec.build(args.pop("name"), args.pop("mode"), args.pop("options"),
                          args.pop("slaves"), **args)


def state(**kw):
    slaves = tuple(SlaveState(n, "backup", "up", 0, "02:00:00:00:00:01") for n in
                   kw.pop("slaves", ("eth0", "eth1")))
    args = {"name": "bond0", "mode": "active-backup", "options": {"miimon": 100},
            "slaves": slaves, "up": True, "operstate": "UP", "mtu": 1500,
            "mac": "02:00:00:00:00:01"}
    args.update(kw)
    return BondState(**args)


def test_build_canonicalises():
    s = spec(mode=1, options={"miimon": "100", "failOverMac": 1})
    assert s.mode == "active-backup"
    assert s.options == {"miimon": 100, "fail_over_mac": "active"}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"slaves": ["eth0", "eth0"]}, "listed twice"),
        ({"slaves": ["bond0", "eth1"]}, "its own slave"),
        ({"slaves": ["a/b"]}, "forbidden characters"),
        ({"name": "x" * 16}, "longer than 15 bytes"),
        ({"name": ".."}, "not allowed"),
        ({"mtu": 20}, "mtu"),
        ({"mode": "fast"}, "mode: invalid value"),
        ({"slave_options": {"eth0": {"queue_id": 70000}}}, "queue_id"),
        ({"slave_options": {"eth9": {"queue_id": 1}}}, "eth9"),
        ({"options": {"miimon": 100, "fail_over_mac": "active"}, "mac": "02:00:00:00:00:5a"},
         "always takes its active slave's MAC"),
    ],
)
def test_build_refuses(kw, message):
    with pytest.raises(ValidationError, match=message):
        spec(**kw)


@pytest.mark.parametrize(("mode", "fail_over_mac"), [("active-backup", "follow"),
                                                    ("active-backup", "none"),
                                                    ("balance-rr", "active")])
def test_a_bond_mac_is_taken_where_the_kernel_keeps_it(mode, fail_over_mac):
    """fail_over_mac has no effect outside active-backup, and follow moves the bond's MAC to
    the active slave instead of the other way round."""
    mac = "02:00:00:00:00:5a"
    assert spec(mode=mode, options={"fail_over_mac": fail_over_mac}, mac=mac).mac == mac


def test_diff_is_empty_for_a_match():
    assert diff(spec(), state()) == []


def test_diff_names_each_difference():
    drifts = diff(spec(options={"miimon": 200}, mtu=9000), state(slaves=("eth0",)))
    text = [str(d) for d in drifts]
    assert "miimon: want 200, have 100" in text
    assert any(t.startswith("slaves:") for t in text)
    assert "mtu: want 9000, have 1500" in text


def test_diff_ignores_target_order():
    s = spec(options={"arp_interval": 100, "arp_ip_target": "10.0.0.1,10.0.0.2",
                      "miimon": 0})
    st = state(options={"arp_interval": 100, "miimon": 0,
                        "arp_ip_target": ("10.0.0.2", "10.0.0.1")})
    assert diff(s, st) == []


def test_to_dict_is_json_ready():
    import json

    from tests.unit.helpers import spec_dict, state_dict

    json.dumps(state_dict(state()))
    json.dumps(spec_dict(spec()))
