"""The example third-party backend (plugins/bondctl-pyroute2) against the real bonding driver:
a bond it makes reads back identically through the iproute2 backend, and it moves links
between namespaces. scripts/plugins.sh installs the plugin into .venv."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bondctl.backend import Backend, StepError
from bondctl.backends.iproute2 import Iproute2Backend
from bondctl.errors import BackendUnavailableError
from bondctl.model import BondSpec, BondState
from bondctl.netns import Netns, resolve
from bondctl.ops import Bonds
from bondctl.options import OPTIONS
from bondctl.registry import Registry
from bondctl.steps import MoveLink


@pytest.fixture
def pyroute2() -> Backend:
    try:
        return Registry().select("pyroute2")
    except BackendUnavailableError as exc:
        pytest.fail(f"{exc}: run `bash scripts/plugins.sh` to install the example plugin")


def settled(read: Callable[[], BondState], tries: int = 20) -> BondState:
    """A read that two reads in a row agree on: the monitors and LACP settle in the first
    moments of a bond's life, and both readers must see the same moment."""
    last = read()
    for _ in range(tries):
        now = read()
        if now == last:
            return now
        last = now
    pytest.fail(f"the bond kept changing: {last}")


def as_ip_sees(state, reference):
    """Netlink readers also see options ip 6.1 cannot print (coupled_control on Debian's 6.1):
    only netlink-only options may be missing from the iproute2 reading."""
    hidden = set(state.options) - set(reference.options)
    assert hidden <= {name for name, opt in OPTIONS.items() if opt.netlink_only}
    return state._replace(options={k: v for k, v in state.options.items() if k not in hidden})


CASES = [
    ("active-backup", {"miimon": 100, "updelay": 200, "fail_over_mac": "active",
                       "primary": "@1", "num_grat_arp": 3}, {"queue_id": 3}),
    ("802.3ad", {"lacp_rate": "fast", "ad_actor_system": "02:00:00:00:00:42",
                 "xmit_hash_policy": "layer3+4", "ad_actor_sys_prio": 100, "min_links": 1}, {}),
    ("balance-xor", {"arp_interval": 100, "miimon": 0, "arp_validate": "all",
                     "arp_ip_target": "192.0.2.1,192.0.2.2"}, {}),
]


@pytest.mark.parametrize(("mode", "options", "slave_options"), CASES,
                         ids=[mode for mode, _, _ in CASES])
def test_reads_back_identically_through_iproute2(pyroute2, netns, make_links, mode, options,
                                                 slave_options):
    names = list(make_links(netns, 2))
    options = {k: names[1] if v == "@1" else v for k, v in options.items()}
    spec = BondSpec.build("bond0", mode, options, names,
                          slave_options={names[0]: slave_options} if slave_options else None)
    Bonds(pyroute2, netns.name).create(spec)
    where = resolve(netns.name)
    reference = Iproute2Backend()
    before = settled(lambda: reference.read("bond0", where))
    mine = as_ip_sees(pyroute2.read("bond0", where), before)
    after = reference.read("bond0", where)
    assert mine in (before, after)
    assert [as_ip_sees(b, r) for b, r in zip(pyroute2.list_bonds(where),
                                              reference.list_bonds(where), strict=True)
            ] == reference.list_bonds(where)
    # what it read is what was asked for, and what the kernel holds by `ip -j -d`
    assert mine.slave(names[0]).queue_id == slave_options.get("queue_id", 0)
    data = netns.link("bond0")["linkinfo"]["info_data"]
    assert data["mode"] == mode and mine.mode == mode
    assert mine.mac == netns.link("bond0")["address"]


def test_moves_links_between_namespaces(pyroute2, netns, make_netns, make_links):
    """The CNI's path: links leave the host namespace for the pod's, a bond is made there,
    and the links come home; the bond itself never moves (it is netns-local)."""
    pod = make_netns()
    names = list(make_links(netns, 2))
    here, there = resolve(netns.name), resolve(pod.name)
    pyroute2.execute([MoveLink(names[0], there), MoveLink(names[1], there, "net1")], here)
    assert netns.link(names[0]) is None and netns.link(names[1]) is None
    assert pod.link(names[0]) is not None and pod.link("net1") is not None
    slaves = [names[0], "net1"]
    Bonds(pyroute2, pod.name).create(BondSpec.build("bond0", "active-backup", {}, slaves))
    assert {n: pod.link(n).get("master") for n in slaves} == {n: "bond0" for n in slaves}
    with pytest.raises(StepError, match="move bond0"):
        pyroute2.execute([MoveLink("bond0", here)], there)
    assert pod.link("bond0") is not None and netns.link("bond0") is None
    Bonds(pyroute2, pod.name).delete("bond0")
    assert pod.link("bond0") is None and pyroute2.list_bonds(there) == []
    pyroute2.execute([MoveLink(names[0], here), MoveLink("net1", here, names[1])], there)
    assert pod.link(names[0]) is None and pod.link("net1") is None
    for name in names:
        link = netns.link(name)
        assert link is not None and "master" not in link


def test_moves_a_link_into_the_callers_namespace(pyroute2, netns, make_links):
    """MoveLink to the current namespace names this process's own, not pyroute2's socket's."""
    names = list(make_links(netns, 1))
    here = resolve(netns.name)
    current = Netns(None, None)
    pyroute2.execute([MoveLink(names[0], current, "p2moved0")], here)
    try:
        assert netns.link(names[0]) is None
        assert pyroute2.link("p2moved0", current) is not None
    finally:
        pyroute2.execute([MoveLink("p2moved0", here, names[0])], current)
    assert netns.link(names[0]) is not None
