# ruff: noqa: F811  (the cni fixture is imported from test_cni_support)
"""Host links in the real kernel: what a link loses when it visits a pod (addresses, routes,
per-device sysctls, its VLANs' admin state), that bondctl.hostlinks records all of it and
puts it back, and that it refuses an addressed link or the node's primary interface.

The module's code runs inside the throw-away "host" namespace (a python subprocess through
`ip netns exec`); everything is read back independently with `ip -j -d` and /proc/sys."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest

from bondctl import hostlinks
from bondctl.cni.errors import INVALID_CONFIG, CniError
from bondctl.cni.hostlinks import refuse_unsafe
from tests.kernel.test_cni_support import cni, host_links  # noqa: F401

SURVEY = """
import json, sys
from bondctl import hostlinks
from bondctl.backend import LinkContract
from bondctl.links import Links
from bondctl.netns import CURRENT
kernel = Links(LinkContract(), CURRENT)
links = kernel.all()
out = {}
for name in sys.argv[1:]:
    link = next(x for x in links if x.name == name)
    out[name] = {"index": link.index, "found": hostlinks.survey(kernel, link, links)}
print(json.dumps(out))
"""

RESTORE = """
import json, sys
from bondctl import hostlinks
from bondctl.backend import LinkContract
from bondctl.links import Links
from bondctl.netns import CURRENT
kernel = Links(LinkContract(), CURRENT)
print(json.dumps(hostlinks.restore(kernel, int(sys.argv[1]), json.load(sys.stdin))))
"""

VLANS = ("eth0.100", "eth0.200")


def survey(ns: Any, *names: str) -> dict[str, Any]:
    proc = ns.run(sys.executable, "-c", SURVEY, *names)
    return json.loads(proc.stdout)


def restore(ns: Any, index: int, found: dict[str, Any]) -> list[str]:
    proc = ns.run(sys.executable, "-c", RESTORE, str(index), input=json.dumps(found))
    return json.loads(proc.stdout)


def ifindex(ns: Any, name: str) -> int:
    """The link's index now: a link that visited another namespace may come back with a new
    one, if its old one was taken meanwhile."""
    (index,) = (link["ifindex"] for link in ns.links() if link["ifname"] == name)
    return int(index)


def host_state(ns: Any, name: str) -> dict[str, Any]:
    """Everything the host could lose with link `name`, read with ip(8) and grep: every
    address (link-local included), every route through it in every table (the kernel's own
    included), every per-device sysctl of both families, its VLANs' admin state."""
    (link,) = ns.ip_json("addr", "show", "dev", name)
    addresses = [{k: a.get(k) for k in ("family", "local", "prefixlen", "broadcast", "scope")}
                 for a in link["addr_info"]]
    routes = []
    for family in ("-4", "-6"):
        for route in ns.ip_json(family, "route", "show", "table", "all", "dev", name):
            route.pop("expires", None)
            route["flags"] = sorted(f for f in route.get("flags", []) if f != "linkdown")
            routes.append(json.dumps(route, sort_keys=True))
    grep = ns.run("grep", "-rs", ".", f"/proc/sys/net/ipv4/conf/{name}",
                  f"/proc/sys/net/ipv6/conf/{name}", check=False)
    sysctls = dict(line.split(":", 1) for line in grep.stdout.splitlines())
    vlans = {x["ifname"]: "UP" in x["flags"] for x in ns.links() if x["ifname"] in VLANS}
    return {"up": "UP" in link["flags"], "addresses": addresses, "routes": sorted(routes),
            "sysctls": sysctls, "vlans": vlans}


def assert_same(after: dict[str, Any], before: dict[str, Any]) -> None:
    """host_state() equal, one part at a time, so that a failure shows what differs."""
    for key in before:
        assert after[key] == before[key], key


def write_sysctls(ns: Any, values: dict[str, str]) -> None:
    script = "; ".join(f"echo {v} > /proc/sys/net/{k}" for k, v in values.items())
    ns.run("sh", "-c", script)


def load_eth0(ns: Any) -> None:
    """eth0 as a node's primary interface is set up: two IPv4 addresses (one secondary) and an
    IPv6 one, static routes in two tables, IPv4 and IPv6 default routes, tuned sysctls, a
    VLAN left DOWN and one UP. New devices of this namespace get IPv6 disabled, so eth0 comes
    back from a visit with disable_ipv6=1: restore must enable it before its IPv6 address."""
    ns.batch([
        "link set eth0 up",
        "addr add 10.77.0.5/24 brd + dev eth0",
        "addr add 10.77.0.6/24 brd + dev eth0",
        "addr add 2001:db8:77::5/64 dev eth0 nodad",
        "route add 10.78.0.0/16 via 10.77.0.1 dev eth0",
        "route add 10.79.0.0/16 dev eth0 metric 7 table 100",
        "route add default via 10.77.0.1 dev eth0 metric 50",
        "route add 2001:db8:99::/48 via 2001:db8:77::1 dev eth0",
        "route add ::/0 via fe80::1 dev eth0 metric 300",
        "link add link eth0 name eth0.100 type vlan id 100",
        "link add link eth0 name eth0.200 type vlan id 200",
        "link set eth0.200 up",
    ])
    write_sysctls(ns, {"ipv4/conf/eth0/rp_filter": "2", "ipv4/conf/eth0/arp_ignore": "1",
                       "ipv4/conf/eth0/arp_announce": "2", "ipv4/conf/eth0/forwarding": "1",
                       "ipv4/conf/eth0/log_martians": "1", "ipv6/conf/eth0/accept_ra": "0",
                       "ipv6/conf/eth0/autoconf": "0", "ipv6/conf/default/disable_ipv6": "1"})
    settled(ns, "eth0")


def settled(ns: Any, name: str) -> None:
    """Wait for the kernel's own IPv6 setup of an UP link: the link-local address comes when
    linkwatch reports the carrier, up to a second after `ip link set up` returned, and each
    address's local route only once its duplicate address detection is over."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (link,) = ns.ip_json("addr", "show", "dev", name)
        v6 = [a for a in link["addr_info"] if a["family"] == "inet6"]
        if any(a.get("scope") == "link" for a in v6) and not any(a.get("tentative")
                                                                 for a in v6):
            return
        time.sleep(0.1)
    pytest.fail(f"IPv6 on {name} did not settle: {link['addr_info']}")


def visit(host: Any, pod: Any, name: str) -> None:
    """What ADD and DEL do to a host link, with ip(8): into the pod, up there, back, up."""
    host.ip("link", "set", "dev", name, "netns", pod.name)
    pod.ip("link", "set", "dev", name, "up")
    pod.ip("link", "set", "dev", name, "netns", host.name)
    host.ip("link", "set", "dev", name, "up")


def test_survey_records_what_the_link_carries_and_refusal_follows(make_netns, make_links):
    host = make_netns("host")
    make_links(host, 3)
    load_eth0(host)
    host.batch(["link set eth1 up", "addr add 10.88.0.5/24 dev eth2"])
    surveyed = survey(host, "eth0", "eth1", "eth2")
    found = surveyed["eth0"]["found"]
    assert found["addresses"] == ["10.77.0.5/24", "10.77.0.6/24", "2001:db8:77::5/64"]
    routes = {(r["dst"], r["gateway"], r["metric"], r["table"]) for r in found["routes"]}
    assert routes == {
        ("10.78.0.0/16", "10.77.0.1", None, 254), ("10.79.0.0/16", None, 7, 100),
        ("0.0.0.0/0", "10.77.0.1", 50, 254), ("2001:db8:99::/48", "2001:db8:77::1", 1024, 254),
        ("::/0", "fe80::1", 300, 254)}
    assert found["sysctls"]["ipv4/rp_filter"] == "2"
    assert found["sysctls"]["ipv6/disable_ipv6"] == "0"
    assert set(found["sysctls"]) <= set(hostlinks.SYSCTLS)
    assert [(u["name"], u["up"]) for u in found["uppers"]] == [("eth0.100", False),
                                                                ("eth0.200", True)]

    with pytest.raises(CniError) as primary:
        refuse_unsafe("eth0", found, allow=False)
    assert primary.value.cni_code == INVALID_CONFIG
    assert "eth0 looks like the node's primary interface" in primary.value.msg
    assert "default via 10.77.0.1 metric 50" in primary.value.msg
    with pytest.raises(CniError) as addressed:
        refuse_unsafe("eth2", surveyed["eth2"]["found"], allow=False)
    assert addressed.value.msg.startswith("links: eth2 carries address 10.88.0.5/24,")
    assert "allowAddressedLinks" in addressed.value.msg
    # A bare link (an IPv6 link-local address and the kernel's own routes only) passes, and
    # so does any link when the config allows it.
    bare = surveyed["eth1"]["found"]
    assert bare["addresses"] == bare["routes"] == bare["uppers"] == []
    refuse_unsafe("eth1", bare, allow=False)
    refuse_unsafe("eth0", found, allow=True)


def test_restore_puts_back_everything_a_visit_to_a_pod_took(make_netns, make_links):
    host, pod = make_netns("host"), make_netns("pod")
    make_links(host, 1)
    load_eth0(host)
    before = host_state(host, "eth0")
    found = survey(host, "eth0")["eth0"]["found"]
    visit(host, pod, "eth0")
    lost = host_state(host, "eth0")
    # The kernel really drops all of it (else this test could not fail) ...
    assert not any(a["family"] == "inet" for a in lost["addresses"])
    assert lost["sysctls"] != before["sysctls"]
    assert lost["sysctls"]["/proc/sys/net/ipv6/conf/eth0/disable_ipv6"] == "1"
    assert lost["vlans"] == {"eth0.100": True, "eth0.200": True}  # forced UP with eth0
    # ... and restore brings it back, exactly.
    index = ifindex(host, "eth0")
    assert restore(host, index, found) == []
    settled(host, "eth0")
    assert_same(host_state(host, "eth0"), before)
    # Again: everything is there already, which is no failure and changes nothing.
    assert restore(host, index, found) == []
    assert_same(host_state(host, "eth0"), before)


def test_restore_leaves_an_upper_alone_once_it_is_another_device(make_netns, make_links):
    host, pod = make_netns("host"), make_netns("pod")
    make_links(host, 1)
    load_eth0(host)
    surveyed = survey(host, "eth0")["eth0"]
    visit(host, pod, "eth0")
    host.batch(["link del eth0.100", "link add link eth0 name eth0.100 type vlan id 101",
                "link set eth0.100 up"])
    failures = restore(host, ifindex(host, "eth0"), surveyed["found"])
    assert len(failures) == 1 and "eth0.100" in failures[0], failures
    assert "UP" in host.link("eth0.100")["flags"]


# --- through the plugin ------------------------------------------------------------------------
def test_plugin_refuses_an_addressed_host_link_and_changes_nothing(cni, make_links):
    links = host_links(cni, make_links, 2)
    cni.host.ip("addr", "add", "10.88.0.5/24", "dev", links[1])
    for name in links:
        settled(cni.host, name)
    before = {name: host_state(cni.host, name) for name in links}
    snapshot = cni.snapshot(cni.host, links)
    call = cni.fails("ADD", cni.conf(links), code=INVALID_CONFIG)
    assert links[1] in call.out["msg"] and "10.88.0.5/24" in call.out["msg"]
    assert "allowAddressedLinks" in call.out["msg"]
    for name in links:
        assert_same(host_state(cni.host, name), before[name])
    assert cni.snapshot(cni.host, links) == snapshot
    assert cni.records() == []
    assert cni.pod.link("bond0") is None


def test_plugin_refuses_the_primary_interface(cni, make_links):
    links = host_links(cni, make_links, 2)
    cni.host.batch([f"addr add 10.77.0.5/24 dev {links[0]}",
                    f"route add default via 10.77.0.1 dev {links[0]}"])
    settled(cni.host, links[0])
    before = host_state(cni.host, links[0])
    call = cni.fails("ADD", cni.conf(links), code=INVALID_CONFIG)
    assert f"{links[0]} looks like the node's primary interface" in call.out["msg"]
    assert_same(host_state(cni.host, links[0]), before)
    assert cni.records() == []


def test_plugin_with_allowed_addressed_link_restores_it_on_del(cni, make_links):
    links = host_links(cni, make_links, 2)  # eth0, eth1: eth0 gets the primary's load
    load_eth0(cni.host)
    settled(cni.host, links[1])  # eth1's link-local route comes with its carrier, maybe late
    before = {name: host_state(cni.host, name) for name in links}
    snapshot = cni.snapshot(cni.host, links)
    conf = cni.conf(links, allowAddressedLinks=True)
    out = cni.ok("ADD", conf)
    assert cni.host.link("eth0") is None and cni.pod.link("eth0") is not None
    cni.ok("DEL", {**conf, "prevResult": out})
    for name in links:
        settled(cni.host, name)
    for name in links:
        assert_same(host_state(cni.host, name), before[name])
    assert cni.snapshot(cni.host, links) == snapshot
    assert cni.records() == []
