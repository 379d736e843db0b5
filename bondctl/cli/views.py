"""The typed results of read commands: one model each, rendered as a rich table or as JSON.

A view is built from what a backend read back (BondState, Link) plus what only the CLI wants
(speed and duplex, health problems); `to_json()` is the whole machine-readable answer and the
rich renderers in bondctl.cli.render draw from the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bondctl.health import Problem, health
from bondctl.model import BondState, SlaveState
from bondctl.options import OPTIONS, Value, mode_number


@dataclass(frozen=True)
class SlaveView:
    name: str
    state: str
    mii_status: str
    link_failure_count: int
    perm_hwaddr: str
    mac: str
    up: bool
    operstate: str
    mtu: int
    queue_id: int
    prio: int | None
    ad_aggregator_id: int | None
    speed: int | None = None  # Mb/s; None when the driver does not say (or we cannot look)
    duplex: str | None = None

    @property
    def healthy(self) -> bool:
        return self.mii_status == "up"


@dataclass(frozen=True)
class OptionView:
    name: str
    value: Value
    default: Value
    effective: bool  # does it change anything in the bond's mode (Option.effective)

    @property
    def is_default(self) -> bool:
        default = self.default
        if OPTIONS[self.name].kind in ("int", "flag", "enum", "mac"):
            default = OPTIONS[self.name].parse(default)
        return self.value == default


@dataclass(frozen=True)
class BondView:
    name: str
    netns: str | None
    mode: str
    up: bool
    operstate: str
    mtu: int
    mac: str
    active_slave: str | None
    options: tuple[OptionView, ...]
    slaves: tuple[SlaveView, ...]
    ad_info: Mapping[str, Value] | None
    problems: tuple[Problem, ...]

    @property
    def slaves_up(self) -> int:
        return sum(1 for s in self.slaves if s.healthy)

    @property
    def state(self) -> str:
        """One word for a table cell: up, degraded, no-carrier or down."""
        if not self.up:
            return "down"
        if self.operstate not in ("UP", "UNKNOWN"):
            return "no-carrier"
        return "degraded" if self.problems else "up"

    def option(self, name: str) -> Value | None:
        return next((o.value for o in self.options if o.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "netns": self.netns,
            "mode": self.mode,
            "state": self.state,
            "up": self.up,
            "operstate": self.operstate,
            "mtu": self.mtu,
            "mac": self.mac,
            "active_slave": self.active_slave,
            "slaves_up": self.slaves_up,
            "options": {o.name: _plain(o.value) for o in self.options},
            "ineffective_options": [o.name for o in self.options if not o.effective],
            "ad_info": {k: _plain(v) for k, v in self.ad_info.items()} if self.ad_info else None,
            "slaves": [asdict(s) for s in self.slaves],
            "problems": [asdict(p) for p in self.problems],
        }

    def summary_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "netns": self.netns,
            "mode": self.mode,
            "state": self.state,
            "active_slave": self.active_slave,
            "slaves": [s.name for s in self.slaves],
            "slaves_up": self.slaves_up,
            "mtu": self.mtu,
            "problems": [asdict(p) for p in self.problems],
        }


def _plain(value: Value) -> Any:
    return list(value) if isinstance(value, tuple) else value


def slave_view(slave: SlaveState, speed: tuple[int | None, str | None] = (None, None)
               ) -> SlaveView:
    return SlaveView(
        name=slave.name, state=slave.state, mii_status=slave.mii_status,
        link_failure_count=slave.link_failure_count, perm_hwaddr=slave.perm_hwaddr,
        mac=slave.mac, up=slave.up, operstate=slave.operstate, mtu=slave.mtu,
        queue_id=slave.queue_id, prio=slave.prio, ad_aggregator_id=slave.ad_aggregator_id,
        speed=speed[0], duplex=speed[1],
    )


def bond_view(state: BondState,
              speeds: Mapping[str, tuple[int | None, str | None]] | None = None) -> BondView:
    number = mode_number(state.mode)
    options = tuple(
        OptionView(name, state.options[name], opt.default, number in opt.effective)
        for name, opt in OPTIONS.items()
        if name in state.options
    )
    slaves = tuple(slave_view(s, (speeds or {}).get(s.name, (None, None)))
                   for s in state.slaves)
    return BondView(
        name=state.name, netns=state.netns, mode=state.mode, up=state.up,
        operstate=state.operstate, mtu=state.mtu, mac=state.mac,
        active_slave=state.active_slave, options=options, slaves=slaves,
        ad_info=state.ad_info, problems=tuple(health(state)),
    )


@dataclass(frozen=True)
class BackendView:
    name: str
    origin: str
    available: bool
    reason: str
    priority: int
    selected: bool
    options: tuple[str, ...]
    slave_options: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = list(self.options)
        data["slave_options"] = list(self.slave_options)
        data["option_count"] = len(self.options)
        return data


@dataclass(frozen=True)
class Check:
    """One doctor check: ok, warn or fail, what was seen, and how to fix a failure."""

    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class OptionCheck:
    """One row of `bondctl check`: a setting the file asks for, and what runs."""

    bond: str
    what: str
    want: object
    have: object
    ok: bool


@dataclass
class PlanView:
    """What `apply`/`diff` found for one bond in a file."""

    bond: str
    netns: str | None
    action: Literal["create", "change", "none"]
    changes: list[tuple[str, object, object]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "bond": self.bond,
            "netns": self.netns,
            "action": self.action,
            "changes": [{"what": w, "want": _jsonable(a), "have": _jsonable(b)}
                        for w, a, b in self.changes],
            "commands": self.commands,
            "notes": self.notes,
        }


def _jsonable(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    return value

