"""Rich renderings of the views: tables for people. Degraded states stand out in colour, and
also in words (colour is off on a pipe or with NO_COLOR)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bondctl.cli.flags import render_value
from bondctl.cli.views import BackendView, BondView, Check, SlaveView
from bondctl.health import NO_PARTNER, Problem
from bondctl.options import AB, AD_INFO_FIELDS, LACP, MODES
from bondctl.reconcile import Plan, SettingCheck

OK, WARN, BAD, DIM = "green", "yellow", "bold red", "dim"


class FitTable(Table):
    """A table whose column names are never cut: "SLAVES UP" never turns into "SLA…".

    Cells fold onto more lines while the table fits; on a terminal too narrow for it, each
    row is shown as NAME: value lines instead of a table cropped at the edge."""

    def add_column(self, header: RenderableType = "", *args: object, **kwargs: object) -> None:
        kwargs.setdefault("min_width", len(str(header)))
        kwargs.update(no_wrap=False, overflow="fold")
        super().add_column(header, *args, **kwargs)  # type: ignore[arg-type]

    def __rich_console__(self, console: Any, options: Any) -> Any:
        names = [str(column.header) for column in self.columns]
        fits = self.__rich_measure__(console, options).minimum <= options.max_width
        if fits or not self.show_header:
            yield from super().__rich_console__(console, options)
            return
        for row in range(self.row_count):
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True, style="bold")
            grid.add_column(overflow="fold")
            for name, column in zip(names, self.columns, strict=True):
                if name:
                    grid.add_row(f"{name}:", list(column.cells)[row])
            yield grid
            if row < self.row_count - 1:
                yield ""
_STATE_STYLE = {"up": OK, "degraded": WARN, "down": WARN, "no-carrier": BAD}


def _state_style(view: BondView) -> str:
    if view.state == "degraded" and any(p.level == "error" for p in view.problems):
        return BAD
    return _STATE_STYLE.get(view.state, "")


def _ns(view: BondView) -> str:
    return view.bond.netns or "(current)"


# Every cell that can carry a name or a kernel message is a Text: a str cell would be parsed
# as rich markup, and "[...]" is a legal part of an interface name or an error.
def bond_table(views: Sequence[BondView]) -> Table:
    table = FitTable(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "MODE", "STATE", "ACTIVE", "SLAVES UP", "MTU", "NETNS"):
        table.add_column(column, no_wrap=True)
    for view in views:
        up = Text(f"{view.slaves_up}/{len(view.slaves)}",
                  style=BAD if view.slaves_up < len(view.slaves) else "")
        bond = view.bond
        table.add_row(Text(bond.name), bond.mode, Text(view.state, style=_state_style(view)),
                      Text(bond.active_slave or "-"), up, str(bond.mtu), Text(_ns(view)))
    return table


def problems(items: Iterable[Problem]) -> Text:
    text = Text()
    for problem in items:
        mark = "✗" if problem.level == "error" else "!"
        style = BAD if problem.level == "error" else WARN
        text.append(f"{mark} {problem.text}\n", style=style)
    text.rstrip()
    return text


def header(view: BondView) -> Text:
    bond = view.bond
    text = Text()
    text.append(bond.name, style="bold")
    text.append(f"  {bond.mode}  ")
    text.append(view.state, style=_state_style(view))
    text.append(f"  mtu {bond.mtu}  mac {bond.mac}  netns {_ns(view)}")
    if bond.active_slave or bond.mode == MODES[AB]:
        text.append("  active ")
        text.append(bond.active_slave or "none", style="" if bond.active_slave else BAD)
    return text


def options_table(view: BondView, *, show_all: bool) -> Table:
    table = FitTable(box=None, pad_edge=False, header_style="bold", title_justify="left")
    table.add_column("OPTION", no_wrap=True)
    table.add_column("VALUE", no_wrap=True)
    table.add_column("", no_wrap=True)
    for opt in view.options:
        if not opt.effective and not show_all:
            continue
        remark = "" if opt.effective else f"no effect in {view.bond.mode}"
        if not remark and opt.is_default:
            remark = "default"
        style = DIM if (opt.is_default or not opt.effective) else ""
        table.add_row(Text(opt.name), Text(render_value(opt.value), style=style),
                      Text(remark, style=DIM))
    return table


def _speed(slave: SlaveView) -> str:
    if slave.speed is None:
        return "-"
    return f"{slave.speed // 1000}G" if slave.speed % 1000 == 0 else f"{slave.speed}M"


def slaves_table(view: BondView) -> Table:
    lacp = view.bond.mode == MODES[LACP]
    table = FitTable(box=None, pad_edge=False, header_style="bold")
    columns = ["SLAVE", "STATE", "MII", "FAILURES", "PERM MAC", "SPEED", "DUPLEX", "QUEUE"]
    if lacp:
        columns.append("AGGREGATOR")
    for column in columns:
        table.add_column(column, no_wrap=True)
    aggregator = (view.bond.ad_info or {}).get("aggregator")
    for seen in view.slaves:
        slave = seen.slave
        mii = Text(slave.mii_status, style=OK if seen.healthy else BAD)
        active = slave.name == view.bond.active_slave
        row: list[str | Text] = [
            Text(slave.name, style="bold" if active else ""),
            Text(slave.state, style=OK if slave.state == "active" else ""),
            mii,
            Text(str(slave.link_failure_count), style=WARN if slave.link_failure_count else ""),
            Text(slave.perm_hwaddr or "-"),
            _speed(seen),
            Text(seen.duplex or "-"),
            str(slave.queue_id),
        ]
        if lacp:
            agg = slave.ad_aggregator_id
            row.append(Text("-" if agg is None else str(agg),
                            style=WARN if agg is not None and agg != aggregator else ""))
        table.add_row(*row)
    return table


def ad_table(view: BondView) -> Table:
    info = view.bond.ad_info or {}
    table = FitTable(box=None, pad_edge=False, show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    for key, _, wire in AD_INFO_FIELDS:
        value = str(info.get(key, "-"))
        # The one MAC there is the partner's: all zeros (or none) means no LACP partner.
        style = WARN if wire == "mac" and value in (NO_PARTNER, "-") else ""
        table.add_row(key.replace("_", " "), Text(value, style=style))
    return table


def bond_detail(view: BondView, *, show_all: bool = False) -> Group:
    parts: list[RenderableType] = [header(view)]
    if view.problems:
        parts += [Text(), problems(view.problems)]
    parts += [Text(), Text("Options", style="bold underline"),
              options_table(view, show_all=show_all)]
    hidden = sum(1 for o in view.options if not o.effective)
    if hidden and not show_all:
        parts.append(Text(f"({hidden} options with no effect in {view.bond.mode} hidden; --all "
                          "shows them)", style=DIM))
    parts += [Text(), Text("Slaves", style="bold underline")]
    parts.append(slaves_table(view) if view.slaves else Text("none", style=WARN))
    if view.bond.mode == MODES[LACP]:
        parts += [Text(), Text(MODES[LACP], style="bold underline"), ad_table(view)]
    return Group(*parts)


def backends_table(views: Sequence[BackendView], errors: Sequence[str]) -> Group:
    table = FitTable(box=None, pad_edge=False, header_style="bold")
    table.add_column("BACKEND", no_wrap=True)
    table.add_column("AVAILABLE", no_wrap=True)
    table.add_column("OPTIONS", no_wrap=True, justify="right")
    table.add_column("ORIGIN / REASON")
    for view in views:
        name = Text(view.name + (" *" if view.selected else ""), style="bold")
        where = Text(view.origin)
        where.append(f"\n{view.reason}", style=DIM if view.available else WARN)
        table.add_row(name, Text("yes" if view.available else "no",
                                 style=OK if view.available else BAD),
                      str(len(view.options)), where)  # Text cells: no markup parsing
    parts: list[RenderableType] = [table]
    if any(v.selected for v in views):
        parts.append(Text("* the backend bondctl uses by default", style=DIM))
    for line in errors:
        parts.append(Text(f"! plugin failed to load: {line}", style=WARN))
    return Group(*parts)


_CHECK_STYLE = {"ok": OK, "warn": WARN, "fail": BAD}


def doctor_table(checks: Sequence[Check]) -> Table:
    table = FitTable(box=None, pad_edge=False, header_style="bold")
    table.add_column("CHECK", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("DETAIL")
    table.add_column("FIX")
    for check in checks:
        table.add_row(Text(check.name), Text(check.status, style=_CHECK_STYLE[check.status]),
                      Text(check.detail), Text(check.fix, style=WARN if check.fix else ""))
    return table


def check_table(rows: Sequence[SettingCheck]) -> Table:
    table = FitTable(box=None, pad_edge=False, header_style="bold")
    for column in ("BOND", "SETTING", "WANT", "HAVE", "RESULT"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(Text(row.bond), Text(row.what), Text(_show(row.want)), Text(_show(row.have)),
                      Text("pass" if row.ok else "FAIL", style=OK if row.ok else BAD))
    return table


def plan_renderable(plans: Sequence[Plan]) -> Group:
    parts: list[RenderableType] = []
    for plan in plans:
        where = f" in {plan.netns}" if plan.netns else ""
        if plan.action == "none":
            parts.append(Text(f"  {plan.bond}{where}: up to date", style=OK))
            continue
        verb = "create" if plan.action == "create" else "change"
        parts.append(Text(f"{'+' if verb == 'create' else '~'} {plan.bond}{where}: {verb}",
                          style="bold"))
        for drift in plan.changes:
            line = Text(f"    {drift.what}: ")
            if drift.have is not None or plan.action == "change":
                line.append(_show(drift.have), style="red")
                line.append(" -> ")
            line.append(_show(drift.want), style=OK)
            parts.append(line)
    return Group(*parts)


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
