"""Bond operations on top of any backend: plan, check, execute, read back, verify, undo.

Every backend gets the same rules here: options it cannot carry are refused by name before
anything changes; the bond is taken down or its slaves released only where the catalogue says
the kernel needs it; every change is read back and compared; a failed create leaves nothing.
"""

from __future__ import annotations

from .backend import Backend
from .errors import BondctlError, DriftError, NotFoundError, UnsupportedError, ValidationError
from .model import BondSpec, BondState, Link, diff
from .netns import Netns, resolve
from .options import (
    ACTIVE,
    MODE,
    OPTIONS,
    SLAVE_OPTIONS,
    Value,
    after_change,
    check_combination,
    lookup,
    mac_held_by,
    mode_number,
)
from .steps import CreateBond, DeleteLink, SetBond, SetLink, SetSlave, Step

TYPE_CHECKING = False  # collections costs milliseconds on every CNI ADD: for the checker only
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence


def in_catalogue_order(options: Mapping[str, Value]) -> dict[str, Value]:
    return {name: options[name] for name in OPTIONS if name in options}


def check_supported(backend: type[Backend] | Backend, options: Iterable[str],
                    slave_options: Iterable[str] = ()) -> None:
    """Refuse, by name, any option this backend cannot carry.

    The kernel version is not consulted: distributions backport options, and a kernel that
    silently ignores an attribute is caught by the read-back that follows every change.
    """
    for name in options:
        opt = OPTIONS[name]
        if not opt.is_mode and name not in backend.options:
            where = "netlink only" if opt.netlink_only else "not in this backend"
            raise UnsupportedError(
                f"backend {backend.name} cannot set {name} ({where}); choose another backend"
            )
    for name in slave_options:
        if name not in backend.slave_options:
            raise UnsupportedError(f"backend {backend.name} cannot set slave option {name}")


class Outcome:
    """What an operation did: the bond as read back, and what a person should be told."""

    def __init__(self, state: BondState | None, steps: list[Step] | None = None,
                 notes: list[str] | None = None) -> None:
        self.state = state
        self.steps = steps or []
        self.notes = notes or []
        self.changed: dict[str, Value] = {}  # the bond's options set, in the order set


class Bonds:
    """Bond operations in one namespace through one backend."""

    def __init__(self, backend: Backend, netns: str | Netns | None = None, *,
                 dry_run: bool = False) -> None:
        self.backend = backend
        self.netns = resolve(netns)
        self.dry_run = dry_run
        self.planned: list[str] = []  # rendered steps, filled in dry-run mode

    # -- reading ------------------------------------------------------------------------
    def list(self) -> list[BondState]:
        return self.backend.list_bonds(self.netns)

    def show(self, name: str) -> BondState:
        return self.backend.read(name, self.netns)

    def links(self) -> dict[str, Link]:
        """Every link of the namespace by name (the bond's slaves and anything else)."""
        return {link.name: link for link in self.backend.links(self.netns)}

    def _run(self, steps: Sequence[Step]) -> None:
        if self.dry_run:
            self.planned.extend(self.backend.render(steps, self.netns))
        else:
            self.backend.execute(steps, self.netns)

    # -- create / delete ----------------------------------------------------------------
    def create(self, spec: BondSpec) -> Outcome:
        check_supported(self.backend, spec.options,
                        {k for s in spec.slaves for k in s.options})
        links = self.links()
        if spec.name in links:
            raise ValidationError(f"{spec.name} already exists in {self.netns.label}")
        for slave in spec.slave_names:
            _check_free(slave, links)
        steps = plan_create(spec)
        if self.dry_run:
            self._run(steps)
            return Outcome(None, steps)
        try:
            self._run(steps)
            state = self.show(spec.name)
            drifts = diff(spec, state)
            if drifts:
                raise DriftError(
                    f"{spec.name} did not come out as asked: " + "; ".join(map(str, drifts))
                )
        except BondctlError:
            self._undo_create(spec, links)
            raise
        return Outcome(state, steps)

    def _undo_create(self, spec: BondSpec, before: Mapping[str, Link]) -> None:
        """Remove what a failed create made and put the slaves back as they were."""
        now = self.links()
        undo: list[Step] = []
        if spec.name in now:
            undo += [SetLink(s, master="") for s in spec.slave_names
                     if now.get(s) and now[s].master == spec.name]
            undo.append(DeleteLink(spec.name))
        for slave in spec.slave_names:
            if slave in before and slave in now:
                undo.append(SetLink(slave, up=before[slave].up))
        for step in undo:
            try:
                self.backend.execute([step], self.netns)
            except BondctlError:
                continue  # undo goes on: one stuck link must not strand the others

    def delete(self, name: str, *, slaves_up: bool = True) -> Outcome:
        state = self.show(name)
        steps: list[Step] = [SetLink(s, master="") for s in state.slave_names]
        if slaves_up:
            steps += [SetLink(s, up=True) for s in state.slave_names]
        steps.append(DeleteLink(name))
        self._run(steps)
        return Outcome(None, steps)

    # -- slaves -------------------------------------------------------------------------
    def enslave(self, name: str, slaves: Sequence[str],
                slave_options: Mapping[str, Mapping[str, object]] | None = None) -> Outcome:
        state = self.show(name)
        links = self.links()
        for slave in slaves:
            _check_free(slave, links)
        parsed = {s: {SLAVE_OPTIONS[k].name: SLAVE_OPTIONS[k].parse(v) for k, v in o.items()}
                  for s, o in (slave_options or {}).items()}
        check_supported(self.backend, (), {k for o in parsed.values() for k in o})
        steps: list[Step] = []
        for slave in slaves:
            steps += _enslave_steps(name, slave, parsed.get(slave, {}))
        self._run(steps)
        if self.dry_run:
            return Outcome(state, steps)
        after = self.show(name)
        missing = [s for s in slaves if s not in after.slave_names]
        if missing:
            raise DriftError(f"{', '.join(missing)} did not join {name}")
        return Outcome(after, steps)

    def release(self, name: str, slaves: Sequence[str], *, up: bool = True) -> Outcome:
        state = self.show(name)
        strangers = [s for s in slaves if s not in state.slave_names]
        if strangers:
            raise NotFoundError(f"{', '.join(strangers)} is not a slave of {name}")
        steps: list[Step] = [SetLink(s, master="") for s in slaves]
        if up:
            steps += [SetLink(s, up=True) for s in slaves]
        self._run(steps)
        return Outcome(None if self.dry_run else self.show(name), steps)

    # -- live changes -------------------------------------------------------------------
    def set_options(self, name: str, raw: Mapping[str, object],
                    mac: str | None = None) -> Outcome:
        """Change options on a live bond, disturbing it only as much as the kernel needs;
        with `mac`, give the bond that MAC too, at the moment the kernel lets it take."""
        state = self.show(name)
        wanted: dict[str, Value] = {}
        for key, value in raw.items():
            opt = lookup(key)
            wanted[opt.name] = opt.parse(value)
        mode = str(wanted.pop(MODE.name, state.mode))
        changes = {k: v for k, v in wanted.items() if state.options.get(k) != v}
        if mode != state.mode:
            changes = {MODE.name: mode, **changes}
        check_supported(self.backend, changes)
        check_combination(mode, after_change(state.options, changes), state.slave_names,
                          changed=[k for k in changes if not OPTIONS[k].is_mode])
        outcome = Outcome(state)
        if not changes and mac in (None, state.mac):
            outcome.notes.append(f"{name} already has these settings; nothing changed")
            return outcome
        steps, outcome.notes = plan_set(state, changes, self.backend.slave_options, mac)
        outcome.steps = steps
        outcome.changed = {k: v for step in steps if isinstance(step, SetBond)
                           and step.name == name for k, v in step.options.items()}
        self._run(steps)
        if self.dry_run:
            return outcome
        after = self.show(name)
        outcome.state = after
        wrong = [f"{k}: want {v!r}, have {_current(after, k)!r}" for k, v in changes.items()
                 if not OPTIONS[k].transient and _current(after, k) != v]
        if wrong:
            raise DriftError(f"{name}: the kernel did not keep " + "; ".join(wrong))
        return outcome

    def set_link(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                 up: bool | None = None,
                 slave_options: Mapping[str, Mapping[str, int]] | None = None) -> Outcome:
        """The bond's own link attributes and its slaves' per-slave options, in one batch:
        what a desired state asks beyond the bonding options. None leaves a value alone."""
        steps: list[Step] = [SetSlave(s, dict(o)) for s, o in (slave_options or {}).items()]
        if (mtu, mac, up) != (None, None, None):
            steps.append(SetLink(name, mtu=mtu, mac=mac, up=up))
        if steps:
            self._run(steps)
        return Outcome(None, steps)

    def failover(self, name: str, to: str | None = None) -> Outcome:
        state = self.show(name)
        if mode_number(state.mode) not in ACTIVE.modes:
            raise ValidationError(
                f"{name} is in mode {state.mode}; failover needs one of {ACTIVE.mode_names()}"
            )
        if to is None:
            candidates = [s.name for s in state.slaves
                          if s.name != state.active_slave and s.mii_status == "up"]
            if not candidates:
                raise NotFoundError(f"{name} has no other slave that is up")
            to = candidates[0]
        elif to not in state.slave_names:
            raise NotFoundError(f"{to} is not a slave of {name}")
        steps: list[Step] = [SetBond(name, {ACTIVE.name: to})]
        self._run(steps)
        if self.dry_run:
            return Outcome(state, steps)
        after = self.show(name)
        if after.active_slave != to:
            raise DriftError(f"{name}: active slave is {after.active_slave}, not {to}")
        return Outcome(after, steps, [f"{name}: active slave {state.active_slave} -> {to}"])


def _current(state: BondState, name: str) -> Value | None:
    return state.mode if OPTIONS[name].is_mode else state.options.get(name)


def _check_free(slave: str, links: Mapping[str, Link]) -> None:
    link = links.get(slave)
    if link is None:
        raise NotFoundError(f"link {slave} does not exist")
    if link.master:
        raise ValidationError(f"link {slave} is already enslaved to {link.master}")
    if link.kind == "bond":
        raise ValidationError(f"link {slave} is itself a bond")


def _enslave_steps(bond: str, slave: str, options: Mapping[str, int]) -> list[Step]:
    # A slave must be down to be enslaved (the kernel says EPERM otherwise), on every path.
    steps: list[Step] = [SetLink(slave, up=False), SetLink(slave, master=bond)]
    if options:
        steps.append(SetSlave(slave, dict(options)))
    steps.append(SetLink(slave, up=True))
    return steps


def plan_create(spec: BondSpec) -> list[Step]:
    now = {k: v for k, v in spec.options.items() if not OPTIONS[k].names_slave}
    later = {k: v for k, v in spec.options.items() if OPTIONS[k].names_slave}
    steps: list[Step] = [CreateBond(spec.name, spec.mode, in_catalogue_order(now),
                                    spec.mtu, spec.mac)]
    for slave in spec.slaves:
        steps += _enslave_steps(spec.name, slave.name, slave.options)
    if spec.up:
        steps.append(SetLink(spec.name, up=True))
    if later:
        # Options naming a slave take only once the slave is in and up.
        steps.append(SetBond(spec.name, in_catalogue_order(later)))
    return steps


def plan_set(state: BondState, changes: Mapping[str, Value],
             slave_options: Iterable[str] = SLAVE_OPTIONS,
             mac: str | None = None) -> tuple[list[Step], list[str]]:
    """Steps for a live change, with notes saying what had to be disturbed and why.
    Slaves released for it are enslaved again with their per-slave options (those of
    `slave_options`, what the backend can set) that differ from the default. The bond ends
    with `mac`, or keeps its own: the kernel gives a bond a random MAC when its last slave
    goes, and the first slave's when one comes back."""
    ordered = in_catalogue_order(changes)
    now = {k: v for k, v in ordered.items() if not OPTIONS[k].names_slave}
    later = {k: v for k, v in ordered.items() if OPTIONS[k].names_slave}
    release = [k for k in now if OPTIONS[k].no_slaves] if state.slaves else []
    down = [k for k in now if OPTIONS[k].down] if state.up else []
    mode = str(ordered.get(MODE.name, state.mode))
    mac_before, mac_after, notes = _mac_steps(state, mode, ordered, release, mac)
    steps: list[Step] = []
    if release:
        notes.append(f"{state.name}: slaves released and re-enslaved to change "
                     f"{', '.join(release)} (the kernel needs a bond without slaves)")
        steps += [SetLink(s, master="") for s in state.slave_names]
    if down:
        notes.append(f"{state.name}: taken down to change {', '.join(down)} "
                     "(the kernel needs the bond down)")
        steps.append(SetLink(state.name, up=False))
    steps += mac_before
    if now:
        steps.append(SetBond(state.name, now))
    steps += mac_after
    if release:
        # Only what the backend can set and the bond's new mode takes (prio is refused in
        # 802.3ad): the kernel forgets the rest on release, as it would anyway.
        settable, number = set(slave_options), mode_number(mode)
        kept = [opt for name, opt in SLAVE_OPTIONS.items()
                if name in settable and number in opt.modes]
        for slave in state.slaves:
            opts = {opt.name: value for opt in kept
                    for value in [getattr(slave, opt.name)]
                    if value is not None and value != opt.default}
            steps += _enslave_steps(state.name, slave.name, opts)
    if down:
        steps.append(SetLink(state.name, up=True))
    if later:
        steps.append(SetBond(state.name, later))
    return steps, notes


def _mac_steps(state: BondState, mode: str, changes: Mapping[str, Value],
               release: Sequence[str], mac: str | None) -> tuple[list[Step], list[Step], list[str]]:
    """Where the bond's MAC is set, before or after its options change: the kernel ignores a
    new MAC while an option holds it (options.mac_held_by). ValidationError, before anything
    changes, when `mac` is asked for and held both before and after."""
    want = mac or state.mac
    if not release and want == state.mac:
        return [], [], []
    step: list[Step] = [SetLink(state.name, mac=want)]
    held = mac_held_by(state.mode, state.options)
    if held is None:
        return step, [], []
    if mac_held_by(mode, after_change(state.options, changes)) is None:
        return [], step, []
    value = changes.get(held.name, state.options.get(held.name))
    if want != state.mac:
        raise ValidationError(
            f"{state.name}: its MAC cannot change while {held.name} is {value} in mode {mode}: "
            f"the kernel ignores a new MAC then (change {held.name} to {held.default} with it, "
            "or delete the bond and create it again: a new bond takes its MAC first)"
        )
    return [], [], [f"{state.name}: its MAC could not be kept ({held.name} {value} holds it): "
                    "it now has its first slave's"]


def spec_from_state(state: BondState, keys: Iterable[str]) -> BondSpec:
    """A spec asking for exactly what `state` has for `keys`: used to compare two readers."""
    return BondSpec.build(state.name, state.mode, {k: state.options[k] for k in keys},
                          [s.name for s in state.slaves])

