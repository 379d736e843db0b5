"""A live change that needs a bond without slaves releases them and enslaves them again: each
comes back with every per-slave option the backend can set (the catalogue's SLAVE_OPTIONS),
read back from the kernel's own JSON."""

from __future__ import annotations

import pytest

from bondctl.model import BondSpec
from bondctl.ops import Bonds
from bondctl.options import SLAVE_OPTIONS
from bondctl.registry import Registry

BACKENDS = sorted(Registry().backends())


@pytest.mark.parametrize("maker", BACKENDS)
def test_a_no_slaves_change_keeps_every_per_slave_option(maker, netns, make_links):
    backend = Registry().get(maker).cls()
    names = list(make_links(netns, 2))
    wanted = {"queue_id": 3, "prio": 7}
    settable = {k: v for k, v in wanted.items() if k in backend.slave_options}
    assert settable, "every backend sets some per-slave option"
    bonds = Bonds(backend, netns.name)
    bonds.create(BondSpec.build("bond0", "active-backup", {"miimon": 100}, names,
                                slave_options={names[0]: settable}))
    # fail_over_mac may only change on a bond without slaves (BOND_OPTFLAG_NOSLAVES).
    outcome = bonds.set_options("bond0", {"fail_over_mac": "active"})
    assert any("released" in note for note in outcome.notes)
    bond = netns.link("bond0")["linkinfo"]["info_data"]
    assert bond["fail_over_mac"] == "active"
    data = netns.link(names[0])["linkinfo"]["info_slave_data"]
    for name, value in settable.items():
        assert data[SLAVE_OPTIONS[name].json_key] == value, name
    assert netns.link(names[0])["master"] == "bond0"
