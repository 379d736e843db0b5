"""One invocation's settings (namespace, backend, output form) and how it ends: exit codes,
one-line errors on stderr, JSON on stdout.

Nothing heavy is imported here at module level: `bondctl --help` loads this module.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

    from bondctl.backend import Backend
    from bondctl.ops import Bonds

# Exit codes beyond bondctl.errors' classes (which carry their own: 2 to 7).
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_INTERRUPTED = 130

FORCE_TERMINAL_ENV = "BONDCTL_FORCE_TERMINAL"
UNWRAPPED_WIDTH = 10_000  # the console width when stdout is not a terminal

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Session:
    netns: str | None = None
    backend: str | None = None
    json: bool = False
    dry_run: bool = False
    verbose: int = 0

    def select_backend(self) -> Backend:
        from bondctl.registry import Registry

        return Registry().select(self.backend)

    def bonds(self, netns: str | None = None, *, dry_run: bool = False) -> Bonds:
        from bondctl.netns import resolve
        from bondctl.ops import Bonds

        where = resolve(netns or self.netns)  # a bad namespace is an error before any backend
        return Bonds(self.select_backend(), where, dry_run=dry_run or self.dry_run)

    def debug(self, message: str) -> None:
        if self.verbose:
            print(f"bondctl: {message}", file=sys.stderr)


def console(file: TextIO | None = None, *, width: int | None = None,
            record: bool = False) -> Console:
    """A rich console that colours only a terminal and honours NO_COLOR (rich reads it)."""
    from rich.console import Console

    # The demo inside User-Mode Linux writes to the guest's console, a tty even when our own
    # stdout is a pipe: the host says which it is.
    forced = os.environ.get(FORCE_TERMINAL_ENV)
    out = Console(file=file or sys.stdout, width=width, record=record, highlight=False,
                  soft_wrap=False, emoji=False,
                  force_terminal=None if forced is None else forced == "1")
    if width is None and not out.is_terminal:
        # A pipe or a file has no width: rich would wrap at 80 columns (or $COLUMNS) and cut
        # lines a script greps for. Nothing here fills the width, so a wide one is safe.
        out.width = UNWRAPPED_WIDTH
    return out


def print_json(data: object) -> None:
    """JSON goes out unstyled and unwrapped, whatever the terminal is."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """Diagnostics and notes go to stderr, so stdout stays the result."""
    print(message, file=sys.stderr)


def warning(message: str) -> None:
    print(f"bondctl: warning: {message}", file=sys.stderr)


def error_line(message: str) -> None:
    print(f"bondctl: error: {message}", file=sys.stderr)


def exit_code_for(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for anything a command can raise."""
    from bondctl.errors import BondctlError

    if isinstance(exc, BondctlError):
        return exc.exit_code, exc.msg
    if isinstance(exc, OSError):
        message = _os_message(exc)
        if exc.errno in (errno.ENOENT, errno.ENODEV):
            return 3, message
        if exc.errno == errno.EBUSY:
            return 5, message
        return 4, message
    return EXIT_UNEXPECTED, f"unexpected {type(exc).__name__}: {exc}"


def _os_message(exc: OSError) -> str:
    text = str(exc)
    if exc.errno in (errno.EPERM, errno.EACCES):
        return f"{text} (bondctl needs root or CAP_NET_ADMIN for this)"
    return text


@contextmanager
def guarded(session: Session | None) -> Iterator[None]:
    """Turn every failure into one line on stderr and its exit code; a traceback with -v."""
    import typer

    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        error_line("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        if getattr(exc, "exit_code", None) is not None and type(exc).__module__.startswith(
                ("typer", "click")):
            raise  # usage errors: typer prints them itself
        code, message = exit_code_for(exc)
        if session is not None and session.verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        details = getattr(exc, "details", "")
        error_line(message)
        if details and session is not None and session.verbose:
            note(details)
        raise typer.Exit(code) from None


def handled(func: F) -> F:
    """Decorator for commands: their first argument is the typer Context."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx", args[0] if args else None)
        session = getattr(ctx, "obj", None)
        with guarded(session if isinstance(session, Session) else None):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def session_of(ctx: Any) -> Session:
    obj = getattr(ctx, "obj", None)
    if isinstance(obj, Session):
        return obj
    session = Session(netns=os.environ.get("BONDCTL_NETNS") or None)
    ctx.obj = session
    return session
