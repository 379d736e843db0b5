"""Start-up, natively: VERSION, the ADD path up to its first kernel call, imports, bondctl.

Every command runs with bytecode caching as a deployed install has it: the sources are compiled
into __pycache__ first and PYTHONDONTWRITEBYTECODE is removed from the measured runs' env (this
environment sets it, which would make every run compile from source).
"""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import imports
from .spawn import Command
from .stats import round_robin, summary

ROOT = Path(__file__).resolve().parents[1]
ADDPATH = Path(__file__).resolve().parent / "addpath.py"
# Packages the plugin and the CLI import from site-packages: compiled along with ours.
THIRD_PARTY = ("pluggy", "sh", "typer", "click", "rich", "shellingham", "typing_extensions",
               "pygments", "markdown_it", "mdurl", "bondctl_pyroute2", "pyroute2")
ADD_CONFIG = {
    "cniVersion": "1.0.0", "name": "bench", "type": "bond", "mode": "active-backup",
    "miimon": "100", "links": [{"name": "benchA"}, {"name": "benchB"}], "backend": "netlink",
    "ipam": {"type": "static", "addresses": [{"address": "10.99.0.2/24"}]},
}


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def bin_dir() -> Path:
    return Path(python()).parent


def measured_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("CNI_")}
    env.update(extra)
    return env


@contextlib.contextmanager
def pod_netns() -> Iterator[str]:
    """A network namespace that is not the plugin's own: it refuses to make bonds in the
    host's namespace, before the first kernel call the ADD path is timed up to."""
    name = f"bondctl-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def compile_bytecode() -> list[str]:
    """Compile ours and the third-party packages the plugin and CLI import (what pip and the
    artifact build do at install time); returns the directories compiled."""
    dirs = [ROOT / "bondctl", ROOT / "backends"]
    for name in THIRD_PARTY:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(Path(p) for p in spec.submodule_search_locations)
        elif spec is not None and spec.origin and spec.origin.endswith(".py"):
            compileall.compile_file(spec.origin, quiet=2)
    for path in dirs:
        compileall.compile_dir(path, quiet=2, workers=1)
    return [str(d) for d in dirs]


def commands(scratch: Path, netns: str) -> dict[str, Command]:
    py, bins = python(), bin_dir()
    state = scratch / "state"
    config = scratch / "add.json"
    config.write_text(json.dumps({**ADD_CONFIG, "stateDir": str(state)}))
    add_env = measured_env(CNI_COMMAND="ADD", CNI_CONTAINERID="bench-addpath",
                           CNI_NETNS=netns, CNI_IFNAME="bond0", CNI_PATH="/usr/lib/cni",
                           BONDCTL_STATE_ROOT=str(scratch))
    version_env = measured_env(CNI_COMMAND="VERSION")
    out = scratch / "out.txt"
    cmds = {
        "python -I -S -c pass (floor)": Command([py, "-I", "-S", "-c", "pass"], measured_env()),
        "python -c pass (floor with site)": Command([py, "-c", "pass"], measured_env()),
        ".venv/bin/bond VERSION": Command([str(bins / "bond")], version_env, stdout=out),
    }
    artifact = ROOT / "dist" / "bond"
    if artifact.exists():
        cmds["dist/bond VERSION"] = Command([str(artifact)], version_env, stdout=out)
    cmds["ADD path, -I -S (as dist/bond)"] = Command(
        [py, "-I", "-S", str(ADDPATH)], add_env, stdin=config, stdout=out)
    cmds["ADD path, with site (as .venv/bin/bond)"] = Command(
        [py, str(ADDPATH)], add_env, stdin=config, stdout=out)
    bondctl = bins / "bondctl"
    if bondctl.exists():
        cmds["bondctl --help"] = Command([str(bondctl), "--help"], measured_env(), stdout=out)
        err = scratch / "err.txt"
        # Without a bonding driver every backend is unavailable: exit 7 after probing them.
        cmds["bondctl list --json"] = Command([str(bondctl), "list", "--json"], measured_env(),
                                              stdout=out, stderr=err, ok_codes=(0, 7))
    return cmds


def importtime_runs(argv: list[str], env: dict[str, str], runs: int, scratch: Path,
                    stdin: Path | None = None) -> list[list[imports.Entry]]:
    err = scratch / "importtime.txt"
    results = []
    for _ in range(runs):
        Command(argv, env, stdin=stdin, stdout=scratch / "out.txt", stderr=err).time()
        results.append(imports.parse(err.read_text()))
    return results


def printed_ms(argv: list[str], env: dict[str, str], scratch: Path) -> float:
    out = scratch / "printed.txt"
    Command(argv, env, stdout=out).time()
    return float(out.read_text().strip())


REGISTRY_LOAD = """\
import time
import bondctl.cni.plugin, bondctl.netlink
t = time.perf_counter()
from bondctl.registry import Registry
Registry().backends()
print((time.perf_counter() - t) * 1000)
"""


AGENT_ADD = "agent: dist/bond to its first netlink request"
AGENT_VERSION = "agent: dist/bond VERSION"


def run(runs: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    from . import agent

    compiled = compile_bytecode()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bondctl-bench-"))
        netns = stack.enter_context(pod_netns())
        scratch = Path(tmp)
        cmds = commands(scratch, netns)
        artifact = ROOT / "dist" / "bond"
        if artifact.exists():
            log("  starting a bench agent (its request children stop at the first netlink "
                "request)")
            sock = stack.enter_context(agent.running(
                Path(f"/run/bondctl-bench-{os.getpid()}/agent.sock"),
                measured_env(BONDCTL_STATE_ROOT=str(scratch)), stop_at_kernel=True))
            add = cmds["ADD path, -I -S (as dist/bond)"]
            cmds[AGENT_ADD] = Command([str(artifact)], {**add.env, "BONDCTL_AGENT_SOCKET": sock},
                                      stdin=add.stdin, stdout=add.stdout)
            cmds[AGENT_VERSION] = Command(
                [str(artifact)], measured_env(CNI_COMMAND="VERSION", BONDCTL_AGENT_SOCKET=sock),
                stdout=scratch / "out.txt")
            cmds["/bin/true (floor: a static exec)"] = Command(["/bin/true"], measured_env())
        for label, cmd in cmds.items():  # warm the page cache, write any missing .pyc
            cmd.time()
            log(f"  warmed: {label}")
        log(f"  {runs} rounds of {len(cmds)} commands, round-robin")
        times = round_robin(runs, {label: cmd.time for label, cmd in cmds.items()})
        results = {label: {"argv": [os.path.relpath(a, ROOT) if a.startswith(str(ROOT)) else a
                                    for a in cmds[label].argv], **summary(samples),
                           "cpu": summary(cmds[label].cpu[-runs:])}
                   for label, samples in times.items()}

        py, env = python(), measured_env()
        add_cmd = cmds["ADD path, -I -S (as dist/bond)"]
        log("  -X importtime of the ADD path")
        add_imports = importtime_runs([py, "-X", "importtime", "-I", "-S", str(ADDPATH)],
                                      dict(add_cmd.env), runs, scratch, add_cmd.stdin)
        # What the bare interpreter imports anyway is not the plugin's cost.
        interpreter = {e.name for e in importtime_runs(
            [py, "-X", "importtime", "-I", "-S", "-c", "pass"], env, 1, scratch)[0]}
        log("  -X importtime of the netlink backend, alone and after the ADD path's imports")
        netlink_alone, netlink_after, registry = [], [], []
        for _ in range(runs):
            alone = importtime_runs([py, "-X", "importtime", "-c",
                                     "import bondctl.backends.netlink"], env, 1, scratch)[0]
            after = importtime_runs([py, "-X", "importtime", "-c",
                                     "import bondctl.cni.__main__, bondctl.cni.config, "
                                     "bondctl.cni.plugin, bondctl.netlink, bondctl.registry\n"
                                     "import bondctl.backends.netlink"], env, 1, scratch)[0]
            netlink_alone.append(imports.cumulative_ms(alone, "bondctl.backends.netlink") or 0.0)
            netlink_after.append(imports.cumulative_ms(after, "bondctl.backends.netlink") or 0.0)
            registry.append(printed_ms([py, "-c", REGISTRY_LOAD], env, scratch))
    add_total = [sum(e.self_us for e in run_ if e.name not in interpreter) / 1000.0
                 for run_ in add_imports]
    floor = results["python -I -S -c pass (floor)"]["median_ms"]
    floor_site = results["python -c pass (floor with site)"]["median_ms"]
    floor_cpu = results["python -I -S -c pass (floor)"]["cpu"]["median_ms"]
    floor_site_cpu = results["python -c pass (floor with site)"]["cpu"]["median_ms"]
    for label, result in results.items():
        site = "site" in label or label.startswith((".venv", "bondctl"))
        base = floor_site if site else floor
        result["over_floor_ms"] = round(result["median_ms"] - base, 2)
        result["cpu_over_floor_ms"] = round(
            result["cpu"]["median_ms"] - (floor_site_cpu if site else floor_cpu), 2)
        result["floor"] = "python -c pass" if site else "python -I -S -c pass"
    return {
        "runs": runs,
        "python": sys.version.split()[0],
        "bytecode": "compiled into __pycache__ first (compileall); PYTHONDONTWRITEBYTECODE "
                    "removed from the measured runs' environment",
        "compiled": [os.path.relpath(d, ROOT) if d.startswith(str(ROOT)) else d
                     for d in compiled],
        "commands": results,
        "imports": {
            "interpreter_modules": sorted(interpreter),
            "add_path_modules": sorted({e.name for e in add_imports[0]} - interpreter),
            "add_path_total_ms": summary([t / 1000.0 for t in add_total]),
            "add_path_top_cumulative": imports.top(add_imports, key="cumulative_us",
                                                   max_depth=0, exclude=interpreter),
            "add_path_top_self": imports.top(add_imports, key="self_us", exclude=interpreter),
            "netlink_backend_alone_ms": summary([t / 1000.0 for t in netlink_alone]),
            "netlink_backend_after_add_path_ms": summary([t / 1000.0 for t in netlink_after]),
            "registry_load_ms": summary([t / 1000.0 for t in registry]),
        },
    }
