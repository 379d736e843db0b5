"""Can this host make bonds? The one probe every backend, the CNI's STATUS and the CLI's
doctor ask, and the paths where the bonding driver shows itself.

Cheap on purpose: the CNI asks on every STATUS and a backend on every selection, so nothing is
spawned while the driver is loaded (the usual case), and the module lists are read before
`modprobe -n` is run. Only `os` is imported at module level.
"""

from __future__ import annotations

import os

BONDING_MODULE = "/sys/module/bonding"
BONDING_MASTERS = "/sys/class/net/bonding_masters"
CANNOT_BOND = "the bonding driver is not loaded and cannot be loaded"

_MODULE_FILE = b"/bonding.ko"


def bonding_loaded() -> bool:
    return os.path.isdir(BONDING_MODULE)


def kernel_can_bond() -> str | None:
    """None when the running kernel can make bonds (the driver is loaded, built in, or a
    module it loads on first use); otherwise why not, in words for a person."""
    if bonding_loaded() or bonding_listed(os.uname().release) or _modprobe_finds_bonding():
        return None
    return CANNOT_BOND


def bonding_listed(release: str) -> bool:
    """Whether kernel `release` has the driver built in or as a module on disk, from
    modules.builtin / modules.dep (what modprobe reads, without spawning it)."""
    for index in ("modules.builtin", "modules.dep"):
        try:
            with open(f"/lib/modules/{release}/{index}", "rb") as fh:
                if _MODULE_FILE in fh.read():
                    return True
        except OSError:
            continue
    return False


def _modprobe_finds_bonding() -> bool:
    """The last word when the lists say no or are missing (a container without
    /lib/modules, a modprobe.d alias): modprobe's dry run."""
    import shutil  # with subprocess ~5 ms: only where bonding is neither loaded nor listed
    import subprocess

    modprobe = shutil.which("modprobe")
    if modprobe is None:
        return False
    try:
        probe = subprocess.run([modprobe, "-n", "-q", "bonding"], capture_output=True,
                               check=False)
    except OSError:
        return False
    return probe.returncode == 0
