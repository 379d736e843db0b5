"""A desired state against what runs: the one reconcile behind `apply`, `diff`, `check` and a
checkpoint's restore.

It works on typed drift (model.Drift: kind, key, link), never on its words. Applying is
idempotent: only what differs is changed, through bondctl.ops (bonding options, slaves, the
bond's link attributes) and bondctl.ipconfig (addresses, routes, VLANs), and nothing is touched
when nothing differs (no link flaps, no address or route notification on a re-apply). A dry
run (Bonds.dry_run) goes through the same path and says what it would do.
"""

from __future__ import annotations

from . import ipconfig
from .document import Bond
from .errors import DriftError, NotFoundError
from .ipconfig import IpConfig
from .links import Links
from .model import BondState, Drift, diff
from .ops import Bonds
from .options import MODE, OPTIONS
from .record import Record
from .steps import Step, describe

_NONE = IpConfig((), (), ())  # a bond that carries nothing (a new one)


class Plan:
    """What reconciling one bond found (`changes`) and did or would do (`commands`), and
    what a person should be told."""

    def __init__(self, bond: str, netns: str | None, action: str,
                 changes: list[Drift]) -> None:
        self.bond = bond
        self.netns = netns
        self.action = action  # "create", "change" or "none"
        self.changes = changes  # for a create, everything asked for, with have None
        self.commands: list[str] = []
        self.notes: list[str] = []


class SettingCheck(Record):
    """One setting a desired state asks for, and what runs (`bondctl check`)."""

    bond: str
    what: str
    want: object
    have: object
    ok: bool


def read(bonds: Bonds, name: str) -> tuple[BondState | None, IpConfig | None]:
    """The bond as it runs and what it carries; (None, None) when there is no such bond."""
    try:
        state = bonds.show(name)
    except NotFoundError:
        return None, None
    return state, ipconfig.read(Links(bonds.backend, bonds.netns), name)


def drifts(entry: Bond, state: BondState, have_ip: IpConfig | None) -> list[Drift]:
    return diff(entry.spec, state) + ipconfig.diff(entry.ip, have_ip or ipconfig.NOTHING)


def wanted(entry: Bond) -> list[Drift]:
    """Everything a new bond is asked to be, as drift from nothing."""
    spec = entry.spec
    out = [Drift(MODE.name, spec.mode, None, "mode", MODE.name)]
    out += [Drift(k, v, None, "option", k) for k, v in spec.options.items()]
    out.append(Drift("slaves", list(spec.slave_names), None, "slaves"))
    out += [Drift(k, v, None, "link", k) for k, v in (("mtu", spec.mtu), ("mac", spec.mac)) if v]
    out += [Drift(d.what, d.want, None, d.kind, d.key, d.link)
            for d in ipconfig.diff(entry.ip, _NONE)]
    return out


def survey(bonds: Bonds, entry: Bond) -> tuple[Plan, BondState | None, IpConfig | None]:
    """What would change, without changing anything; with what was read, to act on."""
    state, have_ip = read(bonds, entry.spec.name)
    if state is None:
        plan = Plan(entry.spec.name, _where(bonds), "create", wanted(entry))
    else:
        found = drifts(entry, state, have_ip)
        plan = Plan(entry.spec.name, _where(bonds), "change" if found else "none", found)
    return plan, state, have_ip


def reconcile(bonds: Bonds, entry: Bond) -> Plan:
    """Make one bond match its entry (or, dry, say how); the Plan says what was done."""
    plan, state, have_ip = survey(bonds, entry)
    if plan.action == "none":
        return plan
    if state is None:
        outcome = bonds.create(entry.spec)
        plan.commands = bonds.planned if bonds.dry_run else [describe(s) for s in outcome.steps]
        plan.notes += outcome.notes
    else:
        _change(bonds, entry, state, plan)
    # Addresses, routes and VLANs ride on the bond: only once it is as asked.
    actions = ipconfig.plan(entry.spec.name, entry.ip, have_ip)
    if not bonds.dry_run:
        ipconfig.execute(Links(bonds.backend, bonds.netns), actions)
    plan.commands += [str(a) for a in actions]
    return plan


def _change(bonds: Bonds, entry: Bond, state: BondState, plan: Plan) -> None:
    spec = entry.spec
    done: list[Step] = []
    gone = [s for s in state.slave_names if s not in spec.slave_names]
    new = [s for s in spec.slave_names if s not in state.slave_names]
    if gone:
        done += bonds.release(spec.name, gone).steps
    if new:
        opts = {s.name: dict(s.options) for s in spec.slaves if s.name in new and s.options}
        done += bonds.enslave(spec.name, new, opts).steps
    kinds = {(d.kind, d.key) for d in plan.changes}
    options: dict[str, object] = {k: v for k, v in spec.options.items()
                                  if ("option", k) in kinds}
    if ("mode", MODE.name) in kinds:
        options = {MODE.name: spec.mode, **options}
    link = {d.key for d in plan.changes if d.kind == "link"}
    mac = spec.mac if "mac" in link else None
    if options or mac:
        # The MAC goes with the options: the kernel takes it only before or after some.
        outcome = bonds.set_options(spec.name, options, mac)
        done += outcome.steps
        plan.notes += outcome.notes
    # A slave whose options drifted gets all of them again, in one step.
    drifted_slaves = {d.link for d in plan.changes if d.kind == "slave_option"}
    done += bonds.set_link(
        spec.name, mtu=spec.mtu if "mtu" in link else None,
        up=spec.up if "up" in link else None,
        slave_options={s.name: s.options for s in spec.slaves
                       if s.name in drifted_slaves and s.name not in new}).steps
    plan.commands = bonds.planned if bonds.dry_run else [describe(s) for s in done]


def verify(bonds: Bonds, entry: Bond) -> None:
    """DriftError unless the bond now runs as its entry asks."""
    found = drifts(entry, bonds.show(entry.spec.name),
                   ipconfig.read(Links(bonds.backend, bonds.netns), entry.spec.name))
    if found:
        raise DriftError(f"{entry.spec.name} still differs after apply: "
                         + "; ".join(map(str, found)))


def checks(entry: Bond, state: BondState | None,
           have_ip: IpConfig | None = None) -> list[SettingCheck]:
    """Every setting the entry asks for, passed or failed against what runs."""
    spec, name = entry.spec, entry.spec.name
    if state is None:
        return [SettingCheck(name, "exists", True, False, False)]
    drifted = {d.what for d in diff(spec, state)}
    rows = [SettingCheck(name, MODE.name, spec.mode, state.mode, MODE.name not in drifted)]
    for key, want in spec.options.items():
        if OPTIONS[key].transient:
            continue  # a request, not a setting: failover moves it
        rows.append(SettingCheck(name, key, want, state.options.get(key), key not in drifted))
    rows.append(SettingCheck(name, "slaves", sorted(spec.slave_names),
                             sorted(state.slave_names), "slaves" not in drifted))
    for slave in spec.slaves:
        for key, value in slave.options.items():
            what = f"{slave.name}.{key}"
            rows.append(SettingCheck(name, what, value,
                                     getattr(state.slave(slave.name), key, None),
                                     what not in drifted))
    for key, want_value in (("mtu", spec.mtu), ("mac", spec.mac)):
        if want_value is not None:
            rows.append(SettingCheck(name, key, want_value, getattr(state, key),
                                     key not in drifted))
    rows.append(SettingCheck(name, "up", spec.up, state.up, "up" not in drifted))
    rows += [SettingCheck(name, what, want, have, ok) for what, want, have, ok
             in ipconfig.check_rows(entry.ip, have_ip or _NONE)]
    return rows


def _where(bonds: Bonds) -> str | None:
    return bonds.netns.name or bonds.netns.path
