"""Timed process runs through posix_spawn: the least the measuring side can add."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class RunFailed(RuntimeError):
    pass


def resolve(program: str) -> str:
    if os.sep in program:
        return os.path.abspath(program)
    found = shutil.which(program)
    if found is None:
        raise RunFailed(f"{program} is not installed")
    return found


@dataclass
class Command:
    """One measured command: argv, its environment, stdin from a file (or /dev/null), stdout
    to a file that is read back only when the command fails or the caller asks."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    stdin: Path | None = None
    stdout: Path | None = None
    stderr: Path | None = None
    ok_codes: tuple[int, ...] = (0,)
    cpu: list[float] = field(default_factory=list)  # user+sys of each timed run (and children)

    def spawn(self) -> int:
        argv = [resolve(self.argv[0]), *self.argv[1:]]
        actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
            (os.POSIX_SPAWN_OPEN, 0, str(self.stdin or os.devnull), os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(self.stdout or os.devnull),
             os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        ]
        if self.stderr is not None:
            actions.append((os.POSIX_SPAWN_OPEN, 2, str(self.stderr),
                            os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        return os.posix_spawn(argv[0], argv, dict(self.env), file_actions=actions)

    def check(self, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if code not in self.ok_codes:
            out = ""
            if self.stdout is not None:
                out = self.stdout.read_text(errors="replace")[-2000:]
            raise RunFailed(f"{' '.join(self.argv)} exited {code}: {out.strip()}")

    def time(self) -> float:
        start = time.perf_counter()
        pid = self.spawn()
        _, status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter() - start
        self.check(status)
        # The CPU the command used is what load on a shared machine distorts least.
        self.cpu.append(usage.ru_utime + usage.ru_stime)
        return elapsed

    def output(self) -> str:
        assert self.stdout is not None
        return self.stdout.read_text()


def time_parallel(commands: Sequence[Command]) -> tuple[float, list[float]]:
    """Start every command at once; the wall time of the whole batch and each one's latency."""
    started: dict[int, tuple[int, float]] = {}
    first = time.perf_counter()
    for index, command in enumerate(commands):
        started[command.spawn()] = (index, time.perf_counter())
    latencies = [0.0] * len(commands)
    failures = []
    while started:
        pid, status = os.wait()
        now = time.perf_counter()
        if pid not in started:
            continue
        index, t0 = started.pop(pid)
        latencies[index] = now - t0
        try:
            commands[index].check(status)
        except RunFailed as exc:
            failures.append(str(exc))
    wall = time.perf_counter() - first
    if failures:
        raise RunFailed(f"{len(failures)} of {len(commands)} failed; first: {failures[0]}")
    return wall, latencies
