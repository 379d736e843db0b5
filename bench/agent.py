"""A `bondctl agent` for the benchmarks: started, waited for, stopped.

With `stop_at_kernel`, each request child answers the shim (exit status 0) and ends at its
first netlink socket or process spawn, as bench/addpath.py ends the direct path: `dist/bond`
timed against such an agent is "exec of bond to its first netlink request" in agent mode.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .startup import ROOT, python

HOOKED = """\
import os, sys
from bondctl.cni import agent, wire
SPAWNS = {"subprocess.Popen", "os.posix_spawn", "os.exec", "os.system", "os.forkpty"}
serving = []  # in a request child: the connection to the shim, once the request runs
run_request = agent.run_request

def serve(request, conn):
    serving.append(conn)
    return run_request(request, conn)

def first_kernel_call(event, args):
    # Only a request's own calls: a spare getting ready, or the zygote, is never stopped.
    if serving and ((event == "socket.__new__" and args[1] == 16) or event in SPAWNS):
        # The shim is answered here, as the child would answer it when done: what is timed
        # ends at the first netlink request, not at this process's teardown.
        serving[0].sendall(wire.reply(wire.FINISHED, 0))
        os._exit(0)

agent.run_request = serve
sys.addaudithook(first_kernel_call)
sys.exit(agent.main(sys.argv[1:]))
"""


@contextlib.contextmanager
def running(socket_path: Path, env: Mapping[str, str], *, stop_at_kernel: bool = False,
            timeout: float = 300.0, log_level: str = "warning") -> Iterator[str]:
    """An agent listening on `socket_path` (its log, log_path(socket_path), next to it) for
    the duration. At log level debug it logs each request's phases (see phases())."""
    socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = log_path(socket_path)
    code = HOOKED if stop_at_kernel else "from bondctl.cni.agent import main; main()"
    argv = [python(), "-c", code, "--socket", str(socket_path), "--log-level", log_level]
    if not stop_at_kernel:
        argv = [python(), "-m", "bondctl.cni.agent", "--socket", str(socket_path),
                "--log-level", log_level]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=dict(env), cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out)
    try:
        end = time.monotonic() + timeout
        while not _answers(str(socket_path)):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the bench agent did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield str(socket_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_path(socket_path: Path) -> Path:
    return socket_path.with_suffix(".log")


PHASES = re.compile(r" debug: (\w+) \S+: phases ms: (.*); (\d+) page faults since the "
                    r"handover; (\d+) page faults in all")


def phases(log_text: str) -> dict[str, dict[str, Any]]:
    """Per command, the median ms of each phase of the agent's request children (its debug
    log's lines) and their page faults: where an agent-served request spends its time."""
    seen: dict[str, dict[str, list[float]]] = {}
    for match in PHASES.finditer(log_text):
        command, steps, after, total = match.groups()
        into = seen.setdefault(command, {})
        for step in steps.split(", "):
            name, _, ms = step.rpartition(" ")
            into.setdefault(name, []).append(float(ms))
        into.setdefault("faults after the handover", []).append(float(after))
        into.setdefault("faults in all", []).append(float(total))
    return {command: {"requests": len(values["faults in all"]),
                      "median": {name: round(statistics.median(v), 1)
                                 for name, v in values.items()}}
            for command, values in seen.items()}


def _answers(path: str) -> bool:
    if not os.path.exists(path):
        return False
    from bondctl.cni.agent import probe

    return probe(path) == ""
