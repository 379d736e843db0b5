"""Results shaped per cniVersion, and IPAM / previous results of any version read back."""

from __future__ import annotations

import pytest

from bondctl.cni.errors import CniError
from bondctl.cni.result import add_result, check_for_kernel, interface, normalize, render

IPAM_040 = {"cniVersion": "0.4.0", "ips": [
    {"version": "4", "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
    {"version": "6", "address": "2001:db8::5/64"}],
    "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.1.0.1"]}}
BOND = interface("bond0", "02:00:00:00:00:01", "/run/netns/p", 1500)
SLAVES = [interface("net1", "02:00:00:00:00:01", "/run/netns/p"),
          interface("net2", "02:00:00:00:00:02", "/run/netns/p")]


def test_normalize_drops_ip_versions():
    result = normalize(IPAM_040)
    assert [ip.get("version") for ip in result["ips"]] == [None, None]
    assert result["routes"] == [{"dst": "0.0.0.0/0"}]


def test_normalize_refuses_garbage():
    with pytest.raises(CniError):
        normalize({"ips": [{"gateway": "x"}]})
    with pytest.raises(CniError):
        normalize([])


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_old_versions_have_ip_versions_and_no_mtu(version):
    out = render(add_result(None, BOND, SLAVES, normalize(IPAM_040), None), version)
    assert out["cniVersion"] == version
    assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    assert all(ip["interface"] == 0 for ip in out["ips"])
    assert out["interfaces"][0] == {"name": "bond0", "mac": "02:00:00:00:00:01",
                                    "sandbox": "/run/netns/p"}


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_new_versions(version):
    out = render(add_result(None, BOND, SLAVES, normalize(IPAM_040), None), version)
    assert all("version" not in ip for ip in out["ips"])
    assert ("mtu" in out["interfaces"][0]) == (version == "1.1.0")
    assert [i["name"] for i in out["interfaces"]] == ["bond0", "net1", "net2"]
    assert out["dns"] == {"nameservers": ["10.1.0.1"]}


def test_without_ipam_the_result_is_l2_and_takes_conf_dns():
    out = render(add_result(None, BOND, SLAVES, None, {"nameservers": ["1.1.1.1"]}), "1.0.0")
    assert out["ips"] == [] and out["routes"] == []
    assert out["dns"] == {"nameservers": ["1.1.1.1"]}


def test_chained_after_a_previous_plugin():
    prev = {"cniVersion": "0.4.0", "interfaces": [{"name": "eth0"}],
            "ips": [{"version": "4", "address": "192.0.2.2/24", "interface": 0}],
            "routes": [{"dst": "192.0.2.0/24"}]}
    out = render(add_result(prev, BOND, SLAVES, normalize(IPAM_040), None), "1.0.0")
    assert [i["name"] for i in out["interfaces"]] == ["eth0", "bond0", "net1", "net2"]
    assert [ip["interface"] for ip in out["ips"]] == [0, 1, 1]
    assert out["routes"] == [{"dst": "192.0.2.0/24"}, {"dst": "0.0.0.0/0"}]
    assert prev["ips"][0]["version"] == "4"  # the input is not modified


# -- what comes from outside is checked -----------------------------------------------------------
def refused(raw, what="prevResult", **kw):
    with pytest.raises(CniError) as info:
        normalize(raw, what, **kw)
    return info.value.cni_code, info.value.msg


@pytest.mark.parametrize(("raw", "msg"), [
    ([], "prevResult: expected a JSON object, got a list"),
    ({"interfaces": {"name": "x"}}, "prevResult: interfaces: expected a list, got an object"),
    ({"interfaces": ["eth0"]}, "prevResult: interfaces[0]: expected an object, got a string"),
    ({"interfaces": [{"mac": "x"}]}, "prevResult: interfaces[0].name: required"),
    ({"interfaces": [{"name": 1}]}, "prevResult: interfaces[0].name: expected a string, "
                                    "got a number"),
    ({"interfaces": [{"name": "a", "sandbox": ["/x"]}]},
     "prevResult: interfaces[0].sandbox: expected a string, got a list"),
    ({"interfaces": [{"name": "a", "mtu": "1500"}]},
     "prevResult: interfaces[0].mtu: expected an integer, got a string"),
    ({"interfaces": [{"name": "a", "mtu": True}]},
     "prevResult: interfaces[0].mtu: expected an integer, got true/false"),
    ({"ips": [{"gateway": "10.0.0.1"}]}, "prevResult: ips[0].address: required"),
    ({"ips": [{"address": "10.1.2.3"}]}, "prevResult: ips[0].address: '10.1.2.3' lacks its "
                                         "prefix length (like 10.1.2.3/24 or 2001:db8::3/64)"),
    ({"ips": [{"address": "10.1.2.3/33"}]}, "prevResult: ips[0].address: '10.1.2.3/33' is not "
                                            "a CIDR (like 10.1.2.3/24 or 2001:db8::3/64)"),
    ({"ips": [{"address": "10.1.2.3/24", "gateway": "gw"}]},
     "prevResult: ips[0].gateway: 'gw' is not an IP address"),
    ({"ips": [{"address": "10.1.2.3/24", "interface": 0}]},
     "prevResult: ips[0].interface: 0 is not the index of one of the 0 interfaces"),
    ({"ips": [{"address": "10.1.2.3/24", "interface": -1}], "interfaces": [{"name": "a"}]},
     "prevResult: ips[0].interface: -1 is not the index of one of the 1 interfaces"),
    ({"ips": [{"address": "10.1.2.3/24", "interface": "0"}], "interfaces": [{"name": "a"}]},
     "prevResult: ips[0].interface: expected an integer, got a string"),
    ({"routes": "0.0.0.0/0"}, "prevResult: routes: expected a list, got a string"),
    ({"routes": [{"gw": "10.0.0.1"}]}, "prevResult: routes[0].dst: required"),
    ({"routes": [{"dst": "0.0.0.0/0"}, {"dst": "default"}]},
     "prevResult: routes[1].dst: 'default' lacks its prefix length (like 10.1.2.3/24 or "
     "2001:db8::3/64)"),
    ({"routes": [{"dst": "0.0.0.0/0", "table": "main"}]},
     "prevResult: routes[0].table: expected an integer, got a string"),
    ({"routes": [{"dst": "0.0.0.0/0", "priority": 1.5}]},
     "prevResult: routes[0].priority: expected an integer, got a number with a fraction or "
     "exponent"),
    ({"dns": ["8.8.8.8"]}, "prevResult: dns: expected an object, got a list"),
    ({"dns": {"nameservers": [["8.8.8.8"]]}},
     "prevResult: dns.nameservers[0]: expected a string, got a list"),
])
def test_normalize_names_what_is_wrong(raw, msg):
    assert refused(raw) == (6, msg)


def test_ipam_results_are_not_indexed():
    """IPAM's own interface indexes are replaced by the bond's: only their type matters."""
    result = normalize({"ips": [{"address": "10.1.2.3/24", "interface": 2}]}, indexed=False)
    assert result["ips"] == [{"address": "10.1.2.3/24", "interface": 2}]
    assert refused({"ips": [{"address": "10.1.2.3/24", "interface": -2}]}, "ipam x result",
                   indexed=False)[1].startswith("ipam x result: ips[0].interface: -2 ")


def test_normalize_keeps_the_spec_keys_only_and_folds_case():
    raw = {"CNIVersion": "1.1.0", "Interfaces": [{"Name": "eth0", "MAC": "m", "SocketPath": "/s",
                                                  "extra": {"x": 1}}],
           "IPs": [{"Address": "2001:db8::5/64", "Gateway": "", "version": "6", "x": [1]}],
           "Routes": [{"Dst": "::/0", "GW": "2001:db8::1", "Table": 7, "junk": None}],
           "DNS": {"Domain": "d", "sortlist": [[1]]}, "extra": [[[[]]]]}
    assert normalize(raw) == {
        "interfaces": [{"name": "eth0", "mac": "m", "socketPath": "/s"}],
        "ips": [{"address": "2001:db8::5/64"}],
        "routes": [{"dst": "::/0", "gw": "2001:db8::1", "table": 7}],
        "dns": {"domain": "d"}}


def test_deeply_nested_dns_never_reaches_the_result():
    import copy
    import json

    deep: object = "x"
    for _ in range(5000):
        deep = {"a": [deep]}
    prev = {"ips": [], "dns": {"nameservers": ["1.1.1.1"], "x": deep}}
    out = render(add_result(prev, BOND, SLAVES, None, None), "1.0.0")
    assert out["dns"] == {"nameservers": ["1.1.1.1"]}
    json.dumps(copy.deepcopy(out), indent=4)
    assert refused({"dns": {"search": deep}})[1] == ("prevResult: dns.search: expected a list "
                                                     "of strings, got an object")


def kernel_refuses(raw, mtu=1500):
    with pytest.raises(CniError) as info:
        check_for_kernel(normalize(raw, indexed=False), mtu, "ipam x result")
    return info.value.cni_code, info.value.msg


@pytest.mark.parametrize(("raw", "mtu", "msg"), [
    ({"ips": [{"address": "2001:db8::5/64"}]}, 1279,
     "ips[0].address: IPv6 needs an MTU of at least 1280; the bond's is 1279"),
    ({"ips": [{"address": "10.0.0.5/24"}], "routes": [{"dst": "2001:db8::/32"}]}, 1000,
     "routes[0].dst: IPv6 needs an MTU of at least 1280; the bond's is 1000"),
    ({"ips": [{"address": "10.0.0.5/24", "gateway": "2001:db8::1"}]}, 1500,
     "ips[0].gateway: 2001:db8::1 is not an IPv4 address like the address"),
    ({"routes": [{"dst": "::/0", "gw": "10.0.0.1"}]}, 1500,
     "routes[0].gw: 10.0.0.1 is not an IPv6 address like the dst"),
    ({"routes": [{"dst": "10.9.8.7/16"}]}, 1500,
     "routes[0].dst: 10.9.8.7/16 has host bits set (the network is 10.9.0.0/16)"),
    ({"routes": [{"dst": "0.0.0.0/0", "priority": -1}]}, 1500,
     "routes[0].priority: -1 is out of range (0 to 4294967295)"),
    ({"routes": [{"dst": "0.0.0.0/0", "priority": 2**32}]}, 1500,
     "routes[0].priority: 4294967296 is out of range (0 to 4294967295)"),
    ({"routes": [{"dst": "0.0.0.0/0", "table": 0}]}, 1500,
     "routes[0].table: 0 is out of range (1 to 4294967295)"),
    ({"routes": [{"dst": "0.0.0.0/0", "scope": 256}]}, 1500,
     "routes[0].scope: 256 is out of range (0 to 255)"),
    ({"routes": [{"dst": "0.0.0.0/0", "mtu": -5}]}, 1500,
     "routes[0].mtu: -5 is out of range (0 to 4294967295)"),
])
def test_check_for_kernel_refuses_what_the_kernel_would(raw, mtu, msg):
    assert kernel_refuses(raw, mtu) == (7, "ipam x result: " + msg)


@pytest.mark.parametrize("mtu", [1280, 9000, None])
def test_check_for_kernel_passes_what_the_kernel_takes(mtu):
    check_for_kernel(normalize({
        "ips": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"},
                {"address": "2001:db8::5/64", "gateway": "2001:db8::1"}],
        "routes": [{"dst": "0.0.0.0/0", "priority": 0, "table": 2**32 - 1, "scope": 0},
                   {"dst": "2001:db8::5/64"}, {"dst": "::/0", "gw": "2001:db8::1"}]}), mtu)
    check_for_kernel(normalize({"ips": [{"address": "10.0.0.5/24"}]}), 576)
