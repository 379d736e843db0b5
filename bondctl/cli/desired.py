"""`apply`, `diff` and `check`: bonds described in a YAML or JSON file against what runs.

A file holds one bond, a list of bonds, or {"bonds": [...]}; each bond has name, mode,
options (any spelling the catalogue knows), slaves (names, or {name, queue_id, prio}), and
optionally mtu, mac, netns, addresses, routes and vlans (bondctl.ipconfig). This module
reads the file and renders; bondctl.reconcile compares and changes, idempotently.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bondctl import reconcile
from bondctl.cli.session import Session, console, note, print_json
from bondctl.cli.views import PlanView
from bondctl.document import Bond as Entry
from bondctl.document import from_mapping
from bondctl.errors import DriftError, NotFoundError, UnsupportedError, ValidationError


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
            bonds = session.bonds(entry.netns)
            plans.append(reconcile.reconcile(bonds, entry))
            if not session.dry_run:
                reconcile.verify(bonds, entry)
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
        print_json([PlanView(p).to_json() for p in plans])
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
    plans = [reconcile.survey(session.bonds(entry.netns), entry)[0] for entry in load(path)]
    if session.json:
        print_json([PlanView(p).to_json() for p in plans])
        return
    from bondctl.cli.render import plan_renderable

    console().print(plan_renderable(plans))


def check(session: Session, path: Path) -> None:
    rows: list[reconcile.SettingCheck] = []
    for entry in load(path):
        rows += reconcile.checks(entry, *reconcile.read(session.bonds(entry.netns),
                                                        entry.spec.name))
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
