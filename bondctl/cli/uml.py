"""Run one command inside User-Mode Linux, for hosts whose kernel has no bonding driver.

The UML kernel (Debian's user-mode-linux: /usr/bin/linux.uml, modules under
/usr/lib/uml/modules) boots with the live host filesystem as its root, so the same Python and
the same bondctl run inside; a small init script mounts what the guest needs, loads the
modules of GUEST_MODULES, runs the command with its output on our terminal, and powers off.
The test harness (tests/harness/uml.py) boots its guests with the same boot_command().

`python -m bondctl.cli.uml JOB` is the guest side: it becomes the job's process.
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

UML_BINARY = "linux.uml"
UML_MODULES = Path("/usr/lib/uml/modules")
UML_LIB_MODULES = Path("/usr/lib/uml/lib/modules")
GUEST_ENV = "BONDCTL_IN_UML"
# Loaded by every guest's init (given to it as BONDCTL_MODULES): the kernel's own module
# autoloading looks under /lib/modules, not where the UML package keeps them, so a link kind
# (a VLAN of `apply`, a dummy) not loaded here is an "unknown device type" in the guest.
GUEST_MODULES = ("bonding", "veth", "dummy", "8021q", "bridge")
# Every guest's init also clears the uevent helper. UML's kernel names /sbin/hotplug; a node's
# names none (udev listens on netlink). With it, every uevent (a bond makes ~20: the device and
# its queues) had the kernel start a process that fails, in work deferred onto whatever ran
# next: in the benchmarks, the IPAM plugin of an ADD.

# PID 1 of the guest. It must never exit (the kernel would panic): every path powers off.
INIT_SCRIPT = """#!/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
echo >/proc/sys/kernel/hotplug  # no uevent helper, as on a node
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /run/netns
ip link set lo up
modprobe -a -q -d /usr/lib/uml $(echo "$BONDCTL_MODULES" | tr , ' ') >/dev/null 2>&1
echo booted >"$BONDCTL_RUN_DIR/booted"
printf '%s' "@@bondctl-start@@"  # no newline: the command's output starts right after
"$BONDCTL_PYTHON" -P -m bondctl.cli.uml "$BONDCTL_RUN_DIR/job.json"
echo $? >"$BONDCTL_RUN_DIR/status"
echo "@@bondctl-end@@"
sync
poweroff -f
"""


class Availability(NamedTuple):
    ok: bool
    reason: str


def bondctl_argv() -> list[str]:
    """How to start this very bondctl again, in the guest: this interpreter with -P, so the
    working directory (a clone of the repository, whose source tree lacks the installed
    bondctl.backends) is not put first on sys.path to shadow the installed package."""
    return [sys.executable, "-P", "-m", "bondctl.cli"]


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


def require(why: str) -> Availability:
    """User-Mode Linux for a host whose kernel cannot make bonds (`why`), or the error that
    says what to install: the demo and the sandbox fall back to it alike."""
    from bondctl.errors import BackendUnavailableError

    found = availability()
    if not found.ok:
        raise BackendUnavailableError(
            f"this kernel cannot make bonds ({why}), and User-Mode Linux is not usable "
            f"({found.reason}); load the bonding module, or apt-get install "
            "user-mode-linux kmod")
    return found


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


def boot_command(run_dir: Path, init: Path, mem: str, *, params: Mapping[str, str],
                 consoles: Sequence[str] = ("con0=fd:0,fd:1",), quiet: bool = False,
                 uml: str | None = None) -> list[str]:
    """linux.uml's command line for a guest whose root is this host's filesystem, with `init`
    as PID 1 and `params` in its environment (the kernel hands unknown KEY=VALUE parameters to
    init), GUEST_MODULES among them. ValueError if a part holds whitespace, which would split
    it into two parameters."""
    command = [
        uml or binary() or UML_BINARY, f"mem={mem}", f"uml_dir={run_dir / 'uml'}",
        "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "rw", *(["quiet"] if quiet else []),
        f"init={init}", "con=null", *consoles,
        f"BONDCTL_MODULES={','.join(GUEST_MODULES)}",
        *(f"{key}={value}" for key, value in params.items()),
    ]
    bad = next((part for part in command if any(c.isspace() for c in part)), None)
    if bad is not None:
        raise ValueError(f"UML boot parameters cannot carry whitespace: {bad}")
    return command


def run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float | None = 120.0,
        output: IO[bytes] | None = None, mem: str = "384M", stdin: bytes | None = None,
        terminal: bool = False, own_stderr: bool = False) -> int:
    """Boot UML, run `argv` inside (its output going to `output`, default our stdout) and
    return its exit status; 125 when the guest did not get to run it.

    stdin: bytes the command reads as its stdin (default: nothing). terminal: our stdin, a
    terminal, becomes the command's controlling terminal (a shell, Ctrl-C reaching the
    command). own_stderr: the command's stderr comes out on our stderr (a second console),
    not mixed into its stdout.
    """
    if not availability().ok:
        raise RuntimeError(availability().reason)
    ensure_module_symlinks()
    run_dir = Path(tempfile.mkdtemp(prefix="bondctl-uml-", dir="/tmp"))
    proc: subprocess.Popen[bytes] | None = None
    saved_tty = _save_terminal() if terminal else None
    try:
        init = run_dir / "init.sh"
        init.write_text(INIT_SCRIPT)
        init.chmod(0o755)
        if stdin is not None:
            (run_dir / "stdin").write_bytes(stdin)
        out = output if output is not None else sys.stdout.buffer
        job = {"argv": argv, "env": {**(env or {}), GUEST_ENV: "1"}, "cwd": os.getcwd(),
               "stdin": str(run_dir / "stdin") if stdin is not None else None,
               "terminal": terminal, "stderr": "tty1" if own_stderr else None,
               # The guest's tty turns \n into \r\n; only a terminal wants that.
               "raw_stdout": not _isatty(out),
               "raw_stderr": not _isatty(sys.stderr)}
        (run_dir / "job.json").write_text(json.dumps(job))
        try:
            command = boot_command(
                run_dir, init, mem, quiet=True,
                consoles=["con0=fd:0,fd:1", *(["con1=null,fd:2"] if own_stderr else [])],
                params={"BONDCTL_RUN_DIR": str(run_dir), "BONDCTL_PYTHON": sys.executable})
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        with contextlib.suppress(AttributeError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        proc = subprocess.Popen(command, stdin=None if terminal else subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=None if own_stderr else subprocess.DEVNULL,
                                start_new_session=not terminal)
        assert proc.stdout is not None
        _relay(proc.stdout, out, None if timeout is None else time.monotonic() + timeout)
        proc.wait(timeout=10)
        try:
            return int((run_dir / "status").read_text().strip())
        except (OSError, ValueError):
            return 125
    finally:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL) if not terminal else proc.kill()
            proc.wait()
        if saved_tty is not None:
            _restore_terminal(saved_tty)  # UML puts our terminal in raw mode
        shutil.rmtree(run_dir, ignore_errors=True)


def _isatty(stream: object) -> bool:
    try:
        return os.isatty(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _save_terminal() -> list[Any] | None:
    import termios

    try:
        return termios.tcgetattr(0)
    except (termios.error, OSError):
        return None


def _restore_terminal(saved: list[Any]) -> None:
    import termios

    with contextlib.suppress(termios.error, OSError):
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


START, END = b"@@bondctl-start@@", b"@@bondctl-end@@"


def _relay(source: IO[bytes], out: IO[bytes], deadline: float | None) -> None:
    """Copy the guest's console to `out`, without the kernel's own boot and power-off lines:
    only what comes between init's start and end markers."""
    import select

    pending, started = b"", False
    fd = source.fileno()
    while True:
        left = 0.5 if deadline is None else deadline - time.monotonic()
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
            pending = pending[at + len(START):]
        end = pending.find(END)
        if end >= 0:
            out.write(pending[:end])
            out.flush()
            pending, started = b"", False
            continue
        # Hold back only what may be the start of the end marker (a shell's prompt must
        # show at once, not when more output comes).
        keep = next((n for n in range(min(len(END) - 1, len(pending)), 0, -1)
                     if END.startswith(pending[-n:])), 0)
        out.write(pending[:len(pending) - keep])
        out.flush()
        pending = pending[len(pending) - keep:]


def _guest_main(job_file: str) -> None:
    with open(job_file, encoding="utf-8") as fh:
        job = json.load(fh)
    os.chdir(job["cwd"])
    env = {**os.environ, **job["env"]}
    os.environ.update(job["env"])
    if job.get("stdin"):
        _redirect(0, job["stdin"], os.O_RDONLY)
    elif not job.get("terminal", True):
        _redirect(0, os.devnull, os.O_RDONLY)
    if job.get("stderr"):
        _redirect(2, f"/dev/{job['stderr']}", os.O_WRONLY | os.O_NOCTTY)
    if job.get("terminal"):
        _take_terminal()
    for fd, raw in ((1, job.get("raw_stdout")), (2, job.get("raw_stderr"))):
        if raw:
            _no_output_processing(fd)
    os.execvpe(job["argv"][0], job["argv"], env)  # noqa: S606 (argv list, no shell)


def _redirect(fd: int, path: str, flags: int) -> None:
    new = os.open(path, flags)
    os.dup2(new, fd)
    os.close(new)


def _take_terminal() -> None:
    """Make the console our controlling terminal, so Ctrl-C and job control work."""
    import fcntl
    import termios

    with contextlib.suppress(OSError):
        os.setsid()
        active = Path("/sys/class/tty/console/active").read_text().split()[-1]
        fd = os.open(f"/dev/{active}", os.O_RDWR)
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
        columns, lines = int(os.environ.get("COLUMNS", 0)), int(os.environ.get("LINES", 0))
        if columns and lines:  # the console starts 0x0: full-screen programs need a size
            import struct

            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        for target in (0, 1):
            os.dup2(fd, target)
        os.close(fd)


def _no_output_processing(fd: int) -> None:
    """Bytes out as written: no \r added before \n (the host side is not a terminal)."""
    import termios

    with contextlib.suppress(termios.error, OSError):
        attrs = termios.tcgetattr(fd)
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(fd, termios.TCSANOW, attrs)


if __name__ == "__main__":
    _guest_main(sys.argv[1])
