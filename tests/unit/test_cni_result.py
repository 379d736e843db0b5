"""Results shaped per cniVersion, and IPAM / previous results of any version read back."""

from __future__ import annotations

import pytest

from bondctl.cni.errors import CniError
from bondctl.cni.result import add_result, interface, normalize, render

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
