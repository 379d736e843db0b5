"""The read commands `list` and `show`, and the per-link facts only sysfs knows (speed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable

from bondctl.cli.session import Session, console, print_json
from bondctl.names import check_ifname
from bondctl.netns import Netns

Speed = tuple[int | None, str | None]


def list_bonds(session: Session) -> None:
    from bondctl.cli.render import bond_table
    from bondctl.cli.views import bond_view

    bonds = session.bonds()
    views = [bond_view(state) for state in bonds.list()]
    if session.json:
        print_json([v.summary_json() for v in views])
        return
    out = console()
    if not views:
        out.print(f"no bonds in {bonds.netns.label}", markup=False)
        return
    out.print(bond_table(views))


def show(session: Session, name: str, *, show_all: bool) -> None:
    from bondctl.cli.render import bond_detail
    from bondctl.cli.views import bond_view

    check_ifname(name, "bond name")
    bonds = session.bonds()
    state = bonds.show(name)
    view = bond_view(state, link_speeds(bonds.netns, state.slave_names))
    if session.json:
        print_json(view.to_json())
        return
    console().print(bond_detail(view, show_all=show_all))


def link_speeds(netns: Netns, names: Iterable[str]) -> dict[str, Speed]:
    """Speed (Mb/s) and duplex per link, best effort.

    Sysfs shows the namespace of whoever mounted /sys, so a named namespace is read through
    `ip netns exec` (which remounts /sys); a namespace known only by path is not read at all.
    """
    names = [check_ifname(n) for n in names]
    files = [f"/sys/class/net/{n}/{f}" for n in names for f in ("speed", "duplex")]
    if not names:
        return {}
    if netns.path is None:
        text = _read_files(files)
    elif netns.name and shutil.which("ip") and shutil.which("grep"):
        text = _read_in_netns(netns.name, files)
    else:
        return {}
    raw: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        parts = path.split("/")
        if sep and len(parts) == 6:
            raw.setdefault(parts[4], {})[parts[5]] = value.strip()
    return {name: _speed(raw.get(name, {})) for name in names}


def _speed(fields: dict[str, str]) -> Speed:
    speed = fields.get("speed", "")
    number = int(speed) if speed.lstrip("-").isdigit() and int(speed) > 0 else None
    duplex = fields.get("duplex") or None
    return number, None if duplex == "unknown" else duplex


def _read_files(files: Iterable[str]) -> str:
    lines = []
    for path in files:
        try:
            with open(path, encoding="ascii") as fh:
                lines.append(f"{path}:{fh.read().strip()}")
        except OSError:
            continue  # speed reads EINVAL while a link is down
    return "\n".join(lines)


def _read_in_netns(name: str, files: list[str]) -> str:
    # grep -H prints "path:value" for each file it can read and stays quiet (-s) about the rest.
    try:
        proc = subprocess.run(["ip", "netns", "exec", name, "grep", "-s", "-H", "", *files],
                              capture_output=True, text=True, timeout=10, check=False,
                              env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout
