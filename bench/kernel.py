"""The part that needs a kernel with bonding (User-Mode Linux here): ADD+DEL latency per
backend against floors, the processes each command spawns, and scale.

All of it runs in one boot and interleaves what it compares: inside UML processes start about
30 times slower than natively, so only side-by-side figures from the same boot mean anything.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from . import trace
from .spawn import Command, time_parallel
from .startup import ROOT, bin_dir, measured_env, python
from .stats import ratio, round_robin, summary

BACKENDS = ("netlink", "iproute2", "sysfs")
STATE_ROOT = Path("/run/bondctl-bench")
NETNS_DIR = "/var/run/netns"  # the path containerd and CRI-O hand over (a symlink to /run)
CNI_PATH = "/usr/lib/cni"
ADDRESS = "10.99.{}.2/24"


class BenchError(RuntimeError):
    pass


def ip(*args: str, batch: Iterable[str] | None = None) -> str:
    """Set-up and read-back only: never measured."""
    argv = ["ip", *args] if batch is None else ["ip", *args, "-batch", "-"]
    text = None if batch is None else "".join(f"{line}\n" for line in batch)
    done = subprocess.run(argv, input=text, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def ip_json(*args: str) -> Any:
    return json.loads(ip("-j", *args) or "[]")


def netns_add(*names: str) -> None:
    existing = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    for name in names:
        if name in existing:
            ip("netns", "del", name)
    ip(batch=[f"netns add {name}" for name in names])


def netns_del(*names: str) -> None:
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def veths_in(ns: str, pairs: Sequence[tuple[str, str]], peer_ns: str | None = None) -> None:
    where = f" netns {peer_ns}" if peer_ns else ""
    lines = []
    for name, peer in pairs:
        lines += [f"link add {name} type veth peer name {peer}{where}"]
    ip(*(["-n", ns] if ns else []), batch=lines)
    up = [f"link set {peer} up" for _, peer in pairs]
    ip(*(["-n", peer_ns] if peer_ns else (["-n", ns] if ns else [])), batch=up)


def plugin_config(scratch: Path, tag: str, backend: str | None, links: Sequence[str], *,
                  in_container: bool, subnet: int) -> Path:
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0", "name": f"bench-{tag}", "type": "bond", "mode": "active-backup",
        "miimon": "100", "linksInContainer": in_container,
        "links": [{"name": link} for link in links],
        "stateDir": str(STATE_ROOT / "state"), "logLevel": "error",
        "ipam": {"type": "static", "addresses": [{"address": ADDRESS.format(subnet)}]},
    }
    if backend:
        conf["backend"] = backend
    path = scratch / f"{tag}.json"
    path.write_text(json.dumps(conf))
    return path


def cni(plugin: str, command: str, config: Path, pod: str, container: str,
        out: Path, extra: dict[str, str] | None = None) -> Command:
    env = measured_env(CNI_COMMAND=command, CNI_CONTAINERID=container,
                       CNI_NETNS=f"{NETNS_DIR}/{pod}", CNI_IFNAME="bond0", CNI_PATH=CNI_PATH,
                       BONDCTL_STATE_ROOT=str(STATE_ROOT), **(extra or {}))
    return Command([plugin], env, stdin=config, stdout=out)


# -- read-back: a run that did not make the bond measures nothing --------------------------------
def check_bond(pod: str, slaves: Sequence[str], address: str) -> None:
    links = {link["ifname"]: link for link in ip_json("-n", pod, "-d", "link", "show")}
    bond = links.get("bond0")
    if bond is None or bond.get("linkinfo", {}).get("info_kind") != "bond":
        raise BenchError(f"{pod}: no bond0 after ADD")
    mode = bond["linkinfo"]["info_data"].get("mode")
    enslaved = sorted(n for n, link in links.items() if link.get("master") == "bond0")
    if mode != "active-backup" or enslaved != sorted(slaves):
        raise BenchError(f"{pod}: bond0 is {mode} with slaves {enslaved}, not {list(slaves)}")
    addrs = ip_json("-n", pod, "addr", "show", "dev", "bond0")
    have = {f"{a['local']}/{a['prefixlen']}" for x in addrs for a in x.get("addr_info", [])}
    if address not in have:
        raise BenchError(f"{pod}: bond0 lacks {address} (has {sorted(have)})")


def check_gone(pod: str, slaves: Sequence[str], host_links: bool = False) -> None:
    links = {link["ifname"]: link for link in ip_json("-n", pod, "link", "show")}
    if "bond0" in links:
        raise BenchError(f"{pod}: bond0 still there after DEL")
    home = {link["ifname"]: link for link in ip_json("link", "show")} if host_links else links
    for slave in slaves:
        if slave not in home or home[slave].get("master"):
            raise BenchError(f"{pod}: {slave} not back and free after DEL")


# -- ADD+DEL latency per backend -------------------------------------------------------------------
FLOOR_ADD = ["link add bond0 type bond mode active-backup miimon 100",
             "link set e0 down", "link set e0 master bond0",
             "link set e1 down", "link set e1 master bond0",
             "link set bond0 up", "address add {address} dev bond0"]
FLOOR_DEL = ["link set e0 nomaster", "link set e1 nomaster", "link del bond0"]


AGENT_SOCKET = STATE_ROOT / "agent" / "agent.sock"
DIRECT_DIST = "netlink (dist/bond, direct)"
AGENT = "netlink (dist/bond → bondctl agent)"
PIP = "netlink (.venv/bin/bond)"
TRUE = "/bin/true (floor)"
IPAM = "static IPAM (floor)"  # its DEL; its ADD (which prints a result) is IPAM_ADD
IPAM_ADD = "static IPAM ADD (floor)"


def variants() -> list[tuple[str, str, str, dict[str, str]]]:
    """(label, backend, plugin executable, extra environment)."""
    venv_bond = str(bin_dir() / "bond")
    out: list[tuple[str, str, str, dict[str, str]]] = [
        (f"{b} (.venv/bin/bond)", b, venv_bond, {}) for b in BACKENDS]
    artifact = ROOT / "dist" / "bond"
    if artifact.exists():
        out.append((DIRECT_DIST, "netlink", str(artifact), {"BONDCTL_AGENT_SOCKET": "off"}))
        out.append((AGENT, "netlink", str(artifact),
                    {"BONDCTL_AGENT_SOCKET": str(AGENT_SOCKET)}))
    return out


# Seconds of quiet before each timed command of the latency part (--settle). Each command then
# starts on a guest that has finished the previous one's deferred work: the kernel's (a bond
# deleted right after it was made waits for its device's references, IPv6 set-up runs after
# a link comes up) and the agent's (a spent request child exits, spares are replaced). Pods
# are not made and deleted milliseconds apart; --settle 0 measures them back to back. One
# second: the agent replaces spent spares 0.2 s after its last request, and in UML the two
# forks and their page copying take ~0.35 s more; a shorter pause would let that land on the
# next command, a floor included, and flatter the agent's ratio.
SETTLE = 1.0


def latency(runs: int, scratch: Path, log: Callable[[str], None],
            settle: float = SETTLE) -> dict[str, Any]:
    slaves = ("e0", "e1")
    jobs: dict[str, Callable[[], float]] = {}
    add_times: dict[str, list[float]] = {}
    checks: list[Callable[[], None]] = []
    pods = []
    floor_pod = "bl-floor"
    pods.append(floor_pod)
    netns_add(floor_pod)
    veths_in(floor_pod, [("e0", "p0"), ("e1", "p1")])
    address = ADDRESS.format(0)
    add_batch = scratch / "floor-add.batch"
    add_batch.write_text("".join(line.format(address=address) + "\n" for line in FLOOR_ADD))
    del_batch = scratch / "floor-del.batch"
    del_batch.write_text("".join(line + "\n" for line in FLOOR_DEL))
    out = scratch / "out.txt"
    floor_add = Command(["ip", "-n", floor_pod, "-batch", str(add_batch)], stdout=out)
    floor_del = Command(["ip", "-n", floor_pod, "-batch", str(del_batch)], stdout=out)
    commands: dict[str, tuple[Command, Command]] = {"ip -batch (floor)": (floor_add, floor_del)}
    checks.append(lambda: None)
    for index, (label, backend, plugin, extra) in enumerate(variants(), start=1):
        pod = f"bl-{index}"
        pods.append(pod)
        netns_add(pod)
        veths_in(pod, [("e0", "p0"), ("e1", "p1")])
        config = plugin_config(scratch, f"lat{index}", backend, slaves, in_container=True,
                               subnet=index)
        commands[label] = (cni(plugin, "ADD", config, pod, f"bench-lat{index}", out, extra),
                           cni(plugin, "DEL", config, pod, f"bench-lat{index}", out, extra))
    pod_of = {label: pods[i] for i, label in enumerate(commands)}
    address_of = {label: ADDRESS.format(i) for i, label in enumerate(commands)}
    bare = Command([python(), "-I", "-S", "-c", "pass"], measured_env())
    true = Command(["/bin/true"], measured_env())
    # The IPAM plugin the bond ADD and DEL run (a Go binary, as for Go bond-cni), alone: its DEL
    # of an address it never gave changes nothing.
    ipam_conf = scratch / "ipam.json"
    ipam_conf.write_text(json.dumps({"cniVersion": "1.0.0", "name": "bench-ipam", "ipam": {
        "type": "static", "addresses": [{"address": ADDRESS.format(250)}]}}))
    ipam = cni(f"{CNI_PATH}/static", "DEL", ipam_conf, floor_pod, "bench-ipam", out)
    ipam_add = cni(f"{CNI_PATH}/static", "ADD", ipam_conf, floor_pod, "bench-ipam", out)

    def add_del(label: str, verify: bool) -> Callable[[], float]:
        add, delete = commands[label]

        def job() -> float:
            time.sleep(settle)
            elapsed = add.time()
            if verify:
                check_bond(pod_of[label], slaves, address_of[label])
            add_times.setdefault(label, []).append(elapsed)
            time.sleep(settle)
            del_elapsed = delete.time()
            if verify:
                check_gone(pod_of[label], slaves)
            return del_elapsed
        return job

    log(f"  ADD+DEL latency: {len(commands)} variants, verified once, then {runs} rounds")
    round_robin(1, {label: add_del(label, True) for label in commands})  # warm-up + read-back
    add_times.clear()
    jobs = {label: add_del(label, False) for label in commands}

    def settled(command: Command) -> Callable[[], float]:
        def job() -> float:
            time.sleep(settle)
            return command.time()
        return job

    jobs["python -I -S -c pass (floor)"] = settled(bare)
    jobs[TRUE] = settled(true)
    jobs[IPAM] = settled(ipam)
    jobs[IPAM_ADD] = settled(ipam_add)
    del_times = round_robin(runs, jobs)
    floor_add_ms = summary(add_times["ip -batch (floor)"])["median_ms"]
    floor_del_ms = summary(del_times["ip -batch (floor)"])["median_ms"]
    bare_ms = summary(del_times.pop("python -I -S -c pass (floor)"))
    true_ms = summary(del_times.pop(TRUE))
    ipam_ms = summary(del_times.pop(IPAM))
    ipam_add_ms = summary(del_times.pop(IPAM_ADD))
    results: dict[str, Any] = {"floor_python": bare_ms, "floor_true": true_ms,
                               "floor_ipam": ipam_ms, "floor_ipam_add": ipam_add_ms,
                               "settle_s": settle, "variants": {}}
    for label in commands:
        add_s, del_s = summary(add_times[label]), summary(del_times[label])
        both = [a + d for a, d in zip(add_times[label], del_times[label], strict=True)]
        pair = summary(both)
        results["variants"][label] = {
            "add": {**add_s, "x_ip_batch": ratio(add_s["median_ms"], floor_add_ms),
                    "x_python": ratio(add_s["median_ms"], bare_ms["median_ms"])},
            "del": {**del_s, "x_ip_batch": ratio(del_s["median_ms"], floor_del_ms),
                    "x_python": ratio(del_s["median_ms"], bare_ms["median_ms"])},
            "add_del": {**pair, "x_python": ratio(pair["median_ms"], bare_ms["median_ms"])},
        }

    if trace.available():
        log("  processes per ADD and DEL (strace -ff)")
        for label, (add, delete) in commands.items():
            counted = {"add": trace.count(add), "del": trace.count(delete)}
            results["variants"][label]["spawns"] = counted
        # A pod netns path under /run/netns (podman) gives iproute2 a name: `ip -n`, no nsenter.
        for label, (add, delete) in commands.items():
            if label.startswith("iproute2"):
                runpath = {k: v.replace(NETNS_DIR, "/run/netns") if k == "CNI_NETNS" else v
                           for k, v in add.env.items()}
                add2 = Command(add.argv, runpath, stdin=add.stdin, stdout=add.stdout)
                del_env = dict(runpath, CNI_COMMAND="DEL")
                del2 = Command(delete.argv, del_env, stdin=delete.stdin, stdout=delete.stdout)
                results["variants"][label]["spawns_run_netns"] = {
                    "add": trace.count(add2), "del": trace.count(del2)}
    else:
        results["spawns_missing"] = "strace is not installed: no process counts"
    netns_del(*pods)
    results["netns_path"] = f"{NETNS_DIR}/NAME"
    return results


# -- scale ----------------------------------------------------------------------------------------
def parallel_adds(count: int, rounds: int, scratch: Path,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """`count` ADDs at once, each moving two distinct host links into its own pod."""
    peer = "bs-peer"
    pods = [f"bs-pod{i}" for i in range(count)]
    netns_add(peer, *pods)
    pairs = [(f"bh{i}{s}", f"bp{i}{s}") for i in range(count) for s in "ab"]
    veths_in("", pairs, peer)
    plugin = str(bin_dir() / "bond")
    out = scratch / "out"
    out.mkdir(exist_ok=True)
    adds, dels = [], []
    for i, pod in enumerate(pods):
        config = plugin_config(scratch, f"par{i}", "netlink", [f"bh{i}a", f"bh{i}b"],
                               in_container=False, subnet=100 + i)
        adds.append(cni(plugin, "ADD", config, pod, f"bench-par{i}", out / f"add{i}"))
        dels.append(cni(plugin, "DEL", config, pod, f"bench-par{i}", out / f"del{i}"))
    log(f"  {count} parallel ADDs then DELs, {rounds} round(s)")
    walls: dict[str, list[float]] = {"add": [], "del": []}
    each: dict[str, list[float]] = {"add": [], "del": []}
    for r in range(rounds):
        wall, lat = time_parallel(adds)
        walls["add"].append(wall)
        each["add"] += lat
        if r == 0:
            for i, pod in enumerate(pods):
                check_bond(pod, [f"bh{i}a", f"bh{i}b"], ADDRESS.format(100 + i))
        wall, lat = time_parallel(dels)
        walls["del"].append(wall)
        each["del"] += lat
        if r == 0:
            for i, pod in enumerate(pods):
                check_gone(pod, [f"bh{i}a", f"bh{i}b"], host_links=True)
    log("  the same ADD and DEL alone, for comparison")
    alone = round_robin(min(rounds * 3, 5), {"add": adds[0].time, "del": dels[0].time})
    ip(batch=[f"link del {name}" for name, _ in pairs])
    netns_del(peer, *pods)
    result: dict[str, Any] = {"parallel": count, "rounds": rounds, "backend": "netlink",
                              "links": "from the host (linksInContainer false)"}
    for what in ("add", "del"):
        batch = summary(walls[what])
        result[what] = {
            "wall": batch,
            "per_second": round(count / (batch["median_ms"] / 1000.0), 2),
            "each": summary(each[what]),
            "alone": summary(alone[what]),
        }
    return result


LIST_API = """\
import sys, time
from bondctl.ops import Bonds
from bondctl.registry import Registry
backend = Registry().select(sys.argv[1] if len(sys.argv) > 1 else None)
t = time.perf_counter()
bonds = Bonds(backend, sys.argv[2]).list()
print((time.perf_counter() - t) * 1000, len(bonds), backend.name)
"""


def many_bonds(count: int, runs: int, scratch: Path,
               log: Callable[[str], None]) -> dict[str, Any]:
    ns = "bs-list"
    netns_add(ns)
    subprocess.run(["modprobe", "-q", "-d", "/usr/lib/uml", "dummy"], capture_output=True,
                   check=False)
    lines = []
    for i in range(count):
        lines += [f"link add bl{i:03d} type bond mode active-backup miimon 100",
                  f"link add bd{i:03d} type dummy", f"link set bd{i:03d} master bl{i:03d}",
                  f"link set bl{i:03d} up"]
    ip("-n", ns, batch=lines)
    out = scratch / "list-out.txt"
    bondctl = str(bin_dir() / "bondctl")
    env = measured_env()
    cmds = {
        "ip -d -j link show": Command(["ip", "-n", ns, "-d", "-j", "link", "show"], env,
                                      stdout=out),
        "bondctl list --json": Command([bondctl, "-n", ns, "list", "--json"], env, stdout=out),
        "bondctl show --json": Command([bondctl, "-n", ns, "show", "--json", "bl000"], env,
                                       stdout=out),
        "bondctl --help": Command([bondctl, "--help"], env, stdout=out),
        "python -c pass (floor with site)": Command([python(), "-c", "pass"], env),
        "python -I -S -c pass (floor)": Command([python(), "-I", "-S", "-c", "pass"], env),
    }
    for backend in ("iproute2", "sysfs"):
        cmds[f"bondctl -b {backend} list --json"] = Command(
            [bondctl, "-n", ns, "-b", backend, "list", "--json"], env, stdout=out)
    # Read-back: each lister sees every bond.
    for label in ("bondctl list --json", "bondctl -b iproute2 list --json",
                  "bondctl -b sysfs list --json"):
        cmds[label].time()
        listed = json.loads(cmds[label].output())
        bonds = listed.get("bonds", listed) if isinstance(listed, dict) else listed
        if len(bonds) != count:
            raise BenchError(f"{label} listed {len(bonds)} bonds, not {count}")
    cmds["ip -d -j link show"].time()
    kinds = [x.get("linkinfo", {}).get("info_kind") for x in json.loads(out.read_text())]
    if kinds.count("bond") != count:
        raise BenchError(f"ip sees {kinds.count('bond')} bonds, not {count}")
    log(f"  {count} bonds: {len(cmds)} commands, {runs} rounds")
    times = round_robin(runs, {label: cmd.time for label, cmd in cmds.items()})
    api_out = scratch / "api.txt"
    api = []
    for _ in range(runs):
        Command([python(), "-c", LIST_API, "", ns], env, stdout=api_out).time()
        ms, _count, backend_name = api_out.read_text().split()
        api.append(float(ms) / 1000.0)
    netns_del(ns)
    results: dict[str, Any] = {"bonds": count, "slaves_per_bond": 1, "default_backend":
                               backend_name, "commands": {}}
    ip_ms = summary(times["ip -d -j link show"])["median_ms"]
    for label, samples in times.items():
        s = summary(samples)
        results["commands"][label] = {**s, "x_ip": ratio(s["median_ms"], ip_ms)}
    results["api_list_in_process"] = summary(api)
    return results


def run(*, runs: int, parallel: int, parallel_rounds: int, bonds: int,
        log: Callable[[str], None] = print, settle: float = SETTLE,
        parts: Sequence[str] = ("latency", "parallel", "many_bonds")) -> dict[str, Any]:
    from bondctl.kernel import bonding_loaded

    if not bonding_loaded() and subprocess.run(
            ["modprobe", "-q", "bonding"], capture_output=True, check=False).returncode:
        raise BenchError("this kernel has no bonding driver: run with --uml")
    STATE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bondctl-bench-", dir=STATE_ROOT) as tmp:
        scratch = Path(tmp)
        in_uml = "User Mode Linux" in Path("/proc/cpuinfo").read_text(errors="replace")
        result: dict[str, Any] = {"kernel": platform.release(), "in_uml": in_uml,
                                  "python": sys.version.split()[0], "runs": runs}
        from .agent import log_path, phases, running

        agent_env = measured_env(BONDCTL_STATE_ROOT=str(STATE_ROOT))
        if "latency" in parts:
            log("kernel: ADD+DEL latency per backend, direct and through the agent")
            agent_log = log_path(AGENT_SOCKET)
            agent_log.unlink(missing_ok=True)
            # At debug level the agent logs each request's phases, once the shim is answered.
            with running(AGENT_SOCKET, agent_env, log_level="debug"):
                result["latency"] = latency(runs, scratch, log, settle)
            result["latency"]["agent_phases"] = phases(agent_log.read_text(errors="replace"))
        if "parallel" in parts:
            log("kernel: parallel ADDs")
            result["parallel"] = parallel_adds(parallel, parallel_rounds, scratch, log)
        if "many_bonds" in parts:
            log("kernel: list and show with many bonds")
            result["many_bonds"] = many_bonds(bonds, runs, scratch, log)
    return result
