"""Which kernel the tests run on, and whether it can make bonds."""

from __future__ import annotations

import functools
import os
import platform
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass

from bondctl.cli import uml as bondctl_uml


@dataclass(frozen=True)
class KernelInfo:
    release: tuple[int, ...]
    release_str: str
    in_uml: bool

    def at_least(self, *version: int) -> bool:
        return self.release >= version


def parse_release(release: str) -> tuple[int, ...]:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not match:
        return ()
    return tuple(int(part) for part in match.groups() if part is not None)


def kernel_info() -> KernelInfo:
    release = platform.release()
    return KernelInfo(parse_release(release), release, in_uml())


def is_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@functools.cache
def native_bonding() -> tuple[bool, str]:
    """(can this kernel make bonds here, why not): probed once per process, in a throw-away
    netns so a half-failed probe leaves nothing behind in the init namespace."""
    if os.geteuid() != 0:
        return False, "not root"
    if not shutil.which("ip"):
        return False, "no ip(8)"
    ns = f"bt-probe-{secrets.token_hex(3)}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as err:
        return False, f"cannot create a netns: {err.stderr.strip()}"
    try:
        probe = subprocess.run(
            ["ip", "-n", ns, "link", "add", "bprobe0", "type", "bond"],
            capture_output=True,
            text=True,
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    if probe.returncode != 0:
        return False, f"running kernel {platform.release()} cannot make bonds: " + (
            probe.stderr.strip() or f"ip exited {probe.returncode}"
        )
    return True, ""


# One place knows where UML lives and how to tell we are inside it: the sandbox's module.
in_uml = bondctl_uml.in_guest
uml_binary = bondctl_uml.binary
uml_release = bondctl_uml.release
