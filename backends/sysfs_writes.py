"""Steps as sysfs writes, each one undone again when a later write of the same call fails.

Bonds are made and removed through bonding_masters, options written to bonding/OPTION,
slaves added and removed through bonding/slaves, a slave's queue_id through the master's
bonding/queue_id. Links go up and down through their `flags` file and change MTU through
`mtu`. What sysfs cannot do (MAC address, rename, moving to another namespace, deleting a
device that is not a bond) goes over rtnetlink.

The kernel applies each write on its own: there is no transaction. So before every change the
Writer records how to take it back, and when a write fails it undoes the call's earlier
changes in reverse order before reporting the failure. A deleted link and a link moved to
another namespace cannot be taken back.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bondctl.errors import BondctlError, ValidationError
from bondctl.names import check_ifname
from bondctl.netlink.constants import IFF_ALLMULTI, IFF_PROMISC, IFF_UP
from bondctl.options import MODE, OPTIONS, SLAVE_OPTIONS, Value
from bondctl.steps import CreateBond, DeleteLink, MoveLink, SetBond, SetLink, SetSlave, Step

from .sysfs_tree import ROOT, parse_option, read_text

MASTERS = "bonding_masters"
_LISTS = ("ipv4list", "ipv6list")

# After the options that need no slaves, those naming a slave: settings before requests
# (primary before active_slave), since choosing a primary may move the active slave.
RESTORE_ORDER = (
    [name for name, opt in OPTIONS.items() if not opt.names_slave]
    + sorted((name for name, opt in OPTIONS.items() if opt.names_slave),
             key=lambda name: OPTIONS[name].transient)
)


class Refused(Exception):
    """A change the kernel refused: what was tried, and the kernel's reason in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def explain(what: str, exc: OSError, hints: Mapping[int, str] | None = None) -> Refused:
    code = exc.errno or 0
    # NetlinkError carries the kernel's extended-ack text in its message.
    text = exc.strerror or os.strerror(code)
    hint = (hints or {}).get(code) or _GENERIC.get(code, "")
    return Refused(f"{what}: {text}" + (f" ({hint})" if hint else ""))


_GENERIC = {
    errno.ENOENT: "no such file: the link or bond does not exist",
    errno.ENODEV: "no such network device",
    errno.EEXIST: "a link of that name already exists",
    errno.EACCES: "permission denied: bondctl needs CAP_NET_ADMIN",
}


def option_hints(name: str) -> dict[int, str]:
    """What an errno from writing bonding/NAME means, from the kernel's own checks
    (bond_opt_check_deps and the option's set function in bond_options.c)."""
    opt = OPTIONS[name]
    hints = {
        errno.EACCES: f"{name} is not supported in the bond's current mode; it applies to: "
                      f"{opt.mode_names()}",
        errno.ENOTEMPTY: f"the bond must have no slaves to change {name}",
        errno.EBUSY: f"the bond must be down to change {name}" if opt.down
                     else "the bond is busy",
        errno.EINVAL: f"the kernel refused this value; {name} takes {opt.allowed()}",
        errno.ENOENT: f"the bond does not exist, or this kernel has no {name} option",
        errno.ENODEV: "no such slave",
    }
    if opt.needs_miimon:
        hints[errno.EPERM] = f"{name} needs miimon > 0"
    if opt.transient:  # a request to move traffic now: the kernel checks the slave can carry it
        hints[errno.EINVAL] = "the slave must be enslaved to this bond, up, and have carrier"
    if opt.kind in _LISTS:
        hints[errno.EINVAL] = "the kernel refused the address (or it is not in the list)"
        hints[errno.EPERM] = "the kernel refused the address"
    return hints


class Writer:
    """Carries out steps under `root` (the namespace's /sys/class/net) with an undo journal.

    `netns_fds` maps the path of a MoveLink target (None: the caller's own namespace) to an
    open file descriptor on it, opened before /sys was switched to the target namespace.
    """

    def __init__(self, root: str = ROOT, netns_fds: Mapping[str | None, int] | None = None
                 ) -> None:
        self.root = root
        self.netns_fds = dict(netns_fds or {})
        self.journal: list[tuple[str, Callable[[], None]]] = []
        self._rtnl: Any = None

    # -- the call ---------------------------------------------------------------------------
    def run(self, steps: Sequence[Step]) -> dict[str, Any]:
        """{"failed": None} when every step took; else the failing step's index, the reason,
        how many changes were taken back, and what could not be."""
        try:
            for index, step in enumerate(steps):
                try:
                    self.apply(step)
                except Refused as exc:
                    undone = len(self.journal)
                    return {"failed": index, "reason": exc.reason, "undone": undone,
                            "undo_errors": self.undo()}
            return {"failed": None}
        finally:
            if self._rtnl is not None:
                self._rtnl.close()

    def undo(self) -> list[str]:
        errors = []
        while self.journal:
            what, action = self.journal.pop()
            try:
                action()
            except Refused as exc:
                errors.append(f"{what}: {exc.reason}")
            except OSError as exc:
                errors.append(explain(what, exc).reason)
            except BondctlError as exc:  # text the catalogue cannot parse
                errors.append(f"{what}: {exc.msg}")
        return errors

    def remember(self, what: str, action: Callable[[], None]) -> None:
        self.journal.append((what, action))

    # -- primitives -------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def read(self, *parts: str) -> str:
        text = read_text(self.path(*parts))
        if text is None:
            raise Refused(f"cannot read {self.path(*parts)}: the link or bond does not exist")
        return text

    def write(self, text: str, *parts: str, hints: Mapping[int, str] | None = None) -> None:
        path = self.path(*parts)
        data = (text + "\n").encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # as `echo >`
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            raise explain(f"writing {text!r} to {path}", exc, hints) from None

    def rtnl(self, what: str, **change: Any) -> None:
        from bondctl.netlink import Rtnl

        try:
            if self._rtnl is None:
                self._rtnl = Rtnl.open()
            self._rtnl.set_link(**change)
        except OSError as exc:
            raise explain(f"rtnetlink: {what}", exc) from None

    def master_of(self, name: str) -> str | None:
        try:
            return os.path.basename(os.readlink(self.path(name, "master")))
        except OSError:
            return None

    def is_bond(self, name: str) -> bool:
        return os.path.isdir(self.path(name, "bonding"))

    # -- steps ------------------------------------------------------------------------------
    def apply(self, step: Step) -> None:
        try:
            for name in step_names(step):
                check_ifname(name)
        except ValidationError as exc:
            raise Refused(exc.msg) from None
        if isinstance(step, CreateBond):
            self.create(step)
        elif isinstance(step, SetBond):
            before = self.option_files(step.name)
            self.remember(f"restore the options of {step.name}",
                          lambda: self.restore_options(step.name, before))
            for key, value in step.options.items():
                self.set_option(step.name, key, value)
        elif isinstance(step, SetLink):
            self.set_link(step)
        elif isinstance(step, SetSlave):
            for key, number in step.options.items():
                self.set_slave_option(step.name, key, number)
        elif isinstance(step, DeleteLink):
            self.delete(step.name)
        else:
            self.move(step)

    def create(self, step: CreateBond) -> None:
        name = step.name
        self.write(f"+{name}", MASTERS, hints={errno.EEXIST: f"{name} already exists"})
        self.remember(f"delete {name}", lambda: self.write(f"-{name}", MASTERS))
        if step.mac:  # before the options, as rtnetlink's create takes it: once an option
            # makes the MAC follow the slaves, the bond accepts a new one and ignores it
            self.rtnl(f"set {name} address {step.mac}", link=name, address=step.mac)
        self.set_option(name, MODE.name, step.mode)
        for key, value in step.options.items():
            self.set_option(name, key, value)
        if step.mtu:
            self.write(str(step.mtu), name, "mtu")

    def set_option(self, bond: str, name: str, value: Value) -> None:
        opt = OPTIONS[name]
        if opt.sysfs is None:
            raise Refused(f"{name} has no sysfs file (netlink only): use another backend")
        parts = (bond, "bonding", opt.sysfs)
        hints = option_hints(name)
        if opt.kind in _LISTS:
            # A list file takes one "+address" or "-address" per write.
            for address in self.read(*parts).split():
                self.write(f"-{address}", *parts, hints=hints)
            for address in value if isinstance(value, tuple) else ():
                self.write(f"+{address}", *parts, hints=hints)
            return
        # An empty write ("\n") clears primary and active_slave.
        self.write(opt.render(value) if value != "" else "", *parts, hints=hints)

    def option_files(self, bond: str) -> dict[str, str]:
        files = {}
        for opt in OPTIONS.values():
            if opt.sysfs is not None:
                text = read_text(self.path(bond, "bonding", opt.sysfs))
                if text is not None:
                    files[opt.sysfs] = text
        if MODE.sysfs not in files:
            raise Refused(f"{bond} is not a bond (no {self.path(bond, 'bonding')})")
        return files

    def restore_options(self, bond: str, before: Mapping[str, str]) -> None:
        """Write back every option that differs from `before`, also those a write changed as
        a side effect (a mode forces miimon; the MII and ARP monitors switch each other off)."""
        failed = []
        for name in RESTORE_ORDER:
            opt = OPTIONS[name]
            if opt.sysfs is None or opt.sysfs not in before:
                continue
            want = parse_option(opt, before[opt.sysfs])
            if want is None or (opt.transient and not want):
                continue  # nothing to say, or "no active slave yet": the kernel picks one
            have = parse_option(opt, read_text(self.path(bond, "bonding", opt.sysfs)))
            if have == want:
                continue
            try:
                self.set_option(bond, name, want)
            except Refused as exc:
                failed.append(exc.reason)
        if failed:
            raise Refused("; ".join(failed))

    def set_link(self, step: SetLink) -> None:
        name = step.name
        if step.new_name:
            old, new = name, step.new_name
            self.rtnl(f"rename {old} to {new}", link=old, ifname=new)
            self.remember(f"rename {new} back to {old}",
                          lambda: self.rtnl(f"rename {new} to {old}", link=new, ifname=old))
            name = new
        if step.mac:
            old_mac = self.read(name, "address")
            self.rtnl(f"set {name} address {step.mac}", link=name, address=step.mac)
            self.remember(f"restore the address of {name}", lambda: self.rtnl(
                f"set {name} address {old_mac}", link=name, address=old_mac))
        if step.mtu:
            old_mtu = self.read(name, "mtu")
            self.write(str(step.mtu), name, "mtu")
            self.remember(f"restore the MTU of {name}",
                          lambda: self.write(old_mtu, name, "mtu"))
        if step.up is False:
            self.set_up(name, False)
        if step.master:
            self.enslave(name, step.master)
        elif step.master == "":
            self.release(name)
        if step.up:
            self.set_up(name, True)

    def set_up(self, name: str, up: bool) -> None:
        if self.is_up(name) == up:
            return
        self.change_up(name, up)
        self.remember(f"set {name} {'down' if up else 'up'} again",
                      lambda: self.change_up(name, not up))

    def is_up(self, name: str) -> bool:
        return bool(int(self.read(name, "flags"), 16) & IFF_UP)

    def change_up(self, name: str, up: bool) -> None:
        flags = int(self.read(name, "flags"), 16)
        if flags & (IFF_PROMISC | IFF_ALLMULTI):
            # The file shows the effective promisc/allmulti; writing it back would turn them
            # into the user's own setting (dev_change_flags compares with gflags).
            self.rtnl(f"set {name} {'up' if up else 'down'}", link=name, up=up)
            return
        wanted = flags | IFF_UP if up else flags & ~IFF_UP
        self.write(hex(wanted), name, "flags", hints={
            errno.EPERM: "the kernel refused to change the link's state",
        })

    def enslave(self, slave: str, bond: str) -> None:
        self.write(f"+{slave}", bond, "bonding", "slaves", hints={
            errno.EPERM: f"{slave} must be down to be enslaved, and must not be a bond of "
                         f"its own or {bond} itself",
            errno.ENODEV: f"{slave} does not exist",
            errno.EBUSY: f"{slave} is already enslaved to a master",
            errno.ENOENT: f"{bond} does not exist or is not a bond",
        })
        self.remember(f"release {slave} from {bond}",
                      lambda: self.write(f"-{slave}", bond, "bonding", "slaves"))

    def release(self, slave: str) -> None:
        bond = self.master_of(slave)
        if bond is None:
            return  # already free, as `ip link set nomaster` on a free link
        was_up = self.is_up(slave)
        # Leaving the bond resets the per-slave options: note those sysfs can write back.
        kept = {opt.sysfs: text for opt in SLAVE_OPTIONS.values() if opt.sysfs
                for text in [read_text(self.path(slave, "bonding_slave", opt.sysfs))]
                if text is not None and text != str(opt.default)}
        self.write(f"-{slave}", bond, "bonding", "slaves")

        def again() -> None:
            if self.is_up(slave):
                self.change_up(slave, False)
            self.write(f"+{slave}", bond, "bonding", "slaves")
            for sysfs, text in kept.items():
                self.write(f"{slave}:{text}", bond, "bonding", sysfs)
            if was_up:
                self.change_up(slave, True)

        self.remember(f"enslave {slave} to {bond} again", again)

    def set_slave_option(self, slave: str, name: str, number: int) -> None:
        opt = SLAVE_OPTIONS[name]
        if opt.sysfs is None:
            raise Refused(f"slave option {name} has no sysfs file (netlink only)")
        bond = self.master_of(slave)
        if bond is None:
            raise Refused(f"{slave} is not enslaved: {name} is a per-slave option")
        old = self.read(slave, "bonding_slave", opt.sysfs)
        self.write(f"{slave}:{number}", bond, "bonding", opt.sysfs)
        self.remember(f"restore {name} of {slave}",
                      lambda: self.write(f"{slave}:{old}", bond, "bonding", opt.sysfs or name))

    def delete(self, name: str) -> None:
        if self.is_bond(name):
            self.write(f"-{name}", MASTERS, hints={errno.ENODEV: f"{name} does not exist"})
            return
        from bondctl.netlink import Rtnl

        try:
            if self._rtnl is None:
                self._rtnl = Rtnl.open()
            self._rtnl.del_link(name)
        except OSError as exc:
            raise explain(f"rtnetlink: delete {name}", exc) from None

    def move(self, step: MoveLink) -> None:
        fd = self.netns_fds[step.to.path]
        what = f"move {step.name} to {step.to.label}"
        self.rtnl(what, link=step.name, netns_fd=fd, ifname=step.new_name)


def step_names(step: Step) -> list[str]:
    """Every interface name a step puts into a path."""
    names = [step.name]
    if isinstance(step, SetLink):
        names += [n for n in (step.new_name, step.master) if n]
    if isinstance(step, MoveLink) and step.new_name:
        names.append(step.new_name)
    if isinstance(step, SetBond | CreateBond):
        names += [str(v) for k, v in step.options.items()
                  if OPTIONS[k].names_slave and v]
    return names
