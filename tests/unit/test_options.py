"""The option catalogue: completeness, parsing, cross-option rules and their error texts."""

import re
from pathlib import Path

import pytest

from bondctl.errors import ValidationError
from bondctl.options import (
    MODES,
    OPTIONS,
    SLAVE_OPTIONS,
    check_combination,
    check_mac,
    check_mtu,
    lookup,
    parse_options,
)

REFERENCE = Path(__file__).parents[3] / "shared" / "reference" / "kernel-bonding.md"

# The options table of shared/reference/kernel-bonding.md, by the kernel's names.
DOCUMENTED = {
    "mode", "miimon", "updelay", "downdelay", "peer_notif_delay", "use_carrier", "arp_interval",
    "arp_ip_target", "arp_validate", "arp_all_targets", "arp_missed_max", "ns_ip6_target",
    "primary", "primary_reselect", "active_slave", "fail_over_mac", "xmit_hash_policy",
    "lacp_rate", "lacp_active", "ad_select", "ad_actor_sys_prio", "ad_user_port_key",
    "ad_actor_system", "min_links", "all_slaves_active", "resend_igmp", "num_grat_arp",
    "packets_per_slave", "lp_interval", "tlb_dynamic_lb", "coupled_control",
}


def test_catalogue_holds_every_documented_option():
    assert set(OPTIONS) >= DOCUMENTED
    assert {"queue_id", "prio"} <= set(SLAVE_OPTIONS)


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference not beside the checkout")
def test_catalogue_matches_reference_table():
    rows = [line for line in REFERENCE.read_text().splitlines() if line.startswith("| ")]
    names = set()
    for row in rows[1:]:
        cell = row.split("|")[1].strip()
        if cell.startswith(("option", "---", "per-slave")):
            continue
        for name in re.split(r",| = ", cell):
            names.add(name.strip())
    assert names - {""} <= set(OPTIONS) | {"num_unsol_na"}


def test_ifla_numbers_are_unique_and_every_field_is_filled():
    numbers = [opt.ifla for opt in OPTIONS.values()]
    assert len(numbers) == len(set(numbers))
    for opt in OPTIONS.values():
        assert opt.doc and opt.json_key and opt.cni_key and opt.wire
        assert opt.cni_key[0].islower() and "_" not in opt.cni_key
        if opt.kind == "enum":
            assert opt.default in opt.choices


@pytest.mark.parametrize("raw", ["802.3ad", "4", 4, " 802.3AD "])
def test_mode_by_name_or_number(raw):
    assert OPTIONS["mode"].parse(raw) == "802.3ad"


def test_bad_mode_names_option_value_and_allowed():
    with pytest.raises(ValidationError) as err:
        OPTIONS["mode"].parse("active-passive")
    text = str(err.value)
    assert "mode" in text and "active-passive" in text and "802.3ad (4)" in text


@pytest.mark.parametrize(("raw", "want"), [("100", 100), (100, 100), (" 0 ", 0)])
def test_int_parsing(raw, want):
    assert OPTIONS["miimon"].parse(raw) == want


@pytest.mark.parametrize("raw", [-1, "-1", "abc", 1.5, True, None, 2**31, [100]])
def test_int_rejects(raw):
    with pytest.raises(ValidationError, match="miimon: invalid value"):
        OPTIONS["miimon"].parse(raw)


def test_ranges_follow_the_kernel_tables():
    assert OPTIONS["ad_actor_sys_prio"].parse(1) == 1
    for name, bad in [("ad_actor_sys_prio", 0), ("ad_user_port_key", 1024),
                      ("arp_missed_max", 0), ("lp_interval", 0), ("resend_igmp", 256),
                      ("packets_per_slave", 65536), ("peer_notif_delay", 300001)]:
        with pytest.raises(ValidationError, match=name):
            OPTIONS[name].parse(bad)


@pytest.mark.parametrize(("raw", "want"), [("on", 1), ("off", 0), (True, 1), (0, 0), ("1", 1)])
def test_flags(raw, want):
    assert OPTIONS["all_slaves_active"].parse(raw) == want


def test_flag_rejects_two():
    with pytest.raises(ValidationError, match="all_slaves_active: invalid value 2"):
        OPTIONS["all_slaves_active"].parse(2)


def test_fail_over_mac_takes_bond_cni_numbers():
    assert [OPTIONS["fail_over_mac"].parse(n) for n in (0, 1, 2)] == ["none", "active", "follow"]


def test_xmit_hash_policy_refuses_made_up_policy():
    with pytest.raises(ValidationError, match="layer2\\+3\\+4"):
        OPTIONS["xmit_hash_policy"].parse("layer2+3+4")


def test_address_lists():
    opt = OPTIONS["arp_ip_target"]
    assert opt.parse("10.0.0.1, 10.0.0.2") == ("10.0.0.1", "10.0.0.2")
    assert opt.parse(["10.0.0.1", "10.0.0.1"]) == ("10.0.0.1",)
    assert OPTIONS["ns_ip6_target"].parse(["FE80::0001"]) == ("fe80::1",)
    with pytest.raises(ValidationError, match="up to 16"):
        opt.parse([f"10.0.0.{i}" for i in range(17)])
    with pytest.raises(ValidationError, match="arp_ip_target"):
        opt.parse("10.0.0.300")


def test_actor_system_must_not_be_multicast():
    assert OPTIONS["ad_actor_system"].parse("02:00:00:00:00:0A") == "02:00:00:00:00:0a"
    with pytest.raises(ValidationError, match=r"ad_actor_system.*unicast"):
        OPTIONS["ad_actor_system"].parse("01:00:5e:00:00:01")


def test_lookup_by_every_spelling():
    for key in ("lacp_rate", "lacpRate", "ad_lacp_rate", "lacp-rate", "LACPRATE"):
        assert lookup(key).name == "lacp_rate"
    assert lookup("num_unsol_na").name == "num_grat_arp"
    assert lookup("peer_notify_delay").name == "peer_notif_delay"


def test_unknown_option_suggests_the_closest():
    with pytest.raises(ValidationError, match="did you mean xmitHashPolicy"):
        lookup("xmitHashPolicyy")


def test_option_given_twice_is_refused():
    with pytest.raises(ValidationError, match="given twice"):
        parse_options({"lacp_rate": "fast", "lacpRate": "slow"})


@pytest.mark.parametrize(
    ("mode", "options", "message"),
    [
        ("active-backup", {"miimon": 100, "arp_interval": 100}, "exclude each other"),
        ("active-backup", {"arp_interval": 100, "updelay": 200}, "updelay \\(200\\) needs miimon"),
        ("active-backup", {"miimon": 100, "downdelay": 150}, "multiple of miimon \\(100\\)"),
        ("active-backup", {"updelay": 200}, "updelay \\(200\\) needs miimon"),
        ("802.3ad", {"updelay": 250}, "multiple of miimon \\(100\\)"),
        ("active-backup", {"arp_ip_target": ("10.0.0.1",)}, "needs arp_interval"),
        ("active-backup", {"lacp_rate": "fast"}, "lacp_rate is not supported in mode"),
        ("active-backup", {"tlb_dynamic_lb": 0}, "balance-tlb, balance-alb"),
        ("802.3ad", {"arp_interval": 100}, "arp_interval is not supported in mode 802.3ad"),
        ("802.3ad", {"primary": "eth0"}, "primary is not supported"),
        ("balance-xor", {"packets_per_slave": 2}, "applies to: balance-rr"),
    ],
)
def test_cross_option_rules(mode, options, message):
    with pytest.raises(ValidationError, match=message):
        check_combination(mode, options)


def test_valid_combinations_pass():
    check_combination("active-backup", {"miimon": 100, "updelay": 200, "primary": "a"}, ["a"])
    check_combination("active-backup", {"arp_interval": 100, "arp_ip_target": ("10.0.0.1",)})
    check_combination("802.3ad", {"lacp_rate": "fast", "xmit_hash_policy": "layer3+4"})
    check_combination("balance-tlb", {"tlb_dynamic_lb": 0})


def test_primary_must_be_a_slave():
    with pytest.raises(ValidationError, match="primary 'eth9' is not one of the bond's slaves"):
        check_combination("active-backup", {"primary": "eth9"}, ["eth0", "eth1"])


def test_mtu_and_mac():
    assert check_mtu("1500") == 1500
    for bad in (67, 65536, "x", None, True):
        with pytest.raises(ValidationError, match="mtu"):
            check_mtu(bad)
    with pytest.raises(ValidationError, match="not a unicast"):
        check_mac("ff:ff:ff:ff:ff:ff")


def test_mode_table_is_the_kernels():
    assert MODES.index("802.3ad") == 4 and MODES.index("balance-alb") == 6


def test_turning_one_monitor_on_turns_the_other_off():
    from bondctl.options import after_change

    assert after_change({"miimon": 100}, {"arp_interval": 200}) == {
        "miimon": 0, "arp_interval": 200}
    assert after_change({"arp_interval": 200}, {"miimon": 50, "mode": "802.3ad"}) == {
        "miimon": 50, "arp_interval": 0}
