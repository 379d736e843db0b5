"""Many plugin processes at once, as a busy node's runtime starts them.

Each round: 32 pods each ask for their own two links (64 veth links in one host namespace),
all 32 ADDs launched together, then all 32 DELs together; then 8 pods fight over the same two
links at once: exactly one wins, every other gets a clean "try again" (11) or "in use" (101),
the losers' DELs leave the winner alone, and the winner's DEL leaves nothing. Every plugin is a
real subprocess (Env.call, run from one thread each so they overlap) with real host-local IPAM.
All rounds share one world. BONDCTL_RELIABILITY_ROUNDS sets the number of rounds (default 6).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.harness.netns import LinkFactory, NetnsPool, PeerNetns
from tests.kernel.test_cni_support import STATE_ROOT, Call, Env
from tests.reliability.nothing_left import LinkView, assert_nothing_left

CATEGORY = "concurrency"
ROUNDS = int(os.environ.get("BONDCTL_RELIABILITY_ROUNDS", "6"))
pytestmark = pytest.mark.uml_weight(20)  # a round is ~90 s in UML, a typical test ~4 s
PAIRS = 32
FIGHTERS = 8
CLEAN_LOSS = (11, 101)  # a link held by an ADD in flight / owned by an attachment


def together(calls: list[Callable[[], Call]]) -> tuple[list[Call], float]:
    """Start every call at once (one thread each, each waiting on its own subprocess)."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        results = list(pool.map(lambda call: call(), calls))
    return results, time.monotonic() - started


@dataclasses.dataclass
class Node:
    """One host namespace with 2 links per pod, the pods, and the links' original facts."""

    cni: Env
    pods: list[Any]
    links: list[str]
    before: dict[str, Any]

    def pair(self, i: int) -> list[str]:
        return self.links[2 * i: 2 * i + 2]

    def conf(self, links: list[str]) -> dict[str, Any]:
        return self.cni.conf(links, ipam=True, logLevel="warning")


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    """One world for every round (built once: 64 veths and 32 namespaces take a minute or two
    in User-Mode Linux); each round must leave it as it found it, or the next one fails."""
    pool = NetnsPool()
    token = secrets.token_hex(4)
    world = Env(pool.new("host"), pool.new("pod"), STATE_ROOT / f"bond-conc-{token}",
                STATE_ROOT / f"ipam-conc-{token}")
    try:
        pods = [world.pod, *(pool.new("pod") for _ in range(PAIRS - 1))]
        links = LinkFactory(PeerNetns(pool))(world.host, 2 * PAIRS, prefix="h")
        # Facts to restore: a MAC and an MTU of its own on each link, every other one up.
        world.host.batch(f"link set dev {name} address 02:00:00:00:{i:02x}:01 mtu {1400 + i}"
                         + (" up" if i % 2 else "") for i, name in enumerate(links))
        yield Node(world, pods, list(links), world.snapshot(LinkView(world.host), links))
    finally:
        world.cleanup()
        pool.close()


def assert_bond(pod: Any, slaves: list[str], address: str) -> None:
    """The pod's bond0 is a bond, up, with exactly these slaves and the IPAM address."""
    data = {link["ifname"]: link for link in pod.ip_json("addr", "show")}
    bond = data.get("bond0")
    assert bond is not None and bond["linkinfo"]["info_kind"] == "bond", pod.name
    assert "UP" in bond["flags"], bond["flags"]
    assert sorted(n for n, link in data.items() if link.get("master") == "bond0") == slaves
    assert [f"{a['local']}/{a['prefixlen']}" for a in bond["addr_info"]
            if a["scope"] == "global"] == [address]


def parallel_pairs(node: Node) -> dict[str, float]:
    cni = node.cni
    adds, add_seconds = together([
        (lambda i=i: cni.call("ADD", node.conf(node.pair(i)), cid=f"pair{i}",
                              netns=str(node.pods[i].path)))
        for i in range(PAIRS)])
    for i, call in enumerate(adds):
        assert call.rc == 0, f"ADD pair{i}: {call.out}\n{call.stderr}"
        (ip,) = call.out["ips"]
        assert [x["name"] for x in call.out["interfaces"]] == ["bond0", *node.pair(i)]
        assert_bond(node.pods[i], node.pair(i), ip["address"])
    assert len(cni.records()) == PAIRS and len(cni.leases()) == PAIRS
    dels, del_seconds = together([
        (lambda i=i, out=call.out: cni.call(
            "DEL", {**node.conf(node.pair(i)), "prevResult": out}, cid=f"pair{i}",
            netns=str(node.pods[i].path)))
        for i, call in enumerate(adds)])
    for i, call in enumerate(dels):
        assert call.rc == 0 and call.out == {}, f"DEL pair{i}: {call.out}\n{call.stderr}"
    assert_nothing_left(cni, node.before, pods=node.pods)
    return {"add_seconds": round(add_seconds, 1), "del_seconds": round(del_seconds, 1)}


def fight(node: Node, round_no: int) -> dict[str, Any]:
    cni, links, pods = node.cni, node.pair(0), node.pods[:FIGHTERS]
    conf = node.conf(links)
    cids = [f"fight{round_no}-{i}" for i in range(FIGHTERS)]
    calls, add_seconds = together([
        (lambda cid=cid, pod=pod: cni.call("ADD", conf, cid=cid, netns=str(pod.path)))
        for cid, pod in zip(cids, pods, strict=True)])
    winners = [i for i, call in enumerate(calls) if call.rc == 0]
    assert len(winners) == 1, [c.out for c in calls]
    (winner,) = winners
    losses = []
    for i, call in enumerate(calls):
        if i == winner:
            continue
        assert set(call.out) == {"cniVersion", "code", "msg", "details"}, call.out
        assert call.code in CLEAN_LOSS, call.out
        assert any(link in call.out["msg"] for link in links), call.out
        assert LinkView(pods[i]).bonds() == [], f"loser {i} has a bond"
        losses.append(call.code)
    (ip,) = calls[winner].out["ips"]
    assert_bond(pods[winner], links, ip["address"])
    # The runtime DELs every failed ADD: the losers' DELs must not touch the winner's links.
    dels, _ = together([
        (lambda cid=cid, pod=pod: cni.call("DEL", conf, cid=cid, netns=str(pod.path)))
        for i, (cid, pod) in enumerate(zip(cids, pods, strict=True)) if i != winner])
    assert all(call.rc == 0 for call in dels), [c.out for c in dels]
    assert_bond(pods[winner], links, ip["address"])
    assert len(cni.records()) == 1 and len(cni.leases()) == 1
    cni.ok("DEL", {**conf, "prevResult": calls[winner].out}, cid=cids[winner],
           netns=str(pods[winner].path))
    assert_nothing_left(cni, node.before, pods=pods)
    return {"fight_seconds": round(add_seconds, 1), "winner": winner,
            "code_11": losses.count(11), "code_101": losses.count(101)}


@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_round(node, summary, round_no):
    started = time.monotonic()
    summary.update(parallel_pairs(node))
    summary.update(fight(node, round_no))
    summary["round_seconds"] = round(time.monotonic() - started, 1)
