# ruff: noqa: F811  (the cni fixture is imported from test_cni_support)
"""A hostile pod, a wrong namespace, a planted or broken record: DEL, GC and rollback find
every link and namespace by the identity ADD recorded, never by name alone, and never touch
the host's own namespace. Each test reads the real kernel state back afterwards."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from typing import Any

import pytest

from tests.kernel.test_cni_support import (  # noqa: F401
    cni,
    host_links,
    link_facts,
    pod_links,
)


def host_index(cni, name):
    return cni.host.link(name)["ifindex"]


def test_del_ignores_a_pod_link_that_took_a_slave_name(cni, make_links):
    """The pod renames the real slave and plants its own veth under the slave's name: DEL
    gives the host the real link (under its own name again) and leaves the veth in the pod."""
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links)
    cni.ok("ADD", conf)
    real = cni.pod.link(links[0])["ifindex"]
    cni.pod.batch([f"link set dev {links[0]} nomaster", f"link set dev {links[0]} name hidden0",
                   f"link add {links[0]} type veth peer name trap0"])
    planted = cni.pod.link(links[0])["ifindex"]
    assert planted != real
    cni.ok("DEL", conf)
    assert cni.snapshot(cni.host, links) == before
    assert cni.host.link("trap0") is None
    assert cni.pod.link(links[0])["ifindex"] == planted  # the pod's own link stayed home
    assert cni.pod.link("trap0") is not None
    assert cni.pod.link("hidden0") is None and cni.pod.link("bond0") is None
    assert cni.records() == []


def test_del_returns_a_slave_the_pod_renamed(cni, make_links):
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links)
    cni.ok("ADD", conf)
    cni.pod.batch([f"link set dev {links[1]} down", f"link set dev {links[1]} name renamed1"])
    cni.ok("DEL", conf)
    assert cni.snapshot(cni.host, links) == before
    assert cni.pod.links() and all(x["ifname"] == "lo" for x in cni.pod.links())


def test_del_with_another_namespace_is_refused(cni, make_links, make_netns):
    """Another pod's namespace named for this attachment: its bond0 and links are not ours."""
    links = host_links(cni, make_links)
    conf = cni.conf(links)
    cni.ok("ADD", conf)
    other = make_netns("other")
    decoys = [f"x{links[0]}", f"x{links[1]}"]
    other.batch([f"link add {decoys[0]} type dummy", f"link add {decoys[1]} type dummy",
                 "link add bond0 type bond", *(f"link set {d} master bond0" for d in decoys)])
    call = cni.fails("DEL", conf, netns=str(other.path), code=4)
    assert "not the network namespace" in call.out["msg"]
    assert other.link("bond0") is not None
    assert {other.link(d)["master"] for d in decoys} == {"bond0"}
    assert {cni.pod.link(n)["master"] for n in links} == {"bond0"}
    assert len(cni.records()) == 1
    cni.ok("DEL", conf)  # the right namespace still works
    assert cni.records() == [] and all(cni.host.link(n) for n in links)


def test_del_without_netns_while_the_pod_lives_gives_links_back(cni, make_links):
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links)
    cni.ok("ADD", conf)
    cni.ok("DEL", conf, netns="")
    assert cni.pod.link("bond0") is None
    cni.assert_nothing_left(before)


def test_del_after_the_path_was_reused_by_another_namespace(cni, make_links, make_netns):
    """The recorded path now names a different namespace: nothing is done there."""
    links = host_links(cni, make_links, prefix="d")
    conf = cni.conf(links)
    cni.ok("ADD", conf)
    name = cni.pod.name
    subprocess.run(["ip", "netns", "del", name], check=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    cni.pod.ip("link", "add", "bond0", "type", "bond")
    cni.ok("DEL", conf)
    assert cni.pod.link("bond0") is not None  # the newcomer's bond is not ours to delete
    assert cni.records() == []


def shape(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Links as a change by us would show: the carrier of fresh veths (operstate, LOWER_UP)
    comes up to a second after they are set up, on its own."""
    moving = {"LOWER_UP", "NO-CARRIER", "M-DOWN"}
    return [{**{k: v for k, v in link.items() if k != "operstate"},
             "flags": [f for f in link.get("flags", []) if f not in moving]} for link in links]


def test_host_namespace_is_never_a_pod(cni, make_links):
    """Neither the plugin's own namespace nor PID 1's can be CNI_NETNS: ADD refuses before
    any change, DEL of an unrecorded attachment leaves the host's bond alone."""
    host_links(cni, make_links)
    cni.host.batch(["link add hb0 type dummy", "link add hb1 type dummy",
                    "link add bond0 type bond", "link set hb0 master bond0",
                    "link set hb1 master bond0"])
    conf = cni.conf(["hb2", "hb3"], linksInContainer=True)
    cni.host.batch(["link add hb2 type dummy", "link add hb3 type dummy"])
    before = shape(cni.host.links())
    for path in (str(cni.host.path), "/proc/1/ns/net", "/proc/self/ns/net"):
        call = cni.fails("ADD", {**conf, "name": "x"}, ifname="bond1", netns=path, code=4)
        assert "host's own network namespace" in call.out["msg"]
        cni.ok("DEL", conf, netns=path)  # no record: nothing of ours there
        cni.fails("CHECK", {**conf, "prevResult": {"cniVersion": "1.0.0"}}, netns=path,
                  code=4)
    assert shape(cni.host.links()) == before
    assert cni.host.link("bond0")["linkinfo"]["info_kind"] == "bond"
    init_links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                                           text=True, check=True).stdout)
    assert not [x for x in init_links if x["ifname"] == "bond1"]
    assert cni.records() == []


def test_gc_releases_each_stale_lease(cni, make_links):
    """host-local predates CNI 1.1, so GC is not forwarded to it: each stale attachment's
    lease is released by a DEL of its own."""
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links, ipam=True)
    out = cni.ok("ADD", conf)
    assert cni.leases() == [out["ips"][0]["address"].split("/")[0]]
    gc = {**conf, "cniVersion": "1.1.0", "cni.dev/valid-attachments": []}
    cni.ok("GC", gc, cid="", ifname="", netns="")
    cni.assert_nothing_left(before)


BAD_RECORDS = {
    "empty object": b"{}",
    "garbage": b"\x00\xff not json",
    "wrong types": json.dumps({"version": 2, "links": "eth0"}).encode(),
}


@pytest.mark.parametrize("kind", [*BAD_RECORDS, "fifo", "directory"])
def test_a_broken_record_falls_back_to_the_configuration(cni, make_links, kind):
    links = host_links(cni, make_links)
    conf = cni.conf(links)
    cni.ok("ADD", conf)
    (record,) = cni.records()
    path = cni.state_dir / record
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        path.mkdir(0o700)
    else:
        path.write_bytes(BAD_RECORDS[kind])
    done = threading.Event()
    call = []
    worker = threading.Thread(target=lambda: (call.append(cni.call("DEL", conf)), done.set()))
    worker.start()
    assert done.wait(60), "DEL hung on the record"
    assert call[0].rc == 0, call[0].out
    assert cni.pod.link("bond0") is None
    # Links come back from the configuration (their attributes were in the lost record).
    assert {n: cni.host.link(n) is not None for n in links} == dict.fromkeys(links, True)
    assert all(cni.host.link(n).get("master") is None for n in links)
    assert not path.exists() or kind == "directory"


def test_gc_goes_on_past_a_broken_record(cni, make_links):
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links)
    cni.ok("ADD", conf)
    cni.state_dir.joinpath("other@net1.json").write_bytes(b"{not json")
    fifo = cni.state_dir / "fifo@net1.json"
    os.mkfifo(fifo, 0o600)
    gc = {**conf, "cniVersion": "1.1.0", "cni.dev/valid-attachments": []}
    cni.ok("GC", gc, cid="", ifname="", netns="")
    assert cni.pod.link("bond0") is None
    assert cni.snapshot(cni.host, links) == before
    assert sorted(cni.records()) == ["fifo@net1.json", "other@net1.json"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_check_fails_when_a_slave_mtu_falls_below_the_bond(cni, make_links):
    links = host_links(cni, make_links)
    conf = cni.conf(links, mtu=1400)
    out = cni.ok("ADD", conf)
    cni.ok("CHECK", {**conf, "prevResult": out})
    cni.pod.ip("link", "set", "dev", links[1], "mtu", "1300")
    call = cni.fails("CHECK", {**conf, "prevResult": out})
    assert links[1] in call.out["msg"] and "1300" in call.out["msg"]
    assert call.code not in (None, 100)
    cni.ok("DEL", conf)


def test_rollback_finds_links_in_the_pod_by_index(cni, make_links):
    """A failed ADD undoes by the recorded index too: links in the pod come back as they were."""
    links = pod_links(cni, make_links)
    cni.pod.ip("link", "set", "dev", links[0], "up")
    before = cni.snapshot(cni.pod, links)
    indexes = [cni.pod.link(n)["ifindex"] for n in links]
    conf = cni.conf(links, linksInContainer=True)
    cni.fails("ADD", conf, env={"BONDCTL_FAULT": "bond"})
    cni.assert_nothing_left(before, in_pod=True)
    assert [cni.pod.link(n)["ifindex"] for n in links] == indexes


def test_killed_add_then_del_with_links_in_container(cni, make_links):
    links = pod_links(cni, make_links)
    before = cni.snapshot(cni.pod, links)
    conf = cni.conf(links, linksInContainer=True)
    killed = cni.call("ADD", conf, env={"BONDCTL_FAULT_KILL": "bond"})
    assert killed.rc != 0
    cni.ok("DEL", conf)
    cni.assert_nothing_left(before, in_pod=True)


def test_bad_ipam_answers_get_clean_errors_and_roll_back(cni, make_links):
    """Real host-local IPAM with a route whose gateway is unreachable, and an IPv6 subnet on
    a bond whose MTU is too small for IPv6: the kernel refuses, the plugin says why with a
    configuration error (code 7), and nothing is left."""
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links, ipam=True)
    conf["ipam"]["routes"] = [{"dst": "10.9.0.0/16", "gw": "192.0.2.1"}]
    call = cni.fails("ADD", conf, code=7)
    assert "10.9.0.0/16" in call.out["msg"]
    cni.assert_nothing_left(before)
    v6 = cni.conf(links, ipam=True, mtu=1200)
    v6["ipam"] = {**cni.host_local(), "subnet": "2001:db8:1::/64", "gateway": "2001:db8:1::1",
                  "routes": []}
    call = cni.fails("ADD", v6, code=7)
    assert "1280" in call.out["msg"] or "IPv6" in call.out["msg"]
    cni.assert_nothing_left(before)


def test_gc_undoes_each_stale_pod_in_its_own_namespace(cni, make_links, make_netns):
    """GC pins one pod after another, and the second pin gets the first one's descriptor
    number back (links in the pods: no link lock is held in between), so the same
    /proc/PID/fd path: each teardown must still reach its own pod's namespace (a netlink
    socket kept for the command is found by the namespace's identity, not by that path)."""
    links = pod_links(cni, make_links)
    pod_b = make_netns("gcb")
    pod_b.batch(f"link add {name} type dummy" for name in links)
    conf = cni.conf(links, version="1.1.0", linksInContainer=True)
    cni.ok("ADD", conf, cid="ctr-a")
    cni.ok("ADD", conf, cid="ctr-b", netns=str(pod_b.path))
    assert len(cni.records()) == 2
    cni.ok("GC", {**conf, "cni.dev/valid-attachments": []}, cid="", ifname="", netns="")
    for pod in (cni.pod, pod_b):
        assert pod.link("bond0") is None
        assert all(pod.link(name).get("master") is None for name in links)
    assert cni.records() == []


def test_a_kept_netlink_socket_follows_the_namespace_not_its_path(make_netns):
    """Within one command the link contract keeps a socket per namespace. A pinned pod is a
    /proc/PID/fd/N path, and N comes back once unpinned: the next pod pinned there must get a
    socket in its own namespace, not the first pod's."""
    from bondctl.backend import LinkContract, keep_sockets
    from bondctl.cni import pods

    first, second = make_netns("keepa"), make_netns("keepb")
    first.ip("link", "add", "only-a", "type", "dummy")
    second.ip("link", "add", "only-b", "type", "dummy")
    contract = LinkContract()
    with keep_sockets():
        pinned, _ = pods.pin(str(first.path))
        seen_first = {link.name for link in contract.link_records(pinned)}
        pods.unpin(pinned)
        again, _ = pods.pin(str(second.path))
        assert again.path == pinned.path  # the descriptor number came back
        seen_second = {link.name for link in contract.link_records(again)}
        pods.unpin(again)
    assert "only-a" in seen_first and "only-b" not in seen_first
    assert "only-b" in seen_second and "only-a" not in seen_second
