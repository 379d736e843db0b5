"""The sysfs backend: the bonding driver's files under /sys/class/net.

Bonds come and go through bonding_masters, options through bonding/OPTION, slaves through
bonding/slaves (sysfs_writes). Reading walks /sys/class/net (sysfs_tree). In another network
namespace all of a call's reads and writes run in one forked child that has /sys remounted
there, as `ip netns exec` does (sysfs_netns). Options without a sysfs file (netlink only) are
not offered, so bondctl.ops refuses them by name before anything changes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bondctl.backend import Availability, Backend, StepError
from bondctl.kernel import BONDING_MASTERS as MASTERS_PATH
from bondctl.kernel import kernel_can_bond
from bondctl.markers import hookimpl
from bondctl.model import BondState, Link
from bondctl.names import check_ifname
from bondctl.netlink.constants import IFF_UP
from bondctl.netns import Netns
from bondctl.options import MODE, OPTIONS, SETTINGS, SLAVE_OPTIONS, Value
from bondctl.steps import CreateBond, DeleteLink, MoveLink, SetBond, SetLink, SetSlave, Step

from . import sysfs_netns
from .sysfs_tree import ROOT, read_links, to_bonds, to_link

_LISTS = ("ipv4list", "ipv6list")


class SysfsBackend(Backend):
    name = "sysfs"
    summary = "the bonding driver's sysfs files (/sys/class/net), as `echo > file` does"
    priority = 10
    options = frozenset(name for name, opt in SETTINGS.items() if opt.sysfs)
    slave_options = frozenset(name for name, opt in SLAVE_OPTIONS.items() if opt.sysfs)

    @classmethod
    def availability(cls) -> Availability:
        if os.path.exists(MASTERS_PATH):
            if not os.access(MASTERS_PATH, os.W_OK):
                return Availability(False, f"{MASTERS_PATH} is not writable (needs root)")
            return Availability(True, f"writes {ROOT}")
        if os.geteuid() != 0:
            return Availability(False, "the bonding driver is not loaded (and loading it "
                                       "needs root)")
        why = kernel_can_bond()
        if why is not None:
            return Availability(False, why)
        return Availability(True, f"writes {ROOT} (loads the bonding driver first)")

    # -- changes ----------------------------------------------------------------------------
    def execute(self, steps: Sequence[Step], netns: Netns) -> None:
        if not steps:
            return
        from .sysfs_writes import Writer, step_names

        for step in steps:
            for name in step_names(step):
                check_ifname(name)
        if any(isinstance(s, CreateBond) for s in steps) and not os.path.exists(MASTERS_PATH):
            _load_bonding()
        fds = _open_move_targets(steps)
        try:
            result = sysfs_netns.run(netns, lambda: Writer(netns_fds=fds).run(steps))
        finally:
            for fd in fds.values():
                os.close(fd)
        index = result["failed"]
        if index is None:
            return
        undo_errors: list[str] = result["undo_errors"]
        reason = str(result["reason"])
        if undo_errors:
            reason += "; could not undo: " + "; ".join(undo_errors)
        elif result["undone"]:
            reason += f"; the {result['undone']} earlier change(s) of this call were undone"
        # Once undone, no step of the call is in effect any more: `done` is 0.
        raise StepError(steps[index], reason, index if undo_errors else 0)

    def render(self, steps: Sequence[Step], netns: Netns) -> list[str]:
        known = _render_context(steps, netns)
        where = "" if netns.path is None else f"  # in netns {netns.label}, /sys mounted there"
        return [line + where for step in steps for line in render_step(step, known)]

    # -- reading ----------------------------------------------------------------------------
    def links(self, netns: Netns) -> list[Link]:
        return [to_link(raw) for raw in sysfs_netns.run(netns, read_links)]

    def list_bonds(self, netns: Netns) -> list[BondState]:
        return to_bonds(sysfs_netns.run(netns, lambda: read_links(detail=True)), netns)


def _load_bonding() -> None:
    """bonding_masters appears only once the driver is loaded: rtnetlink would load it on
    demand, sysfs has nobody to ask. A failure shows in the write that follows."""
    import shutil
    import subprocess

    modprobe = shutil.which("modprobe") or "/sbin/modprobe"
    # max_bonds=0: loading the driver must not create a bond0 of its own.
    with contextlib.suppress(OSError):
        subprocess.run([modprobe, "bonding", "max_bonds=0"], capture_output=True, check=False)


def _open_move_targets(steps: Sequence[Step]) -> dict[str | None, int]:
    """Descriptors on the namespaces links move to, opened before /sys is switched (None is
    the caller's own namespace, which the child can no longer name once it moved)."""
    from bondctl.netlink import open_netns

    fds: dict[str | None, int] = {}
    try:
        for step in steps:
            if isinstance(step, MoveLink) and step.to.path not in fds:
                path = step.to.path
                fds[path] = (open_netns(path) if path else
                             os.open(f"/proc/{os.getpid()}/ns/net", os.O_RDONLY | os.O_CLOEXEC))
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


# -- --dry-run ---------------------------------------------------------------------------------
class RenderContext:
    """What rendering needs to know beyond the steps: which links are bonds and which ARP/NS
    targets a bond holds now (a list file is cleared one address at a time)."""

    def __init__(self, bonds: set[str], targets: Mapping[str, Mapping[str, tuple[str, ...]]]
                 ) -> None:
        self.bonds = set(bonds)
        self.targets = {bond: dict(files) for bond, files in targets.items()}


def _render_context(steps: Sequence[Step], netns: Netns) -> RenderContext:
    created = {s.name for s in steps if isinstance(s, CreateBond)}
    wanted = {s.name for s in steps if isinstance(s, SetBond) and s.name not in created
              and any(OPTIONS[k].kind in _LISTS for k in s.options)}
    deleted = {s.name for s in steps if isinstance(s, DeleteLink) and s.name not in created}
    if not wanted and not deleted:
        return RenderContext(created, {})

    def look() -> dict[str, Any]:
        from .sysfs_tree import read_text

        bonds = [n for n in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, n, "bonding"))]
        files = {opt.sysfs for opt in OPTIONS.values() if opt.kind in _LISTS and opt.sysfs}
        targets = {bond: {f: (read_text(os.path.join(ROOT, bond, "bonding", f)) or "").split()
                          for f in files} for bond in bonds if bond in wanted}
        return {"bonds": bonds, "targets": targets}

    seen = sysfs_netns.run(netns, look)
    targets = {b: {f: tuple(v) for f, v in files.items()} for b, files in seen["targets"].items()}
    return RenderContext(created | set(seen["bonds"]), targets)


def _echo(text: str, *parts: str) -> str:
    return f"echo {text} > {os.path.join(ROOT, *parts)}"


def _option_lines(bond: str, options: Mapping[str, Value], known: RenderContext,
                  fresh: bool) -> list[str]:
    lines = []
    for name, value in options.items():
        opt = OPTIONS[name]
        file = opt.sysfs or name
        if opt.kind in _LISTS:
            current = () if fresh else known.targets.get(bond, {}).get(file, ())
            lines += [_echo(f"-{a}", bond, "bonding", file) for a in current]
            lines += [_echo(f"+{a}", bond, "bonding", file)
                      for a in (value if isinstance(value, tuple) else ())]
            if isinstance(value, tuple):
                known.targets.setdefault(bond, {})[file] = value
            continue
        text = opt.render(value) if value != "" else "''"
        lines.append(_echo(text, bond, "bonding", file))
    return lines


def _flags_line(name: str, up: bool) -> str:
    path = os.path.join(ROOT, name, "flags")
    change = f"| {IFF_UP:#x}" if up else f"& ~{IFF_UP:#x}"
    return f"echo $(( $(cat {path}) {change} )) > {path}"


def render_step(step: Step, known: RenderContext) -> list[str]:
    """The writes (and rtnetlink requests) one step becomes, one line each, as shell text."""
    if isinstance(step, CreateBond):
        lines = [_echo(f"+{step.name}", "bonding_masters")]
        if step.mac:  # first, as create() sets it
            lines.append(f"ip link set dev {step.name} address {step.mac}  # rtnetlink")
        lines.append(_echo(step.mode, step.name, "bonding", MODE.sysfs or MODE.name))
        lines += _option_lines(step.name, step.options, known, fresh=True)
        known.bonds.add(step.name)
        if step.mtu:
            lines.append(_echo(str(step.mtu), step.name, "mtu"))
        return lines
    if isinstance(step, SetBond):
        return _option_lines(step.name, step.options, known, fresh=False)
    if isinstance(step, SetLink):
        name, lines = step.name, []
        if step.new_name:
            lines.append(f"ip link set dev {name} name {step.new_name}  # rtnetlink")
            name = step.new_name
        if step.mac:
            lines.append(f"ip link set dev {name} address {step.mac}  # rtnetlink")
        if step.mtu:
            lines.append(_echo(str(step.mtu), name, "mtu"))
        if step.up is False:
            lines.append(_flags_line(name, False))
        if step.master:
            lines.append(_echo(f"+{name}", step.master, "bonding", "slaves"))
        elif step.master == "":
            lines.append(_echo(f"-{name}", name, "master", "bonding", "slaves"))
        if step.up:
            lines.append(_flags_line(name, True))
        return lines
    if isinstance(step, SetSlave):
        return [_echo(f"{step.name}:{number}", step.name, "master", "bonding",
                      SLAVE_OPTIONS[key].sysfs or key)
                for key, number in step.options.items()]
    if isinstance(step, DeleteLink):
        if step.name in known.bonds:
            known.bonds.discard(step.name)
            return [_echo(f"-{step.name}", "bonding_masters")]
        return [f"ip link delete dev {step.name}  # rtnetlink"]
    target = step.to.label if step.to.path else "(the caller's namespace)"
    rename = f" name {step.new_name}" if step.new_name else ""
    return [f"ip link set dev {step.name} netns {target}{rename}  # rtnetlink"]


@hookimpl
def bondctl_register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(SysfsBackend)
