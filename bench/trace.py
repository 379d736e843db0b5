"""Counting the processes a command spawns and the programs they run, from `strace -ff`.

strace sees every real fork/clone and execve, including those made by `sh`, `nsenter` or an IPAM
plugin, which a Python-level hook would miss. Threads (clone with CLONE_THREAD, e.g. the `sh`
library's I/O threads) are not processes and are not counted.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .spawn import Command

_EXEC = re.compile(r'^execve\("([^"]+)", (\[.*?\]),? .*\)\s+= 0$')
_SPAWN = re.compile(r"^(clone3?|fork|vfork)\((.*)\)\s+= (\d+)$")


def available() -> bool:
    return shutil.which("strace") is not None


def parse(files: Mapping[int, str], program: str) -> dict[str, Any]:
    """`files`: strace -ff output per pid. `program`: what the traced command itself is
    (its own execve, and any re-exec of its process, such as the artifact's launcher starting
    its bundled interpreter, are not spawns)."""
    spawned = 0
    programs: Counter[str] = Counter()
    root_execs: list[str] = []
    argvs: list[str] = []
    for pid in sorted(files):
        execs, forks, pid_argvs = [], 0, []
        for line in files[pid].splitlines():
            line = line.strip()
            if m := _EXEC.match(line):
                execs.append(os.path.basename(m.group(1)))
                pid_argvs.append(m.group(2))
            elif (m := _SPAWN.match(line)) and "CLONE_THREAD" not in m.group(2):
                forks += 1
        spawned += forks
        if execs and execs[0] == os.path.basename(program) and not root_execs:
            root_execs = execs
            continue
        if execs:
            programs["→".join(execs)] += 1
            argvs.append(pid_argvs[-1])
    return {"processes": spawned, "programs": dict(sorted(programs.items())),
            "own_execs": root_execs, "argv": argvs}


def count(command: Command) -> dict[str, Any]:
    """Run `command` once under strace; what it spawned."""
    with tempfile.TemporaryDirectory(prefix="bondctl-bench-strace-") as tmp:
        prefix = Path(tmp) / "t"
        traced = Command(["strace", "-ff", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork",
                          "-e", "signal=none", "-s", "80", "-o", str(prefix), *command.argv],
                         command.env, stdin=command.stdin, stdout=command.stdout,
                         ok_codes=command.ok_codes)
        traced.time()
        files = {int(p.name.rsplit(".", 1)[1]): p.read_text(errors="replace")
                 for p in Path(tmp).glob("t.*")}
    return parse(files, command.argv[0])

