"""The write commands: create, delete, enslave, release, set, failover.

Every input is validated (BondSpec.build, the catalogue, bondctl.names) before a backend is
chosen or anything changes. With --dry-run the backend renders the steps instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bondctl.cli.session import Session, note, print_json, warning
from bondctl.names import check_ifname
from bondctl.ops import Bonds, Outcome


def _finish(session: Session, bonds: Bonds, outcome: Outcome, done: str) -> None:
    """Print the plan (dry run), or the notes and a one-line summary."""
    if bonds.dry_run:
        if session.json:
            print_json({"dry_run": True, "commands": bonds.planned, "notes": outcome.notes})
            return
        for line in bonds.planned:
            print(line)
        for text in outcome.notes:
            note(text)
        return
    for text in outcome.notes:
        note(text)
    if session.json and outcome.state is not None:
        from bondctl.cli.views import bond_view

        print_json(bond_view(outcome.state).to_json())
        return
    print(done)


def warn_ineffective(mode: str, options: Mapping[str, object]) -> None:
    """The catalogue's rule for options without effect in the mode: applied, with a warning."""
    from bondctl.options import ineffective

    for _name, why in ineffective(mode, options):  # type: ignore[arg-type]
        warning(why)


def create(session: Session, name: str, mode: str, options: Mapping[str, object],
           slaves: Sequence[str], mtu: str | None, mac: str | None, *, up: bool = True) -> None:
    from bondctl.model import BondSpec

    spec = BondSpec.build(name, mode, options, list(slaves), mtu=mtu, mac=mac, up=up)
    warn_ineffective(spec.mode, spec.options)
    bonds = session.bonds()
    outcome = bonds.create(spec)
    members = ", ".join(spec.slave_names) or "no slaves"
    _finish(session, bonds, outcome, f"created {name} ({spec.mode}) with {members} "
                                     f"in {bonds.netns.label}")


def delete(session: Session, name: str, *, slaves_up: bool) -> None:
    check_ifname(name, "bond name")
    bonds = session.bonds()
    outcome = bonds.delete(name, slaves_up=slaves_up)
    _finish(session, bonds, outcome, f"deleted {name}")


def enslave(session: Session, name: str, links: Sequence[str]) -> None:
    check_ifname(name, "bond name")
    for link in links:
        check_ifname(link, "link name")
    bonds = session.bonds()
    outcome = bonds.enslave(name, list(links))
    _finish(session, bonds, outcome, f"{', '.join(links)} enslaved to {name}")


def release(session: Session, name: str, links: Sequence[str], *, up: bool) -> None:
    check_ifname(name, "bond name")
    for link in links:
        check_ifname(link, "link name")
    bonds = session.bonds()
    outcome = bonds.release(name, list(links), up=up)
    _finish(session, bonds, outcome, f"{', '.join(links)} released from {name}")


def set_options(session: Session, name: str, pairs: Sequence[str]) -> None:
    from bondctl.cli.flags import parse_pairs
    from bondctl.options import MODE, parse_options

    check_ifname(name, "bond name")
    raw = parse_pairs(pairs)
    changes = parse_options(raw)  # every key and value checked before a backend is chosen
    bonds = session.bonds()
    mode = str(changes.pop(MODE.name, "") or bonds.show(name).mode)
    warn_ineffective(mode, changes)
    outcome = bonds.set_options(name, raw)
    changed = ", ".join(f"{k}={v}" for k, v in outcome.changed.items())
    _finish(session, bonds, outcome, f"{name}: set {changed}" if changed else
            f"{name}: nothing to change")


def failover(session: Session, name: str, to: str | None) -> None:
    check_ifname(name, "bond name")
    if to is not None:
        check_ifname(to, "slave name")
    bonds = session.bonds()
    outcome = bonds.failover(name, to)
    done = outcome.notes.pop() if outcome.notes else f"{name}: failover requested"
    _finish(session, bonds, outcome, done)
