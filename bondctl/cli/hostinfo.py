"""`backends` and `doctor`: what this host offers for making bonds, and what to fix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from bondctl.cli.session import Session, console, print_json
from bondctl.cli.views import BackendView, Check
from bondctl.errors import BackendUnavailableError

_CAP_NET_ADMIN = 12
MIN_IPROUTE2 = (5, 0)  # `ip -d -j` with bond info_data and info_slave_data


def backend_views(session: Session) -> tuple[list[BackendView], list[str]]:
    from bondctl.registry import Registry

    registry = Registry()
    infos = registry.backends()
    try:
        chosen: str | None = registry.select(session.backend).name
    except BackendUnavailableError:
        chosen = None
    views = []
    for info in sorted(infos.values(), key=lambda i: (-i.cls.priority, i.name)):
        available = info.availability()
        views.append(BackendView(
            name=info.name, origin=info.origin, available=available.ok,
            reason=available.reason, priority=info.cls.priority, selected=info.name == chosen,
            options=tuple(sorted(info.cls.options)),
            slave_options=tuple(sorted(info.cls.slave_options)),
        ))
    return views, list(registry.errors)


def backends(session: Session) -> None:
    from bondctl.cli.render import backends_table

    views, errors = backend_views(session)
    if session.json:
        print_json({"backends": [v.to_json() for v in views], "load_errors": errors})
        return
    console().print(backends_table(views, errors))


def capabilities() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def iproute2_version() -> tuple[str, tuple[int, ...]] | None:
    ip = shutil.which("ip")
    if ip is None:
        return None
    try:
        out = subprocess.run([ip, "-V"], capture_output=True, text=True, timeout=5,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"iproute2-(?:ss)?v?(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not match:
        return out.strip(), ()
    numbers = tuple(int(g) for g in match.groups() if g is not None)
    return ".".join(map(str, numbers)), numbers


def bonding_probe() -> tuple[bool, str]:
    """Can this kernel make a bond? Tried for real in a throw-away namespace (root only)."""
    from bondctl.cli import sandbox
    from bondctl.kernel import bonding_loaded

    if bonding_loaded():
        return True, "the bonding module is loaded"
    return sandbox.native_bonding()


def doctor_checks(session: Session) -> list[Check]:
    from bondctl.cli import uml
    from bondctl.kernel import BONDING_MASTERS, bonding_loaded

    checks: list[Check] = []
    admin = bool(capabilities() >> _CAP_NET_ADMIN & 1)
    checks.append(Check("privileges", "ok" if admin else "fail",
                        f"uid {os.geteuid()}, CAP_NET_ADMIN {'yes' if admin else 'no'}",
                        "" if admin else "run as root (sudo bondctl ...) or grant "
                                         "CAP_NET_ADMIN"))
    ip = iproute2_version()
    if ip is None:
        checks.append(Check("iproute2", "fail", "the ip command is not installed",
                            "install iproute2 (apt-get install iproute2)"))
    else:
        text, numbers = ip
        good = bool(numbers) and numbers >= MIN_IPROUTE2
        checks.append(Check("iproute2", "ok" if good else "warn", f"ip {text}",
                            "" if good else f"iproute2 {MIN_IPROUTE2[0]}.{MIN_IPROUTE2[1]} "
                                            "or newer reads bonds more completely"))
    can_bond, why = bonding_probe() if admin else (False, "not checked without CAP_NET_ADMIN")
    loaded = bonding_loaded()
    checks.append(Check(
        "bonding driver", "ok" if can_bond else "fail",
        why if can_bond else f"kernel {os.uname().release}: {why}",
        "" if can_bond else "load it (modprobe bonding); if the module is missing install "
                            "the kernel's extra modules package, or use User-Mode Linux"))
    masters = BONDING_MASTERS
    if loaded:
        writable = os.access(masters, os.W_OK) and _sysfs_rw()
        checks.append(Check("sysfs", "ok" if writable else "warn",
                            f"{masters} {'writable' if writable else 'read-only'}",
                            "" if writable else "the sysfs backend needs /sys mounted "
                                                "read-write (root, not in a read-only "
                                                "container)"))
    else:
        checks.append(Check("sysfs", "warn", f"{masters} absent (bonding not loaded)",
                            "the sysfs backend needs the bonding module loaded"))
    fallback = uml.availability()
    if uml.in_guest():
        fallback = uml.Availability(True, "this is User-Mode Linux")
    checks.append(Check("User-Mode Linux", "ok" if fallback.ok else "warn", fallback.reason,
                        "" if fallback.ok else "apt-get install user-mode-linux kmod "
                                               "(lets `bondctl demo` run without bonding)"))
    views, errors = backend_views(session)
    usable = [v.name for v in views if v.available]
    checks.append(Check(
        "backends", "ok" if usable else "fail",
        f"{len(usable)} of {len(views)} available" + (f": {', '.join(usable)}" if usable
                                                      else ""),
        "" if usable else "see `bondctl backends` for each backend's reason"))
    for line in errors:
        checks.append(Check("plugin", "warn", line, "reinstall or disable the plugin "
                                                    "(BONDCTL_DISABLE_PLUGINS=name)"))
    return checks


def _sysfs_rw() -> bool:
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 3 and fields[1] == "/sys" and fields[2] == "sysfs":
                    return "rw" in fields[3].split(",")
    except OSError:
        pass
    return False


def doctor(session: Session) -> None:
    from bondctl.cli.render import doctor_table

    checks = doctor_checks(session)
    failed = [c for c in checks if c.status == "fail"]
    if session.json:
        print_json({"ok": not failed, "checks": [vars(c) for c in checks]})
    else:
        console().print(doctor_table(checks))
    if failed:
        hint = ("; `bondctl demo` still runs, inside User-Mode Linux"
                if any(c.name == "User-Mode Linux" and c.status == "ok" for c in checks) else "")
        raise BackendUnavailableError(
            "this host cannot make bonds yet: " + ", ".join(c.name for c in failed) + hint)
