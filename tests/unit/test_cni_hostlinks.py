"""bondctl.hostlinks' pure logic: which routes and upper devices a host link takes along, what
bondctl.cni.hostlinks.refuse_unsafe says, and restore()'s order, tolerance and distrust of its
record, against a fake of the links contract and a fake /proc/sys. The kernel behaviour is in
tests/kernel/test_cni_hostlinks.py."""

from __future__ import annotations

import errno
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from bondctl import hostlinks
from bondctl import netlink as rtnl
from bondctl.cni.errors import INVALID_CONFIG, CniError
from bondctl.cni.hostlinks import refuse_unsafe
from bondctl.model import Link
from bondctl.netlink import AF_INET, AF_INET6, NetlinkError, Route
from bondctl.netlink import socket as netlink_socket


def route(dst: str, *, family: int = AF_INET, oif: int | None = 3, gateway: str | None = None,
          protocol: int = rtnl.RTPROT_BOOT, table: int = 254, metric: int | None = None,
          rtype: int = rtnl.RTN_UNICAST) -> Route:
    r = Route(family, dst, table, protocol, rtnl.RT_SCOPE_UNIVERSE)
    r.oif, r.gateway, r.metric, r.type = oif, gateway, metric, rtype
    return r


def link(index: int, name: str, *, lower: int | None = None, master: int | None = None,
         kind: str | None = None, up: bool = False) -> Link:
    return Link(name, index, 1500, "", up, "UNKNOWN", kind or "", master_index=master,
                lower=lower)


# --- routes ------------------------------------------------------------------------------------
def test_route_through_the_link_is_kept_with_its_fields():
    r = route("10.9.0.0/16", gateway="10.0.0.1", metric=20, table=100)
    assert hostlinks.route_entries(r, [], 3) == [
        {"dst": "10.9.0.0/16", "gateway": "10.0.0.1", "metric": 20, "table": 100}]


def test_route_through_another_link_is_not_ours():
    assert hostlinks.route_entries(route("10.9.0.0/16", oif=4), [], 3) == []


@pytest.mark.parametrize("family, expected", [(AF_INET, "0.0.0.0/0"), (AF_INET6, "::/0")])
def test_default_route_keeps_its_family_without_a_gateway(family, expected):
    (entry,) = hostlinks.route_entries(route("default", family=family), [], 3)
    assert entry["dst"] == expected and entry["gateway"] is None


def test_the_kernels_own_routes_are_left_out():
    assert hostlinks.route_entries(route("10.0.0.0/24", protocol=rtnl.RTPROT_KERNEL), [], 3) == []
    for rtype in (2, 3, 5):  # RTN_LOCAL, RTN_BROADCAST, RTN_MULTICAST
        assert hostlinks.route_entries(route("10.0.0.5/32", rtype=rtype), [], 3) == []
    for dst in ("fe80::/64", "ff00::/8", "ff02::1/128"):
        assert hostlinks.route_entries(route(dst, family=AF_INET6), [], 3) == []


def test_other_ipv6_routes_and_router_advertised_ones_are_kept():
    r = route("2001:db8::/48", family=AF_INET6, gateway="fe80::1", protocol=9, metric=1024)
    assert hostlinks.route_entries(r, [], 3)[0]["gateway"] == "fe80::1"


def test_multipath_route_gives_one_entry_per_hop_through_the_link():
    r = route("default", oif=None, metric=10)
    hops = [(3, "10.0.0.1"), (4, "10.1.0.1"), (3, "10.0.0.2")]
    assert [e["gateway"] for e in hostlinks.route_entries(r, hops, 3)] == ["10.0.0.1", "10.0.0.2"]
    assert hostlinks.route_entries(r, hops, 5) == []


def test_multipath_hops_are_decoded_from_rtnexthop_structs():
    gateway = rtnl.nla(rtnl.RTA_GATEWAY, socket.inet_pton(AF_INET, "10.0.0.1"))
    raw = (struct.pack("=HBBi", 8 + len(gateway), 0, 0, 3) + gateway
           + struct.pack("=HBBi", 8, 0, 0, 7))
    assert hostlinks.multipath_hops(AF_INET, raw) == [(3, "10.0.0.1"), (7, None)]
    assert hostlinks.multipath_hops(AF_INET, raw[:5]) == []
    assert hostlinks.multipath_hops(AF_INET, struct.pack("=HBBi", 200, 0, 0, 3)) == []


# --- upper devices -----------------------------------------------------------------------------
def test_uppers_are_links_stacked_on_it_but_not_its_master_slaves_or_veth_peer():
    eth = link(3, "eth0", master=9)
    links = [eth, link(4, "eth0.100", lower=3, kind="vlan"), link(5, "mv0", lower=3,
             kind="macvlan"), link(6, "peer", lower=3, kind="veth"), link(9, "br0", lower=3),
             link(10, "slave", lower=3, master=3), link(11, "other.5", lower=8, kind="vlan")]
    assert [x.name for x in hostlinks.upper_candidates(eth, links)] == ["eth0.100", "mv0"]


# --- refusal -----------------------------------------------------------------------------------
def test_bare_link_and_allowed_link_pass():
    refuse_unsafe("eth1", {"addresses": [], "routes": [], "sysctls": {"x": "1"},
                           "uppers": [{"index": 4, "name": "v", "up": True}]},
                  allow=False)
    refuse_unsafe("eth1", {"addresses": ["10.0.0.5/24"], "routes": []}, allow=True)


def refused(found: dict[str, Any]) -> str:
    with pytest.raises(CniError) as caught:
        refuse_unsafe("eth1", found, allow=False)
    assert caught.value.cni_code == INVALID_CONFIG
    return caught.value.msg


def test_addressed_link_is_refused_naming_it_and_its_addresses():
    msg = refused({"addresses": ["10.0.0.5/24", "2001:db8::5/64"], "routes": []})
    assert msg.startswith("links: eth1 carries addresses 10.0.0.5/24, 2001:db8::5/64")
    assert '"allowAddressedLinks": true' in msg
    assert "primary" not in msg


def test_link_with_only_a_route_is_refused():
    msg = refused({"addresses": [], "routes": [
        {"dst": "10.9.0.0/16", "gateway": None, "metric": None, "table": 254}]})
    assert "eth1 carries route 10.9.0.0/16," in msg


def test_default_route_in_main_table_marks_the_primary_interface():
    msg = refused({"addresses": ["192.0.2.5/24"], "routes": [
        {"dst": "0.0.0.0/0", "gateway": "192.0.2.1", "metric": 100, "table": 254}]})
    assert "eth1 looks like the node's primary interface" in msg
    assert "default route (default via 192.0.2.1 metric 100)" in msg
    assert "address 192.0.2.5/24" in msg


def test_default_route_of_a_policy_table_is_not_the_primary_one():
    msg = refused({"addresses": [], "routes": [
        {"dst": "::/0", "gateway": "fe80::1", "metric": 1024, "table": 100}]})
    assert "primary" not in msg
    assert "default via fe80::1 metric 1024 table 100" in msg


def test_long_lists_are_cut_short():
    msg = refused({"addresses": [f"10.0.0.{i}/24" for i in range(1, 200)], "routes": []})
    assert "10.0.0.4/24 and 195 more" in msg
    assert len(msg) < 400


# --- restore -----------------------------------------------------------------------------------
class FakeSock:
    """The links contract (bondctl.links.Links) as restore() calls it, logged in order;
    `refuse` maps a call to the errno it fails with."""

    def __init__(self, links: list[Link]) -> None:
        self.links = {x.index: x for x in links}
        self.calls: list[tuple[Any, ...]] = []
        self.refuse: dict[tuple[Any, ...], int] = {}

    def _fail(self, call: tuple[Any, ...]) -> None:
        self.calls.append(call)
        code = self.refuse.get(call)
        if code:
            raise NetlinkError(code, f"kernel says {errno.errorcode[code]}")

    def get_link(self, index: int) -> Link | None:
        return self.links.get(index)

    def add_address(self, index: int, cidr: str, *, broadcast: str | None = None) -> None:
        # The real encoder's checks (syntax, prefix) raise as they would for the real kernel.
        rtnl.parse_cidr(cidr)
        self._fail(("address", index, cidr, broadcast))

    def add_route(self, dst: str, gateway: str | None, oif: int | None, *,
                  table: int | None = None, metric: int | None = None) -> None:
        # The real encoder's checks (family, syntax) raise as they would for the real socket.
        netlink_socket._route_payload(dst, gateway, oif, table, metric, rtnl.RTPROT_BOOT,
                                      delete=False)
        self._fail(("route", dst, gateway, oif, table, metric))

    def set_link(self, index: int, *, up: bool) -> None:
        self._fail(("set", index, up))


@pytest.fixture
def proc_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake /proc/sys/net with eth0's curated files, all "0"; writes are logged as calls."""
    for key in hostlinks.SYSCTLS:
        family, leaf = key.split("/")
        path = tmp_path / family / "conf" / "eth0" / leaf
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("0\n")
    monkeypatch.setattr(hostlinks, "_SYSCTL_ROOT", str(tmp_path))
    return tmp_path


def sysctl(root: Path, key: str) -> str:
    family, leaf = key.split("/")
    return (root / family / "conf" / "eth0" / leaf).read_text().strip()


def log_sysctls(monkeypatch: pytest.MonkeyPatch, sock: FakeSock) -> None:
    original = hostlinks.write_sysctl

    def logged(name: str, key: str, value: object) -> bool:
        sock.calls.append(("sysctl", key, value))
        return original(name, key, value)

    monkeypatch.setattr(hostlinks, "write_sysctl", logged)


def test_survey_reads_the_curated_sysctls_and_skips_missing_ones(proc_sys):
    (proc_sys / "ipv6" / "conf" / "eth0" / "accept_ra").unlink()
    (proc_sys / "ipv4" / "conf" / "eth0" / "rp_filter").write_text("2\n")
    values = hostlinks.read_sysctls("eth0")
    assert values["ipv4/rp_filter"] == "2"
    assert "ipv6/accept_ra" not in values
    assert len(values) == len(hostlinks.SYSCTLS) - 1


def test_restore_order_sysctls_then_addresses_then_routes_then_uppers(proc_sys, monkeypatch):
    sock = FakeSock([link(3, "eth0", up=True), link(4, "eth0.100", lower=3, up=True)])
    log_sysctls(monkeypatch, sock)
    found = {
        "sysctls": {"ipv6/disable_ipv6": "0", "ipv4/rp_filter": "2", "ipv6/accept_ra": "0"},
        "addresses": ["10.0.0.5/24", "2001:db8::5/64", "10.0.0.9/31"],
        "routes": [{"dst": "0.0.0.0/0", "gateway": "10.0.0.1", "metric": None, "table": 254},
                   {"dst": "10.9.0.0/16", "gateway": None, "metric": 5, "table": 100}],
        "uppers": [{"index": 4, "name": "eth0.100", "up": False}],
    }
    assert hostlinks.restore(sock, 3, found) == []
    assert sock.calls == [
        ("sysctl", "ipv4/rp_filter", "2"), ("sysctl", "ipv6/accept_ra", "0"),
        ("sysctl", "ipv6/disable_ipv6", "0"),  # last: it turns IPv6 on under the others
        ("address", 3, "10.0.0.5/24", "10.0.0.255"), ("address", 3, "2001:db8::5/64", None),
        ("address", 3, "10.0.0.9/31", None),
        ("route", "10.9.0.0/16", None, 3, 100, 5),  # directly connected first
        ("route", "0.0.0.0/0", "10.0.0.1", 3, 254, None),
        ("set", 4, False),
    ]
    assert sysctl(proc_sys, "ipv4/rp_filter") == "2"


def test_restore_skips_what_is_already_there(proc_sys):
    sock = FakeSock([link(3, "eth0"), link(4, "v", lower=3, up=True)])
    sock.refuse[("address", 3, "10.0.0.5/24", "10.0.0.255")] = errno.EEXIST
    sock.refuse[("route", "10.9.0.0/16", None, 3, None, None)] = errno.EEXIST
    (proc_sys / "ipv4" / "conf" / "eth0" / "rp_filter").write_text("1\n")
    found = {"sysctls": {"ipv4/rp_filter": "1"}, "addresses": ["10.0.0.5/24"],
             "routes": [{"dst": "10.9.0.0/16", "gateway": None, "metric": None, "table": None}],
             "uppers": [{"index": 4, "name": "v", "up": True}]}
    assert hostlinks.restore(sock, 3, found) == []
    assert not any(call[0] == "set" for call in sock.calls)


def test_one_failure_does_not_stop_the_rest(proc_sys):
    sock = FakeSock([link(3, "eth0")])
    sock.refuse[("address", 3, "10.0.0.5/24", "10.0.0.255")] = errno.EACCES
    sock.refuse[("route", "0.0.0.0/0", "10.0.0.1", 3, None, None)] = errno.ENETUNREACH
    found = {"addresses": ["10.0.0.5/24", "10.0.1.5/24"],
             "routes": [{"dst": "0.0.0.0/0", "gateway": "10.0.0.1"},
                        {"dst": "10.8.0.0/16", "gateway": "10.0.1.1"}]}
    failures = hostlinks.restore(sock, 3, found)
    assert failures == [
        "address 10.0.0.5/24 on eth0: kernel says EACCES",
        "route default via 10.0.0.1 on eth0: kernel says ENETUNREACH",
    ]
    assert ("route", "10.8.0.0/16", "10.0.1.1", 3, None, None) in sock.calls


def test_restore_of_a_vanished_link_reports_it():
    assert hostlinks.restore(FakeSock([]), 3, {"addresses": ["10.0.0.5/24"]}) == [
        "link index 3 is gone; nothing restored"]


@pytest.mark.parametrize("key, value", [
    ("../../../../../tmp/owned", "1"),
    ("ipv4/../../../kernel/core_pattern", "1"),
    ("ipv4/mc_forwarding", "1"),  # a real file, but not one of ours
    ("ipv4/rp_filter", "1\n|/bin/sh"),
    ("ipv4/rp_filter", ""),
    ("ipv4/rp_filter", 1),
    ("ipv4/rp_filter", "0x1"),
])
def test_a_record_cannot_write_any_other_sysctl_or_value(proc_sys, key, value):
    before = {p: p.read_text() for p in proc_sys.rglob("*") if p.is_file()}
    failures = hostlinks.restore(FakeSock([link(3, "eth0")]), 3, {"sysctls": {key: value}})
    assert len(failures) == 1 and failures[0].startswith(f"sysctl {key} of eth0:")
    assert {p: p.read_text() for p in proc_sys.rglob("*") if p.is_file()} == before
    assert not (proc_sys.parent / "owned").exists()


def test_negative_sysctl_values_are_values(proc_sys):
    assert hostlinks.restore(FakeSock([link(3, "eth0")]), 3,
                             {"sysctls": {"ipv4/rp_filter": "-1"}}) == []
    assert sysctl(proc_sys, "ipv4/rp_filter") == "-1"


@pytest.mark.parametrize("upper", [
    {"index": 4, "name": "renamed", "up": False},  # another device took the index
    {"index": 5, "name": "v5", "up": False},  # now stacked on another link
    {"index": 6, "name": "gone", "up": False},
])
def test_an_upper_that_is_no_longer_the_same_device_is_left_alone(upper):
    sock = FakeSock([link(3, "eth0"), link(4, "v4", lower=3, up=True),
                     link(5, "v5", lower=8, up=True)])
    (failure,) = hostlinks.restore(sock, 3, {"uppers": [upper]})
    assert "no longer that device" in failure
    assert sock.calls == []


@pytest.mark.parametrize("found", [
    {"addresses": "10.0.0.5/24"},
    {"addresses": [5]},
    {"addresses": ["10.0.0.500/24"]},
    {"routes": [{"dst": 5}]},
    {"routes": [{"dst": "10.0.0.0/8", "metric": True}]},
    {"routes": [{"dst": "10.0.0.0/8", "gateway": "2001:db8::1"}]},
    {"routes": ["x"]},
    {"uppers": [{"index": "4", "name": "v", "up": True}]},
    {"uppers": [{"index": 4, "name": "v", "up": 1}]},
    {"uppers": [None]},
    {"uppers": {"index": 4}},
    {"sysctls": ["ipv4/rp_filter"]},
])
def test_a_malformed_record_is_reported_not_raised(found):
    sock = FakeSock([link(3, "eth0"), link(4, "v", lower=3, up=True)])
    failures = hostlinks.restore(sock, 3, found)
    assert len(failures) == 1, failures
    assert not any(call[0] == "set" for call in sock.calls)
