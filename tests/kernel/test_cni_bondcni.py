# ruff: noqa: F811  (the cni fixture is imported from test_cni_support)
"""bond-cni's own test scenarios (bond/bond_test.go), run against our plugin in the real
kernel: pod links net1, net2 (dummies), CNI_IFNAME bond0, miimon "100", mtu 1400."""

from __future__ import annotations

import pytest

from tests.kernel.test_cni_support import cni, host_links, link_facts, pod_links  # noqa: F401

VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def in_pod_conf(cni, links, **keys):
    base = {"linksInContainer": True, "mtu": 1400, "failOverMac": 1}
    base.update(keys)
    return cni.conf(links, **base)


def info(cni, name="bond0"):
    return cni.bond(name)["linkinfo"]["info_data"]


def test_links_in_container_active_backup(cni, make_links):
    links = pod_links(cni, make_links)
    before = cni.snapshot(cni.pod, links)
    out = cni.ok("ADD", in_pod_conf(cni, links))
    assert out["interfaces"][0]["name"] == "bond0"
    assert [i["name"] for i in out["interfaces"][1:]] == links
    assert all(i["sandbox"] == str(cni.pod.path) for i in out["interfaces"])
    bond = cni.bond()
    assert bond["mtu"] == 1400
    assert info(cni)["mode"] == "active-backup"
    assert info(cni)["miimon"] == 100
    assert info(cni)["fail_over_mac"] == "active"
    assert out["interfaces"][0]["mac"] == bond["address"]
    for name in links:
        assert cni.pod.link(name)["master"] == "bond0"
    cni.ok("DEL", in_pod_conf(cni, links))
    cni.assert_nothing_left(before, in_pod=True)


def test_add_del_del(cni, make_links):
    links = pod_links(cni, make_links)
    before = cni.snapshot(cni.pod, links)
    conf = in_pod_conf(cni, links)
    cni.ok("ADD", conf)
    cni.ok("DEL", conf)
    cni.ok("DEL", conf)
    cni.assert_nothing_left(before, in_pod=True)


def test_add_delete_a_link_del(cni, make_links):
    links = pod_links(cni, make_links)
    before = cni.snapshot(cni.pod, links)
    conf = in_pod_conf(cni, links)
    cni.ok("ADD", conf)
    cni.pod.ip("link", "del", links[0])
    cni.ok("DEL", conf)
    assert cni.pod.link("bond0") is None
    assert link_facts(cni.pod, links[1]) == before[links[1]]
    assert cni.records() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_result_in_each_version(cni, make_links, version):
    links = pod_links(cni, make_links)
    conf = in_pod_conf(cni, links, version=version, ipam=True)
    out = cni.ok("ADD", conf)
    assert out["cniVersion"] == version
    assert [i["name"] for i in out["interfaces"]] == ["bond0", *links]
    bond_iface = out["interfaces"][0]
    assert bond_iface["mac"] == cni.bond()["address"]
    assert ("mtu" in bond_iface) == (version == "1.1.0")
    (ip,) = out["ips"]
    assert ip["interface"] == 0
    assert ip["address"].startswith("10.56.217.") and ip["gateway"] == "10.56.217.1"
    if version.startswith("0."):
        assert ip["version"] == "4"
    else:
        assert "version" not in ip
    assert out["routes"] == [{"dst": "0.0.0.0/0"}]
    addresses = [a["local"] for a in cni.bond()["addr_info"]] if "addr_info" in cni.bond() \
        else [a["local"] for a in cni.pod.ip_json("addr", "show", "dev", "bond0")[0]["addr_info"]]
    assert ip["address"].split("/")[0] in addresses
    cni.ok("DEL", {**conf, "prevResult": out})
    assert cni.leases() == []


def test_equal_slave_macs_balance_tlb(cni, make_links):
    links = pod_links(cni, make_links)
    for name in links:
        cni.pod.ip("link", "set", "dev", name, "address", "02:11:22:33:44:55")
    conf = in_pod_conf(cni, links, mode="balance-tlb", failOverMac=0)
    cni.ok("ADD", conf)
    assert info(cni)["mode"] == "balance-tlb"
    assert {cni.pod.link(n)["master"] for n in links} == {"bond0"}
    cni.ok("DEL", conf)
    for name in links:
        assert cni.pod.link(name)["address"] == "02:11:22:33:44:55"


def test_fail_over_mac_none_restores_macs(cni, make_links):
    links = pod_links(cni, make_links)
    before = cni.snapshot(cni.pod, links)
    conf = in_pod_conf(cni, links, failOverMac=0)
    cni.ok("ADD", conf)
    bond_mac = cni.bond()["address"]
    assert {cni.pod.link(n)["address"] for n in links} == {bond_mac}
    cni.ok("DEL", conf)
    cni.assert_nothing_left(before, in_pod=True)


@pytest.mark.parametrize("slave_mtu", [1300, 1399])
def test_slave_mtu_below_bond_mtu_fails(cni, make_links, slave_mtu):
    links = pod_links(cni, make_links)
    cni.pod.ip("link", "set", "dev", links[0], "mtu", str(slave_mtu))
    before = cni.snapshot(cni.pod, links)
    call = cni.fails("ADD", in_pod_conf(cni, links), code=7)
    assert "mtu" in call.out["msg"] and links[0] in call.out["msg"]
    cni.assert_nothing_left(before, in_pod=True)


@pytest.mark.parametrize("value", [0, 1])
def test_all_slaves_active_applied(cni, make_links, value):
    links = pod_links(cni, make_links)
    cni.ok("ADD", in_pod_conf(cni, links, allSlavesActive=value))
    assert info(cni)["all_slaves_active"] == value


@pytest.mark.parametrize("policy", ["layer2", "layer2+3", "layer3+4"])
def test_xmit_hash_policy_applied(cni, make_links, policy):
    links = pod_links(cni, make_links)
    cni.ok("ADD", in_pod_conf(cni, links, mode="balance-xor", xmitHashPolicy=policy))
    assert info(cni)["xmit_hash_policy"] == policy


@pytest.mark.parametrize("value", [0, 1])
def test_tlb_dynamic_lb_applied(cni, make_links, value):
    links = pod_links(cni, make_links)
    cni.ok("ADD", in_pod_conf(cni, links, mode="balance-tlb", failOverMac=0,
                              tlbDynamicLb=value))
    assert info(cni)["tlb_dynamic_lb"] == value


@pytest.mark.parametrize(("keys", "field"), [
    ({"allSlavesActive": 2}, "allSlavesActive"),
    ({"mode": "balance-xor", "xmitHashPolicy": "layer2+3+4"}, "xmitHashPolicy"),
    ({"mode": "balance-tlb", "tlbDynamicLb": 2}, "tlbDynamicLb"),
    ({"tlbDynamicLb": 1}, "tlbDynamicLb"),  # active-backup
    ({"failOverMac": 3}, "failOverMac"),
])
def test_invalid_values_rejected_before_any_change(cni, make_links, keys, field):
    links = pod_links(cni, make_links)
    before = cni.snapshot(cni.pod, links)
    call = cni.fails("ADD", in_pod_conf(cni, links, **keys), code=7)
    assert call.out["msg"].startswith(field), call.out
    cni.assert_nothing_left(before, in_pod=True)


def test_links_from_the_host_move_in_and_back(cni, make_links):
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links, mtu=1400, failOverMac=1)
    cni.ok("ADD", conf)
    assert {cni.pod.link(n)["master"] for n in links} == {"bond0"}
    assert all(cni.host.link(n) is None for n in links)
    cni.ok("DEL", conf)
    cni.assert_nothing_left(before)
