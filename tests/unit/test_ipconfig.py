"""Addresses, routes and VLANs of the desired state: validation, comparison and the plan."""

from __future__ import annotations

import pytest

from bondctl import ipconfig
from bondctl.document import Bond, from_mapping, to_mapping
from bondctl.errors import ValidationError
from bondctl.ipconfig import IpConfig, Route, Vlan

ITEM = {
    "name": "bond0", "mode": "802.3ad", "options": {"lacp_rate": "fast"},
    "slaves": ["eth0", {"name": "eth1", "queue_id": 2}], "mtu": 9000,
    "addresses": ["10.0.0.1/24", "2001:DB8::1/64"],
    "routes": [{"to": "10.9.0.0/16", "via": "10.0.0.254", "metric": 100},
               {"to": "default", "via": "2001:db8::fe"}],
    "vlans": [{"id": 10, "addresses": ["10.10.0.1/24"], "mtu": 1500}],
}


def test_a_file_bond_carries_addresses_routes_and_vlans_in_canonical_form():
    bond = from_mapping(ITEM)
    assert bond.ip.addresses == ("10.0.0.1/24", "2001:db8::1/64")
    assert bond.ip.routes == (Route("10.9.0.0/16", "10.0.0.254", 100),
                              Route("::/0", "2001:db8::fe"))
    assert bond.ip.vlans == (Vlan("bond0.10", 10, ("10.10.0.1/24",), None, 1500),)
    again = from_mapping(to_mapping(bond))
    assert again == bond


@pytest.mark.parametrize("change, message", [
    ({"addresses": ["10.0.0.1"]}, "needs a prefix length"),
    ({"addresses": ["10.0.0.1/24", "10.0.0.1/24"]}, "listed twice"),
    ({"routes": [{"to": "default"}]}, "needs via"),
    ({"routes": [{"to": "10.9.0.0/16", "via": "2001:db8::1"}]}, "differ in family"),
    ({"routes": [{"to": "10.9.0.0/16", "gw": "10.0.0.1"}]}, "unknown route key"),
    ({"vlans": [{"id": 4095}]}, "out of range"),
    ({"vlans": [{"id": 10}, {"id": 10, "name": "v10"}]}, "VLAN id is used twice"),
    ({"vlans": [{"id": 10, "name": "eth0"}]}, "name of a link"),
])
def test_bad_addresses_routes_and_vlans_are_refused_by_name(change, message):
    with pytest.raises(ValidationError, match=message):
        from_mapping({**ITEM, **change})


HAVE = IpConfig(("10.0.0.1/24", "10.0.0.2/24"),
                (Route("10.9.0.0/16", "10.0.0.254", 100), Route("10.8.0.0/16", "10.0.0.254", 0)),
                (Vlan("bond0.10", 10, ("10.10.0.1/24",), (), 1500),
                 Vlan("bond0.20", 20, (), (), 1500)))


def test_nothing_to_do_when_the_kernel_already_has_it():
    want = IpConfig(("10.0.0.2/24", "10.0.0.1/24"), (Route("10.9.0.0/16", "10.0.0.254"),
                                                      Route("10.8.0.0/16", "10.0.0.254")),
                    (Vlan("bond0.10", 10), Vlan("bond0.20", 20)))
    assert ipconfig.diff(want, HAVE) == []
    assert ipconfig.plan("bond0", want, HAVE) == []


def test_unmanaged_fields_are_left_alone():
    assert ipconfig.plan("bond0", ipconfig.NOTHING, HAVE) == []
    assert ipconfig.diff(IpConfig(addresses=("10.0.0.1/24", "10.0.0.2/24")), HAVE) == []


def test_the_plan_removes_routes_before_addresses_and_adds_them_after():
    want = IpConfig(("10.0.0.1/24", "10.0.0.3/24"), (Route("10.7.0.0/16", "10.0.0.254"),),
                    (Vlan("bond0.10", 10, ("10.10.0.9/24",)), Vlan("bond0.30", 30, mtu=1400)))
    steps = [str(a) for a in ipconfig.plan("bond0", want, HAVE)]
    assert steps == [
        "ip route del 10.9.0.0/16 via 10.0.0.254 metric 100 dev bond0",
        "ip route del 10.8.0.0/16 via 10.0.0.254 metric 0 dev bond0",
        "ip address del 10.0.0.2/24 dev bond0",
        "ip address del 10.10.0.1/24 dev bond0.10",
        "ip link del bond0.20",
        "ip address add 10.0.0.3/24 dev bond0",
        "ip address add 10.10.0.9/24 dev bond0.10",
        "ip link add link bond0 name bond0.30 mtu 1400 up type vlan id 30",
        "ip route add 10.7.0.0/16 via 10.0.0.254 dev bond0",
    ]
    drifted = {d.what for d in ipconfig.diff(want, HAVE)}
    assert drifted == {"addresses", "routes", "vlans", "bond0.10.addresses"}


def test_a_route_metric_is_compared_only_when_asked_for():
    want = IpConfig(routes=(Route("10.9.0.0/16", "10.0.0.254", 50), HAVE.routes[1]))
    assert [d.what for d in ipconfig.diff(want, HAVE)] == ["routes"]
    rows = ipconfig.check_rows(want, HAVE)
    assert [(r[0], r[3]) for r in rows] == [("routes", False)]


def test_vlan_with_another_id_under_the_same_name_is_recreated():
    want = IpConfig(vlans=(Vlan("bond0.10", 11), HAVE.vlans[1]))
    steps = [str(a) for a in ipconfig.plan("bond0", want, HAVE)]
    assert steps == ["ip link del bond0.10",
                     "ip link add link bond0 name bond0.10 up type vlan id 11"]


def test_document_keeps_netns_and_drops_unmanaged_fields():
    bond = from_mapping({"name": "bond1", "mode": "active-backup", "slaves": ["a"],
                         "netns": "lab"})
    assert bond == Bond(bond.spec, "lab", ipconfig.NOTHING)
    assert to_mapping(bond) == {"name": "bond1", "mode": "active-backup", "netns": "lab",
                                "slaves": ["a"]}


class FakeLinks:
    """A namespace's links as ipconfig.read sees them through bondctl.links.Links."""

    def __init__(self, links, addresses, routes):
        self.links, self.addrs, self.kernel_routes = links, addresses, routes

    def all(self):
        return self.links

    def addresses(self, index):
        return self.addrs.get(index, [])

    def routes(self):
        return [(r, []) for r in self.kernel_routes]


def kernel_route(dst, oif, *, gateway=None, table=254, protocol=4, family=2, metric=None,
                 kind=1):
    from bondctl.netlink import Route as KernelRoute

    route = KernelRoute(family, dst, table, protocol, 0)
    route.gateway, route.oif, route.metric, route.type = gateway, oif, metric, kind
    return route


def test_read_keeps_what_an_operator_can_manage_and_leaves_the_kernels_own():
    from bondctl.model import Link

    bond = Link("bond0", 5, 1500, "02:00:00:00:00:01", True, "up", kind="bond")
    vlan = Link("bond0.7", 6, 1400, "02:00:00:00:00:01", True, "up", kind="vlan", lower=5,
                vlan_id=7)
    stray = Link("eth9.7", 7, 1500, "02:00:00:00:00:02", True, "up", kind="vlan", lower=3,
                 vlan_id=7)
    links = FakeLinks([bond, vlan, stray],
                      {5: ["10.0.0.1/24", "fe80::1/64"], 6: ["10.7.0.1/24"]},
                      [kernel_route("10.9.0.0/16", 5, gateway="10.0.0.254", metric=100),
                       kernel_route("default", 5, gateway="10.0.0.254", table=100),
                       kernel_route("10.0.0.0/24", 5, protocol=2),  # the kernel's (proto kernel)
                       kernel_route("10.0.0.1", 5, table=255),  # the local table
                       kernel_route("10.8.0.0/16", 5, kind=6),  # a prohibit route
                       kernel_route("10.7.9.0/24", 6),
                       kernel_route("10.1.0.0/16", 7)])
    assert ipconfig.read(links, "bond0") == IpConfig(
        ("10.0.0.1/24",),
        (Route("0.0.0.0/0", "10.0.0.254", None, 100), Route("10.9.0.0/16", "10.0.0.254", 100)),
        (Vlan("bond0.7", 7, ("10.7.0.1/24",), (Route("10.7.9.0/24"),), 1400),))
    assert ipconfig.read(links, "bond1") is None
