"""Run one command inside User-Mode Linux, for hosts whose kernel has no bonding driver.

The UML kernel (Debian's user-mode-linux: /usr/bin/linux.uml, modules under
/usr/lib/uml/modules) boots with the live host filesystem as its root, so the same Python and
the same bondctl run inside; a small init script mounts what the guest needs, loads bonding,
veth and bridge, runs the command with its output on our terminal, and powers off. The same
approach as the test harness (tests/harness/uml.py), in a runtime copy.

`python -m bondctl.uml JOB` is the guest side: it becomes the job's process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, NamedTuple

UML_BINARY = "linux.uml"
UML_MODULES = Path("/usr/lib/uml/modules")
UML_LIB_MODULES = Path("/usr/lib/uml/lib/modules")
GUEST_ENV = "BONDCTL_IN_UML"

# PID 1 of the guest. It must never exit (the kernel would panic): every path powers off.
INIT_SCRIPT = """#!/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /run/netns
ip link set lo up
modprobe -a -q -d /usr/lib/uml bonding veth bridge >/dev/null 2>&1
echo booted >"$BONDCTL_RUN_DIR/booted"
echo "@@bondctl-start@@"
"$BONDCTL_PYTHON" -m bondctl.uml "$BONDCTL_RUN_DIR/job.json"
echo $? >"$BONDCTL_RUN_DIR/status"
echo "@@bondctl-end@@"
sync
poweroff -f
"""


class Availability(NamedTuple):
    ok: bool
    reason: str


def binary() -> str | None:
    return shutil.which(UML_BINARY)


def release() -> str | None:
    try:
        versions = sorted(p.name for p in UML_MODULES.iterdir() if p.is_dir())
    except OSError:
        return None
    return versions[-1] if versions else None


def availability() -> Availability:
    if in_guest():
        return Availability(False, "already inside User-Mode Linux")
    path = binary()
    if path is None:
        return Availability(False, "linux.uml is not installed (package user-mode-linux)")
    version = release()
    if version is None:
        return Availability(False, f"no UML kernel modules under {UML_MODULES}")
    bonding = UML_MODULES / version / "kernel" / "drivers" / "net" / "bonding"
    if not bonding.exists():
        return Availability(False, f"the UML kernel {version} has no bonding module")
    if not shutil.which("modprobe"):
        return Availability(False, "modprobe is not installed (package kmod)")
    return Availability(True, f"{path}, kernel {version} with bonding")


def in_guest() -> bool:
    if os.environ.get(GUEST_ENV) == "1":
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return "User Mode Linux" in fh.read()
    except OSError:
        return False


def ensure_module_symlinks() -> None:
    """modprobe -d /usr/lib/uml looks in lib/modules/VERSION; the package ships modules/."""
    try:
        UML_LIB_MODULES.mkdir(parents=True, exist_ok=True)
        for version in UML_MODULES.iterdir():
            link = UML_LIB_MODULES / version.name
            if version.is_dir() and not link.exists():
                link.symlink_to(version)
    except OSError:
        pass  # not root: the guest's modprobe says what is missing


def run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120.0,
        output: IO[bytes] | None = None, mem: str = "384M") -> int:
    """Boot UML, run `argv` inside (its output going to `output`, default our stdout) and
    return its exit status; 125 when the guest did not get to run it."""
    if not availability().ok:
        raise RuntimeError(availability().reason)
    ensure_module_symlinks()
    run_dir = Path(tempfile.mkdtemp(prefix="bondctl-uml-", dir="/tmp"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        init = run_dir / "init.sh"
        init.write_text(INIT_SCRIPT)
        init.chmod(0o755)
        job = {"argv": argv, "env": {**(env or {}), GUEST_ENV: "1"}, "cwd": os.getcwd()}
        (run_dir / "job.json").write_text(json.dumps(job))
        command = [
            binary() or UML_BINARY, f"mem={mem}", f"uml_dir={run_dir / 'uml'}",
            "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "rw", "quiet",
            f"init={init}", "con=null", "con0=fd:0,fd:1",
            f"BONDCTL_RUN_DIR={run_dir}", f"BONDCTL_PYTHON={sys.executable}",
        ]
        if any(any(c.isspace() for c in part) for part in command):
            raise RuntimeError("UML boot parameters cannot carry whitespace")
        out = output if output is not None else sys.stdout.buffer
        with contextlib.suppress(AttributeError, ValueError):
            sys.stdout.flush()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        assert proc.stdout is not None
        _relay(proc.stdout, out, time.monotonic() + timeout)
        proc.wait(timeout=10)
        try:
            return int((run_dir / "status").read_text().strip())
        except (OSError, ValueError):
            return 125
    finally:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(run_dir, ignore_errors=True)


START, END = b"@@bondctl-start@@", b"@@bondctl-end@@"


def _relay(source: IO[bytes], out: IO[bytes], deadline: float) -> None:
    """Copy the guest's console to `out`, without the kernel's own boot and power-off lines:
    only what comes between init's start and end markers."""
    import select

    pending, started = b"", False
    fd = source.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("User-Mode Linux did not finish in time")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        pending += chunk
        if not started:
            at = pending.find(START)
            if at < 0:
                pending = pending[-len(START):]
                continue
            started = True
            pending = pending[at + len(START):].lstrip(b"\r\n")
        end = pending.find(END)
        if end >= 0:
            out.write(pending[:end])
            out.flush()
            pending, started = b"", False
            continue
        keep = len(END)  # a marker may straddle two reads
        out.write(pending[:-keep])
        out.flush()
        pending = pending[-keep:]


def _guest_main(job_file: str) -> None:
    with open(job_file, encoding="utf-8") as fh:
        job = json.load(fh)
    os.chdir(job["cwd"])
    env = {**os.environ, **job["env"]}
    os.execve(job["argv"][0], job["argv"], env)  # noqa: S606 (argv list, no shell)


if __name__ == "__main__":
    _guest_main(sys.argv[1])
