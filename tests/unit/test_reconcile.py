"""bondctl.reconcile without a kernel: typed drift decides what changes, and only that."""

from __future__ import annotations

import pytest

from bondctl import ipconfig, reconcile
from bondctl.document import from_mapping
from bondctl.model import diff
from bondctl.ops import Bonds
from bondctl.steps import SetBond, SetLink, SetSlave
from tests.unit.test_cli import FakeBackend, ab_bond


@pytest.fixture
def carries_nothing(monkeypatch):
    monkeypatch.setattr(ipconfig, "read", lambda netns, bond: ipconfig.IpConfig((), (), ()))


def entry(**extra):
    return from_mapping({"name": "bond0", "mode": "active-backup",
                         "options": {"miimon": 100, "primary": "eth0"},
                         "slaves": ["eth0", "eth1"], **extra})


def test_drift_says_what_it_is_and_reads_as_before():
    want = entry(mtu=9000, slaves=[{"name": "eth0", "queue_id": 2}, "eth1"],
                 options={"miimon": 200})
    found = {d.what: d for d in diff(want.spec, ab_bond())}
    assert (found["miimon"].kind, found["miimon"].key) == ("option", "miimon")
    assert (found["eth0.queue_id"].kind, found["eth0.queue_id"].key,
            found["eth0.queue_id"].link) == ("slave_option", "queue_id", "eth0")
    assert (found["mtu"].kind, found["mtu"].key) == ("link", "mtu")
    assert str(found["miimon"]) == "miimon: want 200, have 100"
    vlan = ipconfig.diff(ipconfig.IpConfig(vlans=(ipconfig.Vlan("v5", 5, ("10.0.0.1/24",)),)),
                         ipconfig.IpConfig((), (), (ipconfig.Vlan("v5", 5, ()),)))
    assert [(d.what, d.kind, d.key, d.link) for d in vlan] == [
        ("v5.addresses", "ip", "addresses", "v5")]


def test_nothing_differs_nothing_runs(carries_nothing):
    backend = FakeBackend([ab_bond()])
    plan = reconcile.reconcile(Bonds(backend), entry())
    assert plan.action == "none" and not plan.changes and backend.executed == []


def test_only_what_drifted_is_changed(carries_nothing):
    backend = FakeBackend([ab_bond()])
    want = entry(mtu=9000, slaves=[{"name": "eth0", "queue_id": 2}, "eth1"],
                 options={"miimon": 200, "primary": "eth0"})
    plan = reconcile.reconcile(Bonds(backend), want)
    assert plan.action == "change"
    assert backend.executed == [SetBond("bond0", {"miimon": 200}),
                                SetSlave("eth0", {"queue_id": 2}),
                                SetLink("bond0", mtu=9000)]
    assert plan.commands == ["set miimon=200 on bond0", "set slave eth0 queue_id=2",
                             "set bond0 mtu 9000"]


def test_a_dry_run_renders_and_changes_nothing(carries_nothing):
    backend = FakeBackend([ab_bond()])
    plan = reconcile.reconcile(Bonds(backend, dry_run=True), entry(mtu=9000))
    assert backend.executed == []
    assert plan.commands == ["fake: set bond0 mtu 9000"]
