"""The backend conformance suite: every registered backend, against the real bonding driver.

Each test works in a fresh, non-default namespace and reads the result back independently of
the backend under test, with `ip -j -d link show`. Third-party backends run here too once
installed: the suite is parametrised over whatever the registry finds.
"""

from __future__ import annotations

import pytest

from bondctl import netlink as rtnl
from bondctl.errors import BondctlError, UnsupportedError, ValidationError
from bondctl.model import BondSpec, diff
from bondctl.ops import Bonds
from bondctl.options import AB, MODES, OPTIONS, Option
from bondctl.registry import Registry

BACKENDS = sorted(Registry().backends())
SETTABLE = [name for name in OPTIONS if name != "mode"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return Registry().get(request.param).cls()


# -- deriving test values from the catalogue -------------------------------------------------
def sample_mode(opt: Option) -> str:
    usable = opt.modes & opt.effective
    return MODES[AB if AB in usable else min(usable)]


def sample_value(opt: Option, slaves: list[str]):
    """A valid value that differs from the kernel default."""
    if opt.kind == "enum":
        return next(c for c in reversed(opt.choices) if c != opt.default)
    if opt.kind == "flag":
        return 1 - int(opt.default)
    if opt.kind == "ifname":
        return slaves[1]  # the kernel picks the first slave by itself
    if opt.kind == "mac":
        return "02:00:00:00:00:42"
    if opt.kind == "ipv4list":
        return ("192.0.2.1", "192.0.2.2")
    if opt.kind == "ipv6list":
        return ("2001:db8::1",)
    default = int(opt.default)
    if default == 0:
        return 200  # a multiple of the default miimon, for the delays
    return default * 2 if default * 2 <= opt.maximum else default // 2


def prerequisites(opt: Option) -> dict:
    """Options the sample value needs beside it (the ARP monitor instead of MII)."""
    if opt.kind in ("ipv4list", "ipv6list") or opt.name == "arp_validate":
        return {"arp_interval": 100, "miimon": 0}
    if opt.name == "arp_interval":
        return {"miimon": 0}
    if opt.name in ("updelay", "downdelay", "peer_notif_delay"):
        return {"miimon": 100}
    return {}


# -- independent read-back -------------------------------------------------------------------
def kernel_bond(ns, name):
    link = ns.link(name)
    assert link is not None, f"{name} is not in {ns.name}"
    assert link["linkinfo"]["info_kind"] == "bond"
    return link


def netlink_attributes(ns, bond: str) -> dict[int, bytes]:
    """IFLA_BOND_* as the kernel sends them: for options ip(8) 6.1 cannot print."""
    with rtnl.Rtnl.open(str(ns.path)) as sock:
        link = sock.get_link(bond)
    assert link is not None
    return link.info_data


def kernel_knows(ns, opt: Option) -> bool:
    """Whether this kernel has an option newer than the oldest kernel we support: a dump of a
    bond in the option's mode carries every attribute the kernel knows for that mode."""
    if opt.min_kernel == (0, 0):
        return True
    ns.ip("link", "add", "probe0", "type", "bond", "mode", sample_mode(opt))
    try:
        return opt.ifla in netlink_attributes(ns, "probe0")
    finally:
        ns.ip("link", "del", "probe0")


def kernel_option(ns, bond: str, opt: Option):
    if opt.ip is None and opt.sysfs is None:
        return opt.parse(rtnl.decode(opt.wire, netlink_attributes(ns, bond)[opt.ifla]))
    data = kernel_bond(ns, bond)["linkinfo"]["info_data"]
    raw = data.get(opt.json_key)
    if raw is None:
        raw = {"ipv4list": (), "ipv6list": (), "ifname": ""}.get(opt.kind, opt.default)
    return opt.parse(raw)


def masters(ns, names):
    return {n: (ns.link(n) or {}).get("master") for n in names}


def snapshot(ns):
    """What a refused request must not change: every link, its master and its flags."""
    return sorted((item["ifname"], item.get("master"), tuple(item["flags"]))
                  for item in ns.links())


# -- the suite -------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [2, 4])
@pytest.mark.parametrize("mode", MODES)
def test_each_mode(backend, netns, make_links, mode, count):
    slaves = make_links(netns, count)
    spec = BondSpec.build("bond0", mode, {}, list(slaves))
    outcome = Bonds(backend, netns.name).create(spec)
    link = kernel_bond(netns, "bond0")
    assert link["linkinfo"]["info_data"]["mode"] == mode
    assert "UP" in link["flags"]
    assert masters(netns, slaves) == {s: "bond0" for s in slaves}
    assert outcome.state is not None and diff(spec, outcome.state) == []


@pytest.mark.parametrize("name", SETTABLE)
def test_option_set_at_create_and_live(backend, netns, make_links, name):
    opt = OPTIONS[name]
    slaves = list(make_links(netns, 2))
    value = sample_value(opt, slaves)
    options = {**prerequisites(opt), name: value}
    spec = BondSpec.build("bond0", sample_mode(opt), options, slaves)
    bonds = Bonds(backend, netns.name)
    if name not in backend.options:
        before = snapshot(netns)
        with pytest.raises(UnsupportedError, match=name):
            bonds.create(spec)
        assert snapshot(netns) == before
        return
    if not kernel_knows(netns, opt):
        before = snapshot(netns)
        with pytest.raises(BondctlError, match=name):  # refused, or ignored and caught
            bonds.create(spec)
        assert snapshot(netns) == before
        return
    bonds.create(spec)
    assert kernel_option(netns, "bond0", opt) == value
    if opt.names_slave:
        return  # primary / active_slave: a live change is covered by test_failover
    # Back to the default and forward again, on the live bond with its slaves.
    bonds.set_options("bond0", {name: opt.default})
    assert kernel_option(netns, "bond0", opt) == opt.parse(opt.default)
    outcome = bonds.set_options("bond0", {name: value})
    assert kernel_option(netns, "bond0", opt) == value
    assert masters(netns, slaves) == {s: "bond0" for s in slaves}
    if opt.down:
        assert any("taken down" in note for note in outcome.notes)
    assert "UP" in kernel_bond(netns, "bond0")["flags"]


@pytest.mark.parametrize(
    ("mode", "options", "slaves", "message"),
    [
        ("active-backup", {"lacp_rate": "fast"}, 2, "not supported in mode"),
        ("active-backup", {"miimon": 100, "arp_interval": 100}, 2, "exclude each other"),
        ("active-backup", {"miimon": 100, "updelay": 150}, 2, "multiple of miimon"),
        ("active-backup", {"arp_ip_target": "192.0.2.1"}, 2, "needs arp_interval"),
        ("802.3ad", {"tlb_dynamic_lb": 0}, 2, "not supported in mode 802.3ad"),
        ("active-backup", {"primary": "eth9"}, 2, "not one of the bond's slaves"),
    ],
)
def test_invalid_combination_changes_nothing(backend, netns, make_links, mode, options,
                                             slaves, message):
    names = list(make_links(netns, slaves))
    before = snapshot(netns)
    with pytest.raises(ValidationError, match=message):
        Bonds(backend, netns.name).create(BondSpec.build("bond0", mode, options, names))
    assert snapshot(netns) == before


def test_runtime_refusals_change_nothing(backend, netns, make_links):
    names = list(make_links(netns, 3))
    bonds = Bonds(backend, netns.name)
    bonds.create(BondSpec.build("bond1", "active-backup", {}, [names[2]]))
    before = snapshot(netns)
    cases = [
        (BondSpec.build("bond0", "balance-rr", {}, [names[0], "ghost0"]), "ghost0"),
        (BondSpec.build("bond0", "balance-rr", {}, [names[0], names[2]]), "already enslaved"),
        (BondSpec.build("bond1", "balance-rr", {}, [names[0]]), "already exists"),
    ]
    for spec, message in cases:
        with pytest.raises(BondctlError, match=message):
            bonds.create(spec)
        assert snapshot(netns) == before


def test_kernel_refusal_rolls_back(backend, netns, make_links):
    """The kernel refuses the last step, after the bond was made and filled: nothing stays."""
    links = make_links(netns, 2)
    names = list(links)
    links.peer_ns.ip("link", "set", links.peers[1], "down")  # names[1] loses its carrier
    before = snapshot(netns)
    spec = BondSpec.build("bond0", "active-backup", {"active_slave": names[1]}, names)
    with pytest.raises(BondctlError, match="active_slave"):
        Bonds(backend, netns.name).create(spec)
    assert netns.link("bond0") is None
    assert snapshot(netns) == before


def test_enslave_and_release(backend, netns, make_links):
    names = list(make_links(netns, 3))
    bonds = Bonds(backend, netns.name)
    bonds.create(BondSpec.build("bond0", "balance-xor", {}, names[:2]))
    state = bonds.enslave("bond0", [names[2]]).state
    assert masters(netns, names) == {n: "bond0" for n in names}
    assert state is not None and set(state.slave_names) == set(names)
    bonds.release("bond0", [names[0]])
    released = netns.link(names[0])
    assert released is not None and "master" not in released
    assert "UP" in released["flags"]
    assert masters(netns, names[1:]) == {n: "bond0" for n in names[1:]}


def test_mode_change_keeps_slaves(backend, netns, make_links):
    names = list(make_links(netns, 2))
    bonds = Bonds(backend, netns.name)
    bonds.create(BondSpec.build("bond0", "802.3ad", {"lacp_rate": "fast"}, names))
    outcome = bonds.set_options("bond0", {"mode": "active-backup", "primary": names[1]})
    data = kernel_bond(netns, "bond0")["linkinfo"]["info_data"]
    assert data["mode"] == "active-backup" and data["primary"] == names[1]
    assert masters(netns, names) == {n: "bond0" for n in names}
    assert any("re-enslaved" in note for note in outcome.notes)


def test_same_settings_change_nothing(backend, netns, make_links):
    names = list(make_links(netns, 2))
    bonds = Bonds(backend, netns.name)
    bonds.create(BondSpec.build("bond0", "active-backup", {"miimon": 100}, names))
    outcome = bonds.set_options("bond0", {"miimon": 100, "mode": "active-backup"})
    assert outcome.steps == [] and "nothing changed" in outcome.notes[0]


def test_failover(backend, netns, make_links):
    names = list(make_links(netns, 2))
    bonds = Bonds(backend, netns.name)
    bonds.create(BondSpec.build("bond0", "active-backup", {"miimon": 100}, names))
    first = kernel_bond(netns, "bond0")["linkinfo"]["info_data"].get("active_slave")
    other = names[1] if first == names[0] else names[0]
    bonds.failover("bond0")
    assert kernel_bond(netns, "bond0")["linkinfo"]["info_data"]["active_slave"] == other
    bonds.failover("bond0", to=first)
    assert kernel_bond(netns, "bond0")["linkinfo"]["info_data"]["active_slave"] == first


def test_slave_options(backend, netns, make_links):
    names = list(make_links(netns, 2))
    wanted = {"queue_id": 3, "prio": 7}
    unsupported = set(wanted) - backend.slave_options
    spec = BondSpec.build("bond0", "active-backup", {}, names,
                          slave_options={names[0]: wanted})
    if unsupported:
        with pytest.raises(UnsupportedError, match=sorted(unsupported)[0]):
            Bonds(backend, netns.name).create(spec)
        return
    Bonds(backend, netns.name).create(spec)
    data = netns.link(names[0])["linkinfo"]["info_slave_data"]
    assert (data["queue_id"], data["prio"]) == (3, 7)


def test_delete(backend, netns, make_links):
    names = list(make_links(netns, 2))
    bonds = Bonds(backend, netns.name)
    bonds.create(BondSpec.build("bond0", "balance-rr", {}, names))
    bonds.delete("bond0")
    assert netns.link("bond0") is None
    for name in names:
        link = netns.link(name)
        assert link is not None and "master" not in link and "UP" in link["flags"]


def test_read_and_list_match_the_kernel(backend, netns, make_links):
    names = list(make_links(netns, 4))
    bonds = Bonds(backend, netns.name)
    bonds.create(BondSpec.build("bond0", "802.3ad", {"lacp_rate": "fast"}, names[:2]))
    bonds.create(BondSpec.build("bond1", "active-backup", {"primary": names[3]}, names[2:]))
    listed = {b.name: b for b in bonds.list()}
    assert set(listed) == {"bond0", "bond1"}
    for name, state in listed.items():
        link = kernel_bond(netns, name)
        assert state.mtu == link["mtu"] and state.mac == link["address"]
        for opt_name, value in state.options.items():
            assert kernel_option(netns, name, OPTIONS[opt_name]) == value, opt_name
    assert listed["bond1"].active_slave == names[3]
    assert {s.name: s.state for s in listed["bond1"].slaves} == {names[2]: "backup",
                                                                 names[3]: "active"}
