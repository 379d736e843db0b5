"""The typed results of read commands: one model each, rendered as a rich table or as JSON.

A view holds what a backend read back (BondState, SlaveState) or what an operation found (a
reconcile.Plan) and adds only what the CLI wants beside it (speed and duplex, health problems,
options judged against the catalogue); `to_json()` is the whole machine-readable answer and the
rich renderers in bondctl.cli.render draw from the same objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from bondctl.health import Problem, health
from bondctl.model import BondState, SlaveState
from bondctl.options import OPTIONS, Option, Value, mode_number

if TYPE_CHECKING:
    from bondctl.reconcile import Plan


# The JSON's keys for a slave, in the order `show --json` has always printed them.
_SLAVE_KEYS = ("name", "state", "mii_status", "link_failure_count", "perm_hwaddr", "mac", "up",
               "operstate", "mtu", "queue_id", "prio", "ad_aggregator_id")


@dataclass(frozen=True)
class SlaveView:
    """A slave as read back, with what the CLI looks up beside it (sysfs speed and duplex)."""

    slave: SlaveState
    speed: int | None = None  # Mb/s; None when the driver does not say (or we cannot look)
    duplex: str | None = None

    @property
    def healthy(self) -> bool:
        return self.slave.mii_status == "up"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {key: getattr(self.slave, key) for key in _SLAVE_KEYS}
        out.update(speed=self.speed, duplex=self.duplex)
        return out


@dataclass(frozen=True)
class OptionView:
    """An option's value as read back, judged against the catalogue's row."""

    option: Option
    value: Value
    effective: bool  # does it change anything in the bond's mode (Option.effective)

    @property
    def name(self) -> str:
        return self.option.name

    @property
    def is_default(self) -> bool:
        default = self.option.default
        if self.option.kind in ("int", "flag", "enum", "mac"):
            default = self.option.parse(default)
        return self.value == default


@dataclass(frozen=True)
class BondView:
    """A bond as read back (`bond`), with what only the CLI adds: its slaves' speeds, the
    health judgement, and each option judged against the catalogue."""

    bond: BondState
    slaves: tuple[SlaveView, ...]
    options: tuple[OptionView, ...]
    problems: tuple[Problem, ...]

    @property
    def slaves_up(self) -> int:
        return sum(1 for s in self.slaves if s.healthy)

    @property
    def state(self) -> str:
        """One word for a table cell: up, degraded, no-carrier or down."""
        if not self.bond.up:
            return "down"
        if self.bond.operstate not in ("UP", "UNKNOWN"):
            return "no-carrier"
        return "degraded" if self.problems else "up"

    def option(self, name: str) -> Value | None:
        return next((o.value for o in self.options if o.name == name), None)

    def to_json(self) -> dict[str, Any]:
        bond = self.bond
        return {
            "name": bond.name,
            "netns": bond.netns,
            "mode": bond.mode,
            "state": self.state,
            "up": bond.up,
            "operstate": bond.operstate,
            "mtu": bond.mtu,
            "mac": bond.mac,
            "active_slave": bond.active_slave,
            "slaves_up": self.slaves_up,
            "options": {o.name: _plain(o.value) for o in self.options},
            "ineffective_options": [o.name for o in self.options if not o.effective],
            "ad_info": {k: _plain(v) for k, v in bond.ad_info.items()} if bond.ad_info else None,
            "slaves": [s.to_json() for s in self.slaves],
            "problems": [asdict(p) for p in self.problems],
        }

    def summary_json(self) -> dict[str, Any]:
        bond = self.bond
        return {
            "name": bond.name,
            "netns": bond.netns,
            "mode": bond.mode,
            "state": self.state,
            "active_slave": bond.active_slave,
            "slaves": [s.slave.name for s in self.slaves],
            "slaves_up": self.slaves_up,
            "mtu": bond.mtu,
            "problems": [asdict(p) for p in self.problems],
        }


def _plain(value: Value) -> Any:
    return list(value) if isinstance(value, tuple) else value


def bond_view(state: BondState,
              speeds: Mapping[str, tuple[int | None, str | None]] | None = None) -> BondView:
    number = mode_number(state.mode)
    options = tuple(OptionView(opt, state.options[name], number in opt.effective)
                    for name, opt in OPTIONS.items() if name in state.options)
    slaves = tuple(SlaveView(s, *(speeds or {}).get(s.name, (None, None)))
                   for s in state.slaves)
    return BondView(state, slaves, options, tuple(health(state)))


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


class PlanView:
    """What `apply`/`diff` found for one bond in a file (a reconcile.Plan), as JSON."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "bond": plan.bond,
            "netns": plan.netns,
            "action": plan.action,
            "changes": [{"what": d.what, "want": _jsonable(d.want), "have": _jsonable(d.have)}
                        for d in plan.changes],
            "commands": plan.commands,
            "notes": plan.notes,
        }


def _jsonable(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    return value
