"""Plugin logging: never on stdout (that belongs to the result), to logFile or stderr.

A dozen lines instead of the logging package, which costs several milliseconds to import on
every pod start.

logFile comes from the network config, which a tenant writes, and the plugin runs as root: it
is used only as a regular file inside the directory the node's admin allows (BONDCTL_LOG_DIR),
reached without following a symlink and opened without blocking. Anything else is refused with
a warning on stderr: a log file must never fail or hang a pod start.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from .paths import below, open_dirs, open_root

LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "none": 100}
DEFAULT_LEVEL = "warning"
LOG_DIR_ENV = "BONDCTL_LOG_DIR"
DEFAULT_LOG_DIR = "/var/log/bondctl"
_FILE_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
               | os.O_CLOEXEC | os.O_NOCTTY)

# Every character that could end a line or drive a terminal, as an escape: a network name or
# any other logged value from the config cannot start a line of its own choosing.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: str) -> str:
    return text.translate(_ESCAPES)


_WHY = {errno.ELOOP: "it or a directory on its way is a symlink",
        errno.ENOTDIR: "a component of its path is not a directory",
        errno.ENXIO: "it is a FIFO or a socket", errno.EISDIR: "it is a directory"}


class LogFileRefused(Exception):
    pass


def open_log_file(path: str, allowed: str) -> int:
    """`path` opened for appending, if it is a regular file under `allowed`; else raises
    LogFileRefused or OSError saying why."""
    parts = below(allowed, path)
    if not parts:
        raise LogFileRefused(f"it is not a file inside {allowed} (set by {LOG_DIR_ENV})")
    parent = open_dirs(open_root(allowed, 0o700), parts[:-1])
    try:
        fd = os.open(parts[-1], _FILE_FLAGS, 0o600, dir_fd=parent)
    finally:
        os.close(parent)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "a regular file with other hard links" if stat.S_ISREG(st.st_mode) else \
            "not a regular file"
        raise LogFileRefused(f"it is {what}")
    return fd  # O_NONBLOCK, there for a FIFO, changes nothing for a regular file


class Log:
    def __init__(self) -> None:
        self.level = LEVELS[DEFAULT_LEVEL]
        self.fd = 2
        self.prefix = f"bond[{os.getpid()}]"

    def configure(self, path: str | None, level: str | None, context: str = "") -> None:
        """Log to `path` (appended, created 0600, under the allowed directory) at `level`."""
        if level:
            self.level = LEVELS[level.lower()]
        if context:
            self.prefix = f"bond[{os.getpid()}] {context}"
        if path:
            allowed = os.environ.get(LOG_DIR_ENV) or DEFAULT_LOG_DIR
            try:
                self.fd = open_log_file(path, allowed)
            except LogFileRefused as exc:
                self.warning(f"logFile {path} refused: {exc}; logging to stderr")
            except OSError as exc:
                why = _WHY.get(exc.errno or 0, exc.strerror)
                self.warning(f"logFile {path} refused: {why}; logging to stderr")

    def write(self, level: int, name: str, msg: str) -> None:
        if level < self.level:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        line = one_line(f"{stamp} {self.prefix} {name}: {msg}") + "\n"
        # A full disk must not turn a working ADD into a failure.
        try:  # noqa: SIM105  # contextlib.suppress: ~2 ms of imports on every pod start
            os.write(self.fd, line.encode("utf-8", "replace"))
        except OSError:
            pass

    def debug(self, msg: str) -> None:
        self.write(10, "debug", msg)

    def info(self, msg: str) -> None:
        self.write(20, "info", msg)

    def warning(self, msg: str) -> None:
        self.write(30, "warning", msg)

    def error(self, msg: str) -> None:
        self.write(40, "error", msg)


log = Log()
