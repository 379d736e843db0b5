"""A bond made by any backend reads back the same through every backend."""

from __future__ import annotations

import time

import pytest

from bondctl.model import BondSpec, BondState
from bondctl.netns import resolve
from bondctl.ops import Bonds
from bondctl.options import OPTIONS
from bondctl.registry import Registry

BACKENDS = sorted(Registry().backends())

CONFIGS = [
    ("802.3ad", {"lacp_rate": "fast", "xmit_hash_policy": "layer3+4",
                 "ad_actor_system": "02:00:00:00:00:42", "min_links": 1}, {}),
    ("active-backup", {"miimon": 100, "updelay": 200, "fail_over_mac": "active",
                       "primary": "@1"}, {}),
    # A long interval: with nobody answering, a short one flips slave states between reads.
    ("active-backup", {"arp_interval": 60000, "miimon": 0, "arp_validate": "all",
                       "arp_ip_target": "192.0.2.1,192.0.2.2"}, {}),
    ("balance-tlb", {"tlb_dynamic_lb": 0, "lp_interval": 3}, {}),
    ("balance-rr", {"packets_per_slave": 3}, {"queue_id": 2}),
]


def comparable(state: BondState, blind: set[str], visible: set[str]) -> BondState:
    """Hide what some reader cannot see (sysfs has no file for a slave's prio)."""
    if "prio" in blind:
        state = state._replace(slaves=tuple(s._replace(prio=None) for s in state.slaves))
    return state._replace(options={k: v for k, v in state.options.items() if k in visible})


def settle(read, tries: int = 30) -> None:
    """Wait until three reads a second apart agree: a bond just brought up is still changing
    operstate (linkwatch batches carrier events for up to a second) and electing an active
    slave, and the readers run one after the other."""
    history = [read()]
    for _ in range(tries):
        time.sleep(1.0)
        history = [*history[-2:], read()]
        if len(history) == 3 and history[0] == history[1] == history[2]:
            return
    raise AssertionError("the bonds never settled")


@pytest.mark.parametrize("maker", BACKENDS)
def test_every_reader_sees_the_same_bond(maker, netns, make_links):
    registry = Registry()
    names = list(make_links(netns, 2 * len(CONFIGS)))
    bonds = Bonds(registry.get(maker).cls(), netns.name)
    for number, (mode, options, slave_options) in enumerate(CONFIGS):
        slaves = names[2 * number: 2 * number + 2]
        options = {k: slaves[1] if v == "@1" else v for k, v in options.items()}
        bonds.create(BondSpec.build(f"bond{number}", mode, options, slaves,
                                    slave_options={slaves[0]: slave_options}))
    ns = resolve(netns.name)
    readers = {name: registry.get(name).cls() for name in BACKENDS}
    settle(lambda: bonds.list())
    seen = {name: {b.name: b for b in reader.list_bonds(ns)} for name, reader in readers.items()}
    blind = {"prio"} if any(s.prio is None for states in seen.values()
                            for b in states.values() for s in b.slaves) else set()
    keys = {reader: {k for b in states.values() for k in b.options}
            for reader, states in seen.items()}
    visible = set.intersection(*keys.values())
    # Only netlink-only options (no sysfs file, no ip keyword in iproute2 6.1) may be unseen.
    assert set.union(*keys.values()) - visible <= {n for n, o in OPTIONS.items()
                                                  if o.netlink_only}
    reference = {n: comparable(b, blind, visible) for n, b in seen[maker].items()}
    assert len(reference) == len(CONFIGS)
    for reader, states in seen.items():
        for name, state in states.items():
            assert comparable(state, blind, visible) == reference[name], (reader, name)


@pytest.mark.parametrize("maker", BACKENDS)
def test_every_backend_keeps_a_bond_mac_that_the_slaves_follow(maker, netns, make_links):
    """With fail_over_mac follow the kernel keeps a MAC the bond is created with, but ignores
    one set once the option is on: each backend must give the address first."""
    a, b = make_links(netns, 2)
    bonds = Bonds(Registry().get(maker).cls(), netns.name)
    mac = "02:00:00:00:00:5a"
    bonds.create(BondSpec.build("bond0", "active-backup", {"miimon": 100,
                                "fail_over_mac": "follow"}, [a, b], mac=mac))
    assert netns.link("bond0")["address"] == mac
    assert bonds.show("bond0").options["fail_over_mac"] == "follow"
