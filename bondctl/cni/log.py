"""Plugin logging: never on stdout (that belongs to the result), to logFile or stderr.

A dozen lines instead of the logging package, which costs several milliseconds to import on
every pod start.
"""

from __future__ import annotations

import contextlib
import os
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "none": 100}
DEFAULT_LEVEL = "warning"


class Log:
    def __init__(self) -> None:
        self.level = LEVELS[DEFAULT_LEVEL]
        self.fd = 2
        self.prefix = f"bond[{os.getpid()}]"

    def configure(self, path: str | None, level: str | None, context: str = "") -> None:
        """Log to `path` (appended, created 0600, never through a symlink) at `level`."""
        if level:
            self.level = LEVELS[level.lower()]
        if context:
            self.prefix = f"bond[{os.getpid()}] {context}"
        if path:
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self.warning(f"cannot open logFile {path}: {exc.strerror}; logging to stderr")

    def write(self, level: int, name: str, msg: str) -> None:
        if level < self.level:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        line = f"{stamp} {self.prefix} {name}: {msg}\n"
        # A full disk must not turn a working ADD into a failure.
        with contextlib.suppress(OSError):
            os.write(self.fd, line.encode("utf-8", "replace"))

    def debug(self, msg: str) -> None:
        self.write(10, "debug", msg)

    def info(self, msg: str) -> None:
        self.write(20, "info", msg)

    def warning(self, msg: str) -> None:
        self.write(30, "warning", msg)

    def error(self, msg: str) -> None:
        self.write(40, "error", msg)


log = Log()
