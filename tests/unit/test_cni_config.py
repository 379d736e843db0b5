"""Network configuration parsing: bond-cni's keys with bond-cni's meaning, the whole catalogue
by camelCase key, errors with code 7 naming the key."""

from __future__ import annotations

import json

import pytest

from bondctl.cni.config import DEFAULT_STATE_DIR, bond_spec, parse_config
from bondctl.cni.errors import CniError
from bondctl.options import OPTIONS, SLAVE_OPTIONS

BASE = {"cniVersion": "1.0.0", "name": "net", "type": "bond", "mode": "active-backup",
        "miimon": "100", "links": [{"name": "net1"}, {"name": "net2"}]}


def conf(**keys):
    return json.dumps({**BASE, **keys}).encode()


def spec(**keys):
    return bond_spec(parse_config(conf(**keys)), "bond0")


def error(**keys):
    with pytest.raises(CniError) as info:
        spec(**keys)
    return info.value.cni_code, info.value.msg


def test_bond_cni_readme_config():
    raw = json.dumps({"type": "bond", "cniVersion": "0.3.1", "name": "bond-net1",
                      "mode": "active-backup", "failOverMac": 1, "linksInContainer": True,
                      "miimon": "100", "mtu": 1500, "links": [{"name": "net1"}, {"name": "net2"}],
                      "ipam": {"type": "host-local", "subnet": "10.56.217.0/24"}}).encode()
    parsed = parse_config(raw)
    assert parsed.links_in_container and parsed.ipam_type == "host-local"
    assert parsed.state_dir == DEFAULT_STATE_DIR and parsed.raw == raw
    built = bond_spec(parsed, "bond0")
    assert built.name == "bond0" and built.mode == "active-backup" and built.mtu == 1500
    assert built.options == {"miimon": 100, "fail_over_mac": "active"}
    assert built.slave_names == ("net1", "net2")


@pytest.mark.parametrize("miimon", ["100", 100])
def test_miimon_string_or_number(miimon):
    assert spec(miimon=miimon).options["miimon"] == 100


def test_keys_match_case_insensitively():
    raw = json.dumps({"CNIVERSION": "1.0.0", "Name": "n", "MODE": "balance-xor",
                      "XmitHashPolicy": "layer3+4", "LINKS": [{"NAME": "a"}, {"Name": "b"}],
                      "linksincontainer": True, "MTU": 9000}).encode()
    built = bond_spec(parse_config(raw), "bond0")
    assert built.mode == "balance-xor" and built.options == {"xmit_hash_policy": "layer3+4"}
    assert built.slave_names == ("a", "b") and built.mtu == 9000
    assert parse_config(raw).links_in_container


@pytest.mark.parametrize(("value", "want"), [(0, "none"), (1, "active"), (2, "follow")])
def test_fail_over_mac_numbers(value, want):
    assert spec(failOverMac=value).options["fail_over_mac"] == want


@pytest.mark.parametrize(("keys", "field"), [
    ({"failOverMac": 3}, "failOverMac"),
    ({"allSlavesActive": 2}, "allSlavesActive"),
    ({"xmitHashPolicy": "layer2+3+4"}, "xmitHashPolicy"),
    ({"mode": "balance-tlb", "tlbDynamicLb": 2}, "tlbDynamicLb"),
    ({"tlbDynamicLb": 1}, "tlbDynamicLb"),
    ({"lacpRate": "fast"}, "lacpRate"),
    ({"miimon": "fast"}, "miimon"),
    ({"mode": "round-robin"}, "mode"),
    ({"mode": None}, "mode"),
    ({"mtu": 50}, "mtu"),
    ({"mtu": "big"}, "mtu"),
    ({"links": [{"name": "net1"}]}, "links"),
    ({"links": "net1,net2"}, "links"),
    ({"links": [{"name": "net1"}, {"nom": "x"}]}, "links[1]"),
    ({"links": [{"name": "net1"}, {"name": "a/b"}]}, "links[].name"),
    ({"links": [{"name": "net1"}, {"name": "net2", "queueId": -1}]}, "queue_id"),
    ({"arpInterval": 100}, "miimon (100) and arp_interval (100) exclude each other"),
])
def test_invalid_values_name_the_key(keys, field):
    value, msg = error(**keys)
    assert value == 7
    assert msg.startswith(field), msg


def test_two_links_rule_says_why():
    assert "bond-cni" in error(links=[{"name": "a"}])[1]


def test_mtu_zero_is_unset():
    assert spec(mtu=0).mtu is None


def test_per_link_options():
    built = spec(links=[{"name": "net1", "queueId": 1, "prio": 10}, {"name": "net2"}])
    assert dict(built.slaves[0].options) == {"queue_id": 1, "prio": 10}
    assert dict(built.slaves[1].options) == {}


def sample(opt):
    """A valid value per kind, derived from the catalogue."""
    if opt.kind == "enum":
        return opt.choices[-1]
    if opt.kind == "int":
        return opt.minimum + 1
    return {"flag": 1, "ifname": "net2", "mac": "02:00:00:00:00:42",
            "ipv4list": ["192.0.2.1"], "ipv6list": ["2001:db8::1"]}[opt.kind]


@pytest.mark.parametrize("name", [n for n in OPTIONS if n != "mode"])
def test_every_catalogue_option_by_its_cni_key(name):
    opt = OPTIONS[name]
    parsed = parse_config(conf(**{opt.cni_key: sample(opt)}))
    assert parsed.options[name] == (opt.cni_key, sample(opt))
    assert parsed.warnings == ()
    assert OPTIONS[name].parse(sample(opt)) is not None


def test_every_slave_option_by_its_cni_key():
    for opt in SLAVE_OPTIONS.values():
        parsed = parse_config(conf(links=[{"name": "a", opt.cni_key: 1}, {"name": "b"}]))
        assert parsed.links[0].options == {opt.name: 1}


@pytest.mark.parametrize(("key", "hint"), [("miimom", "miimon"), ("lacp_rate", "lacpRate"),
                                           ("xmitHashPolicyy", "xmitHashPolicy"),
                                           ("linksInContainr", "linksInContainer")])
def test_near_miss_keys_are_refused_by_add_but_not_by_del(key, hint):
    """One slip from a known key is a typo (a bond without link monitoring, for "miimom"):
    ADD and CHECK refuse it; DEL, which follows even a refused ADD, parses past it."""
    parsed = parse_config(conf(**{key: 1}))
    assert parsed.warnings == ()
    with pytest.raises(CniError) as info:
        bond_spec(parsed, "bond0")
    assert (info.value.cni_code, info.value.msg) == (
        7, f"{key}: unknown key; did you mean {hint!r}?")


def test_near_miss_keys_of_a_link_are_refused():
    code, msg = error(links=[{"name": "a", "prioo": 1}, {"name": "b"}])
    assert (code, msg) == (7, "links[a].prioo: unknown key; did you mean 'prio'?")


def test_farther_misspellings_warn():
    parsed = parse_config(conf(miiimonn=1))
    assert parsed.warnings == ("unknown key 'miiimonn' ignored; did you mean 'miimon'?",)
    assert spec(miiimonn=1).name == "bond0"


def test_unrelated_unknown_keys_ignored_silently():
    parsed = parse_config(conf(capabilities={}, runtimeConfig={}, foo="bar", ifname="x"))
    assert parsed.warnings == ()


def test_malformed_json_is_code_6():
    for raw in (b"{", b"[]", b"\xff"):
        with pytest.raises(CniError) as info:
            parse_config(raw)
        assert info.value.cni_code == 6


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "2.0.0", "", None])
def test_unsupported_version_is_code_1(version):
    with pytest.raises(CniError) as info:
        parse_config(conf(cniVersion=version))
    assert info.value.cni_code == 1


@pytest.mark.parametrize(("ipam", "field"), [({"type": "bond"}, "ipam.type"),
                                             ({"subnet": "x"}, "ipam.type"),
                                             ({"type": "../evil"}, "ipam.type"),
                                             ("host-local", "ipam")])
def test_ipam_checked(ipam, field):
    with pytest.raises(CniError) as info:
        parse_config(conf(ipam=ipam))
    assert info.value.cni_code == 7 and info.value.msg.startswith(field)


def test_empty_ipam_is_none():
    assert parse_config(conf(ipam={})).ipam_type is None


def test_del_parses_a_config_that_add_refused():
    """DEL follows even an ADD that failed on a bad value: parsing must let it through."""
    parsed = parse_config(conf(xmitHashPolicy="nope", links=[{"name": "a"}], mode="x"))
    assert parsed.links[0].name == "a"


def test_paths_must_be_absolute():
    for key in ("stateDir", "logFile"):
        with pytest.raises(CniError) as info:
            parse_config(conf(**{key: "relative/x"}))
        assert info.value.msg.startswith(key)


def test_valid_attachments():
    parsed = parse_config(conf(**{"cni.dev/valid-attachments": [
        {"containerID": "a", "ifname": "bond0"}]}))
    assert parsed.valid_attachments == (("a", "bond0"),)
    with pytest.raises(CniError):
        parse_config(conf(**{"cni.dev/valid-attachments": [{"containerID": "a"}]}))


# -- duplicate keys: the last one wins, as in Go's encoding/json ----------------------------------
def parse_text(text: str):
    return parse_config(text.encode())


HEAD = '"cniVersion": "1.0.0", "name": "n", '
LINKS = '"links": [{"name": "a"}, {"name": "b"}]'


@pytest.mark.parametrize(("keys", "mode"), [
    ('"mode": "balance-rr", "Mode": "802.3ad"', "802.3ad"),
    ('"Mode": "802.3ad", "mode": "balance-rr"', "balance-rr"),  # exact case is no better
    ('"mode": "balance-rr", "Mode": "broadcast", "mode": "balance-xor"', "balance-xor"),
    ('"mode": "balance-rr", "mode": "broadcast"', "broadcast"),
    ('"mode": "balance-rr", "MODE": "802.3ad", "Mode": "balance-tlb"', "balance-tlb"),
])
def test_duplicate_keys_last_one_wins(keys, mode):
    raw = "{" + HEAD + keys + ", " + LINKS + "}"
    parsed = parse_text(raw)
    assert parsed.mode == mode and bond_spec(parsed, "bond0").mode == mode
    assert parsed.raw == raw.encode()  # delegated plugins get the bytes as they came


def test_duplicate_option_and_bool_keys_last_one_wins():
    parsed = parse_text("{" + HEAD + '"mode": "active-backup", "miimon": "100", '
                        '"MIIMON": 200, "linksInContainer": true, "linksincontainer": false, '
                        '"mtu": 1400, "MTU": 9000, ' + LINKS + "}")
    assert parsed.options["miimon"] == ("MIIMON", 200)
    assert not parsed.links_in_container
    assert bond_spec(parsed, "bond0").mtu == 9000


def test_duplicates_inside_links_ipam_and_valid_attachments():
    parsed = parse_text("{" + HEAD + '"mode": "active-backup", "links": ['
                        '{"name": "a", "Name": "c", "queueId": 1, "QueueId": 2}, {"name": "b"}],'
                        '"ipam": {"type": "static", "Type": "host-local"},'
                        '"cni.dev/valid-attachments": [{"containerID": "x", "ContainerID": "y",'
                        ' "ifname": "i"}]}')
    assert [link.name for link in parsed.links] == ["c", "b"]
    assert parsed.links[0].options == {"queue_id": 2}
    assert parsed.ipam_type == "host-local"
    assert parsed.valid_attachments == (("y", "i"),)


def test_duplicate_top_level_objects_last_one_wins():
    parsed = parse_text("{" + HEAD + '"mode": "active-backup", ' + LINKS + ', '
                        '"links": [{"name": "p"}, {"name": "q"}], '
                        '"prevResult": {"ips": []}, "PrevResult": {"interfaces": []},'
                        '"dns": {"domain": "a"}, "DNS": {"domain": "b"}}')
    assert [link.name for link in parsed.links] == ["p", "q"]
    assert parsed.prev_result == {"interfaces": []}
    assert parsed.dns == {"domain": "b"}


@pytest.mark.parametrize(("key", "matches"), [
    ("link\u017fInContainer", True),  # long s folds to s, as in Go
    ("\u212aind", False),  # the Kelvin sign folds to k, but "kind" is no key
    ("l\u0130nksInContainer", True), ("l\u0131nksInContainer", True),  # İ and dotless i
    ("linksInContainer\u00df", False),  # ß folds to no ASCII letter
])
def test_unicode_folding_matches_go(key, matches):
    parsed = parse_config(conf(**{key: True}))
    assert parsed.links_in_container is matches


def test_allow_addressed_links():
    assert parse_config(conf()).allow_addressed_links is False
    assert parse_config(conf(allowAddressedLinks=True)).allow_addressed_links is True
    assert parse_config(conf(AllowAddressedLinks=True)).warnings == ()
    for bad in ("true", 1, None, [True]):
        if bad is None:
            assert parse_config(conf(allowAddressedLinks=bad)).allow_addressed_links is False
            continue
        with pytest.raises(CniError) as info:
            parse_config(conf(allowAddressedLinks=bad))
        assert info.value.cni_code == 7
        assert info.value.msg.startswith("allowAddressedLinks: expected true or false")


def test_type_must_be_a_string():
    with pytest.raises(CniError) as info:
        parse_config(conf(type=["bond"]))
    assert info.value.cni_code == 7 and info.value.msg.startswith("type:")


@pytest.mark.parametrize(("dns", "msg"), [
    ("8.8.8.8", "dns: expected an object, got a string"),
    ({"nameservers": "8.8.8.8"}, "dns: nameservers: expected a list of strings, got a string"),
    ({"nameservers": ["8.8.8.8", 8]}, "dns: nameservers[1]: expected a string, got a number"),
    ({"domain": ["a"]}, "dns: domain: expected a string, got a list"),
    ({"search": [{"a": [[[]]]}]}, "dns: search[0]: expected a string, got an object"),
])
def test_dns_is_checked(dns, msg):
    with pytest.raises(CniError) as info:
        parse_config(conf(dns=dns))
    assert (info.value.cni_code, info.value.msg) == (7, msg)


def test_dns_keeps_only_its_keys():
    parsed = parse_config(conf(dns={"Nameservers": ["1.1.1.1"], "extra": {"deep": [[[1]]]}}))
    assert parsed.dns == {"nameservers": ["1.1.1.1"]}


@pytest.mark.parametrize("depth", [63, 64])
def test_nesting_within_the_limit_is_fine(depth):
    parse_config(conf(runtimeConfig=json.loads("[" * (depth - 1) + "]" * (depth - 1))))


@pytest.mark.parametrize("inner", ["[" * 64 + "]" * 64, '{"a":' * 64 + "1" + "}" * 64,
                                   "[" * 900 + "]" * 900])
def test_nesting_beyond_the_limit_is_code_6(inner):
    with pytest.raises(CniError) as info:
        parse_text("{" + HEAD + '"runtimeConfig": ' + inner + "}")
    assert info.value.cni_code == 6 and "nested too deeply" in info.value.msg


def test_many_brackets_that_do_not_nest_are_fine():
    parsed = parse_config(conf(runtimeConfig=[[] for _ in range(500)], name="[[[" * 40))
    assert parsed.name == "[[[" * 40
