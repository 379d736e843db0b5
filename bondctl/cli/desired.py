"""`apply`, `diff` and `check`: bonds described in a YAML or JSON file against what runs.

A file holds one bond, a list of bonds, or {"bonds": [...]}; each bond has name, mode,
options (any spelling the catalogue knows), slaves (names, or {name, queue_id, prio}), and
optionally mtu, mac, netns, addresses, routes and vlans (bondctl.ipconfig). Applying is
idempotent: only what differs is changed, through the same bondctl.ops calls as the other
commands (addresses, routes and VLANs through bondctl.ipconfig), and nothing is touched when
nothing differs (no link flaps, no address or route notification on a re-apply).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bondctl import ipconfig
from bondctl.cli.session import Session, console, note, print_json
from bondctl.cli.views import OptionCheck, PlanView
from bondctl.document import Bond as Entry
from bondctl.document import from_mapping
from bondctl.errors import DriftError, NotFoundError, UnsupportedError, ValidationError
from bondctl.model import BondSpec, BondState, Drift, diff
from bondctl.ops import Bonds
from bondctl.options import MODE, OPTIONS
from bondctl.steps import SetLink, SetSlave, Step, describe


def load(path: Path) -> list[Entry]:
    """Every bond in the file, each validated by BondSpec.build, or a ValidationError."""
    text = _read(path)
    data = _parse(text, path)
    if isinstance(data, Mapping) and "bonds" in data and "name" not in data:
        data = data["bonds"]
    items = data if isinstance(data, list) else [data]
    entries = [from_mapping(item, i) for i, item in enumerate(items)]
    seen: set[tuple[str | None, str]] = set()
    for entry in entries:
        key = (entry.netns, entry.spec.name)
        if key in seen:
            raise ValidationError(f"{path}: bond {entry.spec.name} is described twice")
        seen.add(key)
    return entries


def _read(path: Path) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except OSError as exc:
        raise ValidationError(f"{path}: {exc.strerror}") from None


def _parse(text: str, path: Path) -> Any:
    if path.suffix == ".json" or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path}: invalid JSON: {exc}") from None
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]  # optional; only for YAML
    except ImportError:
        raise UnsupportedError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); "
                               "or give the file as JSON") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path}: invalid YAML: {exc}") from None


def _read_state(bonds: Bonds, name: str) -> BondState | None:
    try:
        return bonds.show(name)
    except NotFoundError:
        return None


def _read_ip(bonds: Bonds, name: str) -> ipconfig.IpConfig | None:
    return ipconfig.read(bonds.netns, name)


def changes_of(entry: Entry, state: BondState | None,
               have_ip: ipconfig.IpConfig | None) -> list[tuple[str, object, object]]:
    spec = entry.spec
    if state is None:
        wanted: list[tuple[str, object, object]] = [(MODE.name, spec.mode, None)]
        wanted += [(k, v, None) for k, v in spec.options.items()]
        wanted.append(("slaves", list(spec.slave_names), None))
        wanted += [(k, v, None) for k, v in (("mtu", spec.mtu), ("mac", spec.mac)) if v]
        wanted += [(d.what, d.want, None)
                   for d in ipconfig.diff(entry.ip, ipconfig.IpConfig((), (), ()))]
        return wanted
    return [(d.what, d.want, d.have) for d in drifts_of(entry, state, have_ip)]


def drifts_of(entry: Entry, state: BondState,
              have_ip: ipconfig.IpConfig | None) -> list[Drift]:
    return diff(entry.spec, state) + ipconfig.diff(entry.ip, have_ip or ipconfig.NOTHING)


def _run(bonds: Bonds, steps: Sequence[Step]) -> None:
    # Link-level changes that bondctl.ops has no operation for (mtu, mac, up, slave options):
    # the same dry-run rule as ops.Bonds.
    if not steps:
        return
    if bonds.dry_run:
        bonds.planned.extend(bonds.backend.render(steps, bonds.netns))
    else:
        bonds.backend.execute(steps, bonds.netns)


def reconcile(session: Session, entry: Entry, *, dry_run: bool) -> PlanView:
    """Make one bond match its entry (or, dry, say how); the PlanView says what was done."""
    spec = entry.spec
    bonds = session.bonds(entry.netns, dry_run=dry_run)
    state = _read_state(bonds, spec.name)
    have_ip = None if state is None else _read_ip(bonds, spec.name)
    plan = PlanView(spec.name, bonds.netns.name or bonds.netns.path,
                    "create" if state is None else "change",
                    changes_of(entry, state, have_ip))
    if not plan.changes:
        plan.action = "none"
        return plan
    if state is None:
        outcome = bonds.create(spec)
        plan.commands = bonds.planned if dry_run else [describe(s) for s in outcome.steps]
        plan.notes += outcome.notes
    else:
        _change_bond(bonds, spec, state, plan, dry_run=dry_run)
    # Addresses, routes and VLANs ride on the bond: only once it is as asked.
    actions = ipconfig.plan(spec.name, entry.ip, have_ip)
    if not dry_run:
        ipconfig.execute(bonds.netns, actions)
    plan.commands += [str(a) for a in actions]
    return plan


def _change_bond(bonds: Bonds, spec: BondSpec, state: BondState, plan: PlanView, *,
                 dry_run: bool) -> None:
    done: list[Step] = []
    gone = [s for s in state.slave_names if s not in spec.slave_names]
    new = [s for s in spec.slave_names if s not in state.slave_names]
    if gone:
        done += bonds.release(spec.name, gone).steps
    if new:
        opts = {s.name: dict(s.options) for s in spec.slaves if s.name in new and s.options}
        done += bonds.enslave(spec.name, new, opts).steps
    drifted = {what for what, _, _ in plan.changes}
    options: dict[str, object] = {k: v for k, v in spec.options.items() if k in drifted}
    if MODE.name in drifted:
        options = {MODE.name: spec.mode, **options}
    if options:
        outcome = bonds.set_options(spec.name, options)
        done += outcome.steps
        plan.notes += outcome.notes
    link_steps: list[Step] = [
        SetSlave(s.name, dict(s.options)) for s in spec.slaves
        if s.name not in new and any(f"{s.name}.{k}" in drifted for k in s.options)]
    if "mtu" in drifted or "mac" in drifted or "up" in drifted:
        link_steps.append(SetLink(spec.name, mtu=spec.mtu if "mtu" in drifted else None,
                                  mac=spec.mac if "mac" in drifted else None,
                                  up=spec.up if "up" in drifted else None))
    _run(bonds, link_steps)
    done += link_steps
    plan.commands = bonds.planned if dry_run else [describe(s) for s in done]


def verify(session: Session, entry: Entry) -> None:
    bonds = session.bonds(entry.netns)
    drifts = drifts_of(entry, bonds.show(entry.spec.name), _read_ip(bonds, entry.spec.name))
    if drifts:
        raise DriftError(f"{entry.spec.name} still differs after apply: "
                         + "; ".join(map(str, drifts)))


def apply(session: Session, path: Path, *, rollback_after: float | None = None,
          probe: str | None = None) -> None:
    from bondctl.cli.change import warn_ineffective

    entries = load(path)
    for entry in entries:
        warn_ineffective(entry.spec.mode, entry.spec.options)
    saved = None
    if rollback_after is not None and not session.dry_run:
        from bondctl.cli import checkpoint

        saved = checkpoint.begin(session, entries, rollback_after, probe, str(path))
    plans = []
    try:
        for entry in entries:
            plans.append(reconcile(session, entry, dry_run=session.dry_run))
            if not session.dry_run:
                verify(session, entry)
    except BaseException:
        if saved is not None:
            _, said = checkpoint.rollback_now(saved["id"])
            note(f"apply failed: checkpoint {saved['id']} restored: {'; '.join(said)}")
        raise
    if saved is not None:
        checkpoint.arm(saved)
        note(f"checkpoint {saved['id']}: rolls back in {rollback_after:g} s unless "
             + (f"the probe {probe} keeps answering or " if probe else "")
             + "`bondctl commit` confirms it")
    for plan in plans:
        for text in plan.notes:
            note(text)
    if session.json:
        print_json([p.to_json() for p in plans])
        return
    out = console()
    from bondctl.cli.render import plan_renderable

    out.print(plan_renderable(plans))
    if session.dry_run:
        for plan in plans:
            for line in plan.commands:
                out.print(line, highlight=False, markup=False)
        return
    changed = sum(1 for p in plans if p.action != "none")
    out.print(f"applied: {changed} changed, {len(plans) - changed} up to date")


def show_diff(session: Session, path: Path) -> None:
    plans = []
    for entry in load(path):
        bonds = session.bonds(entry.netns)
        state = _read_state(bonds, entry.spec.name)
        changes = changes_of(entry, state,
                             None if state is None else _read_ip(bonds, entry.spec.name))
        action = "create" if state is None else ("change" if changes else "none")
        plans.append(PlanView(entry.spec.name, bonds.netns.name or bonds.netns.path,
                              action, changes))  # type: ignore[arg-type]
    if session.json:
        print_json([p.to_json() for p in plans])
        return
    from bondctl.cli.render import plan_renderable

    console().print(plan_renderable(plans))


def check_rows(entry: Entry, state: BondState | None,
               have_ip: ipconfig.IpConfig | None = None) -> list[OptionCheck]:
    spec, name = entry.spec, entry.spec.name
    if state is None:
        return [OptionCheck(name, "exists", True, False, False)]
    drifted = {d.what: d.have for d in diff(spec, state)}
    rows = [OptionCheck(name, MODE.name, spec.mode, state.mode, MODE.name not in drifted)]
    for key, want in spec.options.items():
        if OPTIONS[key].transient:
            continue  # a request, not a setting: failover moves it
        have = state.options.get(key)
        rows.append(OptionCheck(name, key, want, have, key not in drifted))
    rows.append(OptionCheck(name, "slaves", sorted(spec.slave_names),
                            sorted(state.slave_names), "slaves" not in drifted))
    for slave in spec.slaves:
        for key, value in slave.options.items():
            what = f"{slave.name}.{key}"
            have_slave = state.slave(slave.name)
            rows.append(OptionCheck(name, what, value, getattr(have_slave, key, None),
                                    what not in drifted))
    for key, want_value in (("mtu", spec.mtu), ("mac", spec.mac)):
        if want_value is not None:
            rows.append(OptionCheck(name, key, want_value, getattr(state, key),
                                    key not in drifted))
    rows.append(OptionCheck(name, "up", spec.up, state.up, "up" not in drifted))
    rows += [OptionCheck(name, what, want, have, ok) for what, want, have, ok
             in ipconfig.check_rows(entry.ip, have_ip or ipconfig.IpConfig((), (), ()))]
    return rows


def check(session: Session, path: Path) -> None:
    rows: list[OptionCheck] = []
    for entry in load(path):
        bonds = session.bonds(entry.netns)
        state = _read_state(bonds, entry.spec.name)
        rows += check_rows(entry, state,
                           None if state is None else _read_ip(bonds, entry.spec.name))
    failed = [r for r in rows if not r.ok]
    if session.json:
        print_json({"ok": not failed, "checks": [
            {"bond": r.bond, "what": r.what, "want": _plain(r.want), "have": _plain(r.have),
             "ok": r.ok} for r in rows]})
    else:
        from bondctl.cli.render import check_table

        console().print(check_table(rows))
    if failed:
        raise DriftError(f"{len(failed)} of {len(rows)} settings differ: "
                         + ", ".join(f"{r.bond} {r.what}" for r in failed))


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
