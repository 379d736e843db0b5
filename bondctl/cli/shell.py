"""`bondctl sandbox`: a shell, or one command, where a bonding driver is.

On a kernel that can make bonds the command simply runs here. On one that cannot (the CI and
development machines, many containers) it runs inside User-Mode Linux, the same guest the
demo uses: the host filesystem as its root, so the same bondctl, files and working directory,
with bonding, veth and bridge loaded, and a fresh network stack that vanishes with it. Its
stdout, stderr and exit status come back as the command's own, so
`bondctl sandbox -- bondctl list --json | jq` works like the command alone would.
"""

from __future__ import annotations

import os
import subprocess
import sys

from bondctl.cli.session import FORCE_TERMINAL_ENV, Session, note
from bondctl.errors import BondctlError, KernelError


def run(session: Session, command: list[str], *, force_uml: bool = False) -> int:
    """Run `command` (default: a shell) where bonds can be made; its exit status."""
    from bondctl.cli import uml

    argv = command or [os.environ.get("SHELL") or "/bin/sh"]
    env = _env()
    if uml.in_guest():
        return _here(argv, env)
    if not force_uml:
        native, why = _native()
        if native:
            return _here(argv, env)
    else:
        why = "--uml asked for it"
    fallback = uml.require(why)
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if not command:
        note(f"bondctl sandbox: a shell inside User-Mode Linux ({why}); bonding is loaded, "
             "nothing done here reaches this host's network; `exit` ends it")
    session.debug(f"running {argv} inside User-Mode Linux: {fallback.reason}")
    stdin = None if interactive else (sys.stdin.buffer.read() if sys.stdin else b"")
    # On one terminal, stderr stays on the guest's console too: shells run job control on
    # their stderr, which must be the controlling terminal.
    split = not (interactive and sys.stderr is not None and sys.stderr.isatty())
    status = uml.run(argv, env=env, timeout=None, stdin=stdin, terminal=interactive,
                     own_stderr=split, mem="512M")
    if status == 125:
        raise BondctlError("User-Mode Linux stopped before the command ran (status 125)")
    return status


def _native() -> tuple[bool, str]:
    from bondctl.cli.sandbox import native_bonding

    try:
        return native_bonding()
    except KernelError as exc:  # not root, say: no namespace to try it in
        return False, exc.msg


def _here(argv: list[str], env: dict[str, str]) -> int:
    try:
        status = subprocess.run(argv, env=env, check=False).returncode
        return 128 - status if status < 0 else status  # killed by a signal: as a shell says
    except FileNotFoundError:
        raise BondctlError(f"{argv[0]}: command not found") from None
    except KeyboardInterrupt:
        return 130


def _env() -> dict[str, str]:
    """Our environment, with this bondctl's bin directory first on PATH: `bondctl` inside is
    this one even when it was started by its full path from an inactive virtualenv."""
    env = dict(os.environ)
    here = os.path.dirname(sys.executable)
    path = env.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env["PATH"] = os.pathsep.join([here, *[p for p in path.split(os.pathsep) if p != here]])
    # Inside the guest, stdout is always its console, a tty: say what ours really is.
    terminal = sys.stdout is not None and sys.stdout.isatty()
    env[FORCE_TERMINAL_ENV] = "1" if terminal else "0"
    if terminal:
        size = os.get_terminal_size(sys.stdout.fileno())
        env.setdefault("COLUMNS", str(size.columns))
        env.setdefault("LINES", str(size.lines))
    return env
