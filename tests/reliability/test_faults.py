"""Every ADD step, failed and killed, in two configurations: afterwards nothing is left.

(a) BONDCTL_FAULT=<step>: ADD fails with error JSON and rolls everything back by itself.
(b) BONDCTL_FAULT_KILL=<step>: the plugin dies by SIGKILL right after the step, leaving what
    it had done; the DEL a runtime sends next (same config, same env) must clean it all up.
Both configurations use real host-local IPAM and links whose MTU, MAC and admin state differ,
so a restore that forgets any of them shows. balance-tlb with two slaves sharing a MAC makes
ADD rewrite one MAC (the SR-IOV VF case), which DEL must put back.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest

from bondctl.cni.plugin import ADD_STEPS
from tests.kernel.test_cni_support import Env, host_links
from tests.reliability.nothing_left import LinkView, assert_nothing_left

CATEGORY = "faults"
SHARED_MAC = "02:00:00:00:aa:01"


def prepare(cni: Env, make_links: Any, variant: str) -> tuple[list[str], dict[str, Any]]:
    """The links (with distinct facts to restore) and the config of one variant."""
    links = host_links(cni, make_links, up=False, mtu=1450)
    if variant == "active-backup":
        cni.host.ip("link", "set", "dev", links[0], "up")
        cni.host.ip("link", "set", "dev", links[1], "mtu", "1480")
        return links, cni.conf(links, ipam=True, mtu=1400, primary=links[1])
    assert variant == "balance-tlb-shared-mac"
    for name in links:
        cni.host.ip("link", "set", "dev", name, "address", SHARED_MAC, "up")
    return links, cni.conf(links, ipam=True, mode="balance-tlb", miimon=100)


VARIANTS = ("active-backup", "balance-tlb-shared-mac")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("step", ADD_STEPS)
def test_injected_error_rolls_back(cni, make_links, summary, step, variant):
    links, conf = prepare(cni, make_links, variant)
    before = cni.snapshot(cni.host, links)
    call = cni.fails("ADD", conf, env={"BONDCTL_FAULT": step})
    assert call.code == 100, call.out
    assert call.out["msg"] == f"injected fault after step {step}"
    assert call.out["details"] == "", call.out  # a non-empty one reports a failed undo
    assert_nothing_left(cni, before)
    summary.update(kind="error", step=step, variant=variant, code=call.code)


def damage_after(step: str, cni: Env, links: list[str]) -> dict[str, Any]:
    """What a plugin killed right after `step` leaves behind: proof the kill came there."""
    pod = LinkView(cni.pod)
    leases = cni.leases()
    record = json.loads((cni.state_dir / cni.records()[0]).read_text())
    addresses = []
    if pod.link("bond0") is not None:
        (bond,) = cni.pod.ip_json("addr", "show", "dev", "bond0")
        addresses = [a["local"] for a in bond["addr_info"] if a["scope"] == "global"]
    return {"links_in_pod": sorted(n for n in links if pod.link(n) is not None),
            "bond": pod.link("bond0") is not None, "leases": len(leases),
            "addresses": len(addresses), "phase": record["phase"]}


# The state each step leaves; each row differs from the one before in one fact.
EXPECTED_DAMAGE = {
    "record": {"links_in_pod": 0, "bond": False, "leases": 0, "addresses": 0, "phase": "adding"},
    "move": {"links_in_pod": 2, "bond": False, "leases": 0, "addresses": 0, "phase": "adding"},
    "bond": {"links_in_pod": 2, "bond": True, "leases": 0, "addresses": 0, "phase": "adding"},
    "ipam": {"links_in_pod": 2, "bond": True, "leases": 1, "addresses": 0, "phase": "adding"},
    "addresses": {"links_in_pod": 2, "bond": True, "leases": 1, "addresses": 1,
                  "phase": "adding"},
    "result": {"links_in_pod": 2, "bond": True, "leases": 1, "addresses": 1, "phase": "added"},
}


def test_expected_damage_covers_every_step():
    assert tuple(EXPECTED_DAMAGE) == ADD_STEPS


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("step", ADD_STEPS)
def test_sigkill_then_del_cleans_up(cni, make_links, summary, step, variant):
    links, conf = prepare(cni, make_links, variant)
    before = cni.snapshot(cni.host, links)
    killed = cni.call("ADD", conf, env={"BONDCTL_FAULT_KILL": step})
    assert killed.rc == -signal.SIGKILL, killed
    assert killed.out == {}  # died before printing anything
    damage = damage_after(step, cni, links)
    want = dict(EXPECTED_DAMAGE[step], links_in_pod=links[:EXPECTED_DAMAGE[step]["links_in_pod"]])
    assert damage == want
    cni.ok("DEL", conf)
    assert_nothing_left(cni, before)
    summary.update(kind="sigkill", step=step, variant=variant, left_behind=damage)
