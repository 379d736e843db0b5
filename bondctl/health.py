"""What an operator should look at first in a bond's state: one judgement, shared by the CLI's
views and the node's monitor (which runs without the CLI, in the agent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bondctl.model import BondState
from bondctl.options import OPTIONS, aggregates, needs_active_slave

Level = Literal["error", "warning"]
NO_PARTNER = "00:00:00:00:00:00"
_MIN_UP = [opt.name for opt in OPTIONS.values() if opt.min_up]


@dataclass(frozen=True)
class Problem:
    level: Level
    text: str


def health(state: BondState) -> list[Problem]:
    """What an operator should look at first; errors mean traffic is (or will be) hurt."""
    problems: list[Problem] = []
    if not state.up:
        problems.append(Problem("warning", f"{state.name} is administratively down"))
    elif state.operstate not in ("UP", "UNKNOWN"):
        problems.append(Problem("error", f"{state.name} has no carrier ({state.operstate})"))
    if not state.slaves:
        problems.append(Problem("warning", f"{state.name} has no slaves"))
    for slave in state.slaves:
        if slave.mii_status != "up":
            problems.append(Problem("error", f"slave {slave.name} is {slave.mii_status}"))
    up = sum(1 for s in state.slaves if s.mii_status == "up")
    for name in _MIN_UP:
        floor = int(state.options.get(name, 0))  # type: ignore[arg-type]
        if floor and up < floor:
            problems.append(Problem("error", f"{up} slave(s) up, fewer than {name} {floor}"))
    if needs_active_slave(state.mode) and state.slaves and not state.active_slave:
        problems.append(Problem("error", "no active slave: the bond carries no traffic"))
    if aggregates(state.mode) and state.slaves:
        partner = str((state.ad_info or {}).get("partner_mac", NO_PARTNER))
        if partner == NO_PARTNER:
            problems.append(Problem("warning", "no LACP partner (partner MAC is all zero)"))
        aggregator = (state.ad_info or {}).get("aggregator")
        outside = [s.name for s in state.slaves
                   if aggregator is not None and s.ad_aggregator_id not in (None, aggregator)]
        if outside:
            problems.append(Problem("warning", f"not in the active aggregator: "
                                               f"{', '.join(outside)}"))
    return problems
