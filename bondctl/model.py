"""What a bond should be (BondSpec) and what the kernel says it is (BondState), and their diff.

A spec is validated once, against the option catalogue, when it is built; everything after
that (backends, CNI, CLI) trusts it. A state is what a backend read back. `diff(spec, state)` is
the single comparison behind "apply, then verify", `bondctl check` and CNI CHECK.
"""

from __future__ import annotations

from types import MappingProxyType

from .errors import ValidationError
from .names import check_ifname
from .options import (
    ACTIVE,
    MODE,
    OPTIONS,
    SETTINGS,
    SLAVE_OPTIONS,
    Value,
    check_combination,
    check_mac,
    check_mtu,
    mode_number,
    parse_options,
)
from .record import Record

TYPE_CHECKING = False  # neither typing nor dataclasses (inspect): milliseconds per pod start
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Literal

    DriftKind = Literal["mode", "option", "slaves", "slave_option", "link", "ip"]

_NO_OPTIONS: Mapping[str, int] = MappingProxyType({})


class SlaveSpec(Record):
    name: str
    options: Mapping[str, int] = _NO_OPTIONS  # per-slave, keyed as SLAVE_OPTIONS


class BondSpec(Record):
    name: str
    mode: str
    options: Mapping[str, Value]  # canonical, keyed by kernel name, without the mode
    slaves: tuple[SlaveSpec, ...] = ()
    mtu: int | None = None
    mac: str | None = None
    up: bool = True

    @classmethod
    def build(
        cls,
        name: str,
        mode: object,
        options: Mapping[str, object] | None = None,
        slaves: Sequence[str | SlaveSpec] = (),
        *,
        mtu: object = None,
        mac: object = None,
        slave_options: Mapping[str, Mapping[str, object]] | None = None,
        up: bool = True,
    ) -> BondSpec:
        """Validate everything that can be checked without a kernel, or raise ValidationError."""
        check_ifname(name, "bond name")
        canonical = parse_options(options or {})
        if MODE.name in canonical:
            raise ValidationError(f"{MODE.name} is given twice (as an argument and as an option)")
        mode_name = str(MODE.parse(mode))
        members = [s if isinstance(s, SlaveSpec) else SlaveSpec(s) for s in slaves]
        names = [check_ifname(s.name, "slave name") for s in members]
        if len(set(names)) != len(names):
            raise ValidationError(f"a slave is listed twice: {', '.join(names)}")
        if name in names:
            raise ValidationError(f"the bond {name!r} cannot be its own slave")
        members = [_with_slave_options(s, (slave_options or {}).get(s.name), mode_name)
                   for s in members]
        unknown = set(slave_options or {}) - set(names)
        if unknown:
            raise ValidationError(f"options given for {', '.join(sorted(unknown))}, "
                                  "which is not a slave of this bond")
        own_mac = None if mac is None else check_mac(mac)
        check_combination(mode_name, canonical, names if members else None, mac=own_mac)
        return cls(
            name=name,
            mode=mode_name,
            options=canonical,
            slaves=tuple(members),
            mtu=None if mtu is None else check_mtu(mtu),
            mac=own_mac,
            up=up,
        )

    @property
    def slave_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slaves)


def _with_slave_options(
    slave: SlaveSpec, raw: Mapping[str, object] | None, mode: str
) -> SlaveSpec:
    merged: dict[str, int] = dict(slave.options)
    for key, value in (raw or {}).items():
        opt = SLAVE_OPTIONS.get(key)
        if opt is None:
            opt = next((o for o in SLAVE_OPTIONS.values() if o.cni_key == key), None)
        if opt is None:
            raise ValidationError(
                f"unknown slave option {key!r}; known: {', '.join(SLAVE_OPTIONS)}"
            )
        if mode_number(mode) not in opt.modes:
            raise ValidationError(f"slave option {opt.name} is not supported in mode {mode}")
        merged[opt.name] = opt.parse(value)
    return SlaveSpec(slave.name, merged)


class Link(Record):
    """Any network interface, as much as bondctl needs to know to move and restore it: what
    a backend's links() and the link contract (bondctl.backend.LinkContract) return. Only
    the contract fills the fields after tx_bytes, which not every backend can read: a
    backend's links() leave them at their defaults, so that every backend reads a link alike."""

    name: str
    index: int  # the ifindex
    mtu: int
    mac: str  # "" when the link has none
    up: bool  # administratively (IFF_UP)
    operstate: str
    kind: str = ""  # "veth", "bond", ... ; "" for plain devices
    master: str | None = None
    # The factory MAC. The contract gives it whenever the kernel knows one, since the CNI
    # finds a link by it; a backend's links() show it as `ip` does, only when it differs
    # from mac.
    perm_mac: str | None = None
    rx_bytes: int = 0
    tx_bytes: int = 0
    # By ifindex too: a name is the namespace owner's to change, an index is not.
    master_index: int | None = None
    # IFLA_LINK: what a VLAN or macvlan stands on, a veth's peer; maybe an index in another
    # namespace (LinkContract.lower_is_local tells)
    lower: int | None = None
    loopback: bool = False
    vlan_id: int | None = None  # a VLAN's id (IFLA_VLAN_ID); None for any other kind


class SlaveState(Record):
    name: str
    state: str  # "active" or "backup"
    mii_status: str  # "up", "down", "going_down", "going_back"
    link_failure_count: int
    perm_hwaddr: str
    queue_id: int = 0
    prio: int | None = None  # None: the reader cannot see it (sysfs has no file for it)
    ad_aggregator_id: int | None = None
    up: bool = True
    operstate: str = "UNKNOWN"
    mtu: int = 0
    mac: str = ""


class BondState(Record):
    name: str
    mode: str
    options: Mapping[str, Value]  # every option the reader saw, canonical, without the mode
    slaves: tuple[SlaveState, ...]
    up: bool
    operstate: str
    mtu: int
    mac: str
    index: int = 0  # the ifindex
    ad_info: Mapping[str, Value] | None = None
    netns: str | None = None

    @property
    def active_slave(self) -> str | None:
        return str(self.options.get(ACTIVE.name) or "") or None

    @property
    def slave_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slaves)

    def slave(self, name: str) -> SlaveState | None:
        return next((s for s in self.slaves if s.name == name), None)


class Drift(Record):
    """One difference between what is asked and what runs. `what` names it as a person reads
    it (CHECK's message and `bondctl diff` print it); `kind`, `key` and `link` say what it is,
    so that whoever acts on a drift never parses `what`:

    - "mode", "option": key is the option's kernel name;
    - "slaves": the set of slaves;
    - "slave_option": link is the slave, key the per-slave option;
    - "link": key is the bond's own link attribute (mtu, mac, up);
    - "ip": key is addresses, routes, vlans or mtu; link is the VLAN, None for the bond.
    """

    what: str
    want: object
    have: object
    kind: DriftKind = "option"
    key: str = ""
    link: str | None = None

    def __str__(self) -> str:
        return f"{self.what}: want {_show(self.want)}, have {_show(self.have)}"


def _show(value: object) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(map(str, value)) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def _same(name: str, want: Value, have: Value | None) -> bool:
    if isinstance(want, tuple):
        # The kernel keeps ARP/NS targets in its own slots: order carries no meaning.
        return isinstance(have, tuple | type(None)) and set(want) == set(have or ())
    return want == have


def diff(spec: BondSpec, state: BondState) -> list[Drift]:
    """Every way `state` fails `spec`; empty when the bond is exactly as asked."""
    drifts: list[Drift] = []
    if spec.mode != state.mode:
        drifts.append(Drift(MODE.name, spec.mode, state.mode, "mode", MODE.name))
    for name, want in spec.options.items():
        if OPTIONS[name].transient:
            continue  # a request, not a setting: the kernel moves it on failover
        have = state.options.get(name)
        if not _same(name, want, have):
            drifts.append(Drift(name, want, have, "option", name))
    if set(spec.slave_names) != set(state.slave_names):
        drifts.append(Drift("slaves", sorted(spec.slave_names), sorted(state.slave_names),
                            "slaves"))
    for slave in spec.slaves:
        have_slave = state.slave(slave.name)
        if have_slave is None:
            continue
        for name, want_value in slave.options.items():
            have_value = getattr(have_slave, name)
            if have_value is not None and have_value != want_value:
                drifts.append(Drift(f"{slave.name}.{name}", want_value, have_value,
                                    "slave_option", name, slave.name))
    for key, want_link, have_link in (("mtu", spec.mtu, state.mtu), ("mac", spec.mac, state.mac),
                                      ("up", spec.up, state.up)):
        if want_link is not None and want_link != have_link:
            drifts.append(Drift(key, want_link, have_link, "link", key))
    return drifts


def option_defaults(names: Iterable[str] | None = None) -> dict[str, Value]:
    return {n: OPTIONS[n].default for n in (SETTINGS if names is None else names)
            if not OPTIONS[n].is_mode}
