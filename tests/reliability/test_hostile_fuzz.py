"""Hostile input of every kind at once, through the real executable in User-Mode Linux.

hypothesis draws the CNI command, CNI_NETNS (the pod, the host's own namespace, init's, another
pod, a file, nothing), CNI_IFNAME (including the host's bond9), CNI_CONTAINERID, CNI_ARGS,
CNI_PATH (including a relative entry that holds an evil IPAM), a network config with hostile
values for the keys that matter (logFile, stateDir, links, ipam, prevResult, duplicate keys
that differ in case...), a state record planted for the container (none, schema-valid but of
links that are not ours, {}, garbage, a FIFO, a directory, a symlink to /etc/passwd, 1 MiB),
the output of a fake IPAM plugin (valid, no prefix, a gateway of the wrong family, table
"main", priority -1, nested dns, garbage, an error with code 100...), and whether a real
attachment exists first (and what the pod did to it since: renamed its slave and put an
impostor under the name, or deleted the bond). The world is tests/reliability/hostile_world.py.

Every run must: finish within 30 s; print no traceback (stderr or log); exit 0 with the
command's output, or print error JSON with a spec code (1-7, 11, 50, 51) or ours (101+),
never 100. And it must change nothing it may not:

- the host's links (ifindex, name, MTU, MAC, state, master, kind, lower device, addresses),
  routes and per-link sysctls stay as they were, unless an ADD into a pod succeeded (and then
  only the configured links, none carrying an address unless allowAddressedLinks) or a DEL/GC
  of a real attachment succeeded (and then they are as before that attachment);
- no bond is ever made in the host's own namespace, and its bond9 stays;
- no namespace but the one an ADD succeeded in (or the attachment's, for DEL/GC) changes, and
  no link that a namespace had of its own ever leaves it;
- no file outside the state root and the log dir changes (a passwd copy bound over
  /etc/passwd, a victim file and directory), and the relative CNI_PATH's evil IPAM never runs;
- the log holds no line a value injected, a failed ADD leaves no record, a result no address
  without a prefix;
- ADD followed by DEL (the cleanup of a successful ADD) puts everything back as it was.

BONDCTL_FUZZ_EXAMPLES sets the number of examples (default 40). BONDCTL_FUZZ_SURVEY=FILE
writes every violation to FILE as JSON lines and lets the run go on (no shrinking): a
catalogue of defects in one run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.reliability.hostile_world import (
    BIN,
    IPAM,
    LOG_DIR,
    NAMESPACES,
    OUTSIDE,
    REL,
    World,
    log_lines,
    plant,
    remove,
)

EXAMPLES = int(os.environ.get("BONDCTL_FUZZ_EXAMPLES", "40"))
SURVEY = os.environ.get("BONDCTL_FUZZ_SURVEY", "")
# ~3 s per example in UML (two read-backs, one to three plugin runs): 40 take about 2-3 minutes.
pytestmark = pytest.mark.uml_weight(max(1, EXAMPLES * 3 // 4))
SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 51}
POD_LIKE = ("pod", "other")  # namespaces the plugin may build in
# The plugin's own namespace and PID 1's (the node's, in production) are never a pod.
HOST_LIKE = ("host", "self", "root")
INJECTED = "INJECTED"  # the start of a line a hostile value tries to write into the log
# Nested 800 deep: JSON that parses, but too deep to copy or walk recursively. A token in the
# drawn values (hypothesis prints and copies examples), spliced in as text.
NESTED = "@NESTED@"
NESTED_TEXT = '{"nameservers": ' + "[" * 800 + "]" * 800 + "}"

# -- strategies -----------------------------------------------------------------------------------
# The benign choice first in each list: hypothesis shrinks towards it.
COMMANDS = st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS", "ADD", "DEL"])
NETNS = st.sampled_from(["pod", "pod", "pod", "host", "self", "root", "other", "notns",
                         "missing", "empty"])
IFNAMES = st.sampled_from(["bond0", "bond0", "bond9", "bond5", "eth0", "net1", "b" * 16,
                           "bond0\nINJECTED", "../x", ""])
CONTAINER_IDS = st.sampled_from(["fz1", "fz1", "fz2", "../x", "a" * 300, ""])
CNI_ARGS = st.sampled_from([
    "", "IgnoreUnknown=1;K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns", f"K8S_POD_NAME=x\n{INJECTED}",
    "noequals", "=v", "K8S_POD_NAME=" + "é" * 200, ";;", "K=V=W",
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=../../etc"])
CNI_PATHS = st.sampled_from(["BIN", "/usr/lib/cni:BIN", f"{REL}:BIN", REL, f"BIN:{REL}", "",
                             "/nonexistent", "./:BIN"])
PLANTS = st.sampled_from(["absent", "absent", "foreign-pod", "foreign-host", "empty",
                          "garbage", "fifo", "dir", "symlink", "huge"])
ATTACHED = st.sampled_from([None, None, None, None, None, None, "none", "impostor",
                           "bond-deleted"])

GOOD_IPAM = {"cniVersion": "1.0.0", "ips": [{"address": "10.99.0.2/24",
                                             "gateway": "10.99.0.1"}],
             "routes": [{"dst": "10.98.0.0/16"}], "dns": {}}


def _ipam(**keys: Any) -> tuple[str, int]:
    return json.dumps({**GOOD_IPAM, **keys}), 0


IPAM_CASES = [
    ("valid", _ipam()),
    ("no prefix", _ipam(ips=[{"address": "10.99.0.2"}])),
    ("gateway of the wrong family", _ipam(ips=[{"address": "10.99.0.2/24",
                                                "gateway": "fd00::1"}])),
    ("bad address", _ipam(ips=[{"address": "10.99.0.300/24"}])),
    ("address not a string", _ipam(ips=[{"address": 5}])),
    ("ips not a list", _ipam(ips="10.99.0.2/24")),
    ("no ips", _ipam(ips=[])),
    ("table main", _ipam(routes=[{"dst": "10.98.0.0/16", "gw": "10.99.0.1",
                                  "table": "main"}])),
    ("priority -1", _ipam(routes=[{"dst": "10.98.0.0/16", "priority": -1}])),
    ("route without dst", _ipam(routes=[{"gw": "10.99.0.1"}])),
    ("unreachable gateway", _ipam(routes=[{"dst": "10.98.0.0/16", "gw": "192.168.77.1"}])),
    ("routes an object", _ipam(routes={"dst": "10.98.0.0/16"})),
    ("IPv6", _ipam(ips=[{"address": "fd00::2/64", "gateway": "fd00::1"}], routes=[])),
    ("nested dns", (_ipam(dns=NESTED)[0].replace(f'"{NESTED}"', NESTED_TEXT), 0)),
    ("dns a list", _ipam(dns=[])),
    ("garbage", ("not json at all", 0)),
    ("a JSON list", ("[]", 0)),
    ("error code 100", (json.dumps({"cniVersion": "1.0.0", "code": 100, "msg": "boom"}), 1)),
    ("error code a string", (json.dumps({"code": "x", "msg": 5}), 1)),
    ("exit 1, garbage", ("garbage", 1)),
]
IPAM_OUTPUTS = st.sampled_from(IPAM_CASES)

LINK_SETS = st.sampled_from([
    ["eth0", "eth1"], ["eth0", "addr0"], ["eth1", "bond9"], ["eth0", "eth1.5"],
    ["net1", "net2"], ["eth0", "lo"], ["eth0", f"x\n{INJECTED}"], ["eth0", "eth1", "eth0"],
    "eth0", [{"name": 5}],
])
LOG_FILES = st.sampled_from([
    "LOG/new.log", "LOG/sub/new.log", "LOG/fifo", "LOG/adir", "LOG/escape",
    "LOG/../outside/victim", "OUTSIDE/new.log", "/etc/passwd", "/proc/self/fd/1",
    "relative.log", 5, f"LOG/x\n{INJECTED}.log"])
STATE_DIRS = st.sampled_from([
    "OTHER", "OUTSIDE/state", "/var/lib/cni/../../run/bondctl-fuzz/outside/state2", "LINK",
    "LINK/sub", "relative", 5, "STATE/sub/deeper"])
MUTATIONS = st.sampled_from([
    ("links", LINK_SETS), ("logFile", LOG_FILES), ("stateDir", STATE_DIRS),
    ("linksInContainer", st.sampled_from([True, "yes"])),
    ("allowAddressedLinks", st.sampled_from([True, "true", 1])),
    ("mode", st.sampled_from(["balance-tlb", "802.3ad", "balance-rr", "bogus", 7])),
    ("Mode", st.sampled_from(["balance-rr", "active-backup", 0])),  # a duplicate key
    ("MTU", st.sampled_from([1400, 9000, 1000, 67, "x", True])),
    ("name", st.sampled_from([f"fuzz\n{INJECTED} line", "x" * 300, "", 5])),
    ("logFile", LOG_FILES), ("stateDir", STATE_DIRS),
    ("ipam", st.sampled_from([{"type": IPAM}, {"type": IPAM}, {"type": f"../bin/{IPAM}"},
                              {"type": "bond"}, {"type": "host-local"}, "x"])),
    ("prevResult", st.sampled_from([
        {"cniVersion": "1.0.0", "interfaces": [{"name": "bond0"}],
         "ips": [{"address": "10.99.0.2/24", "interface": 0}], "routes": [], "dns": {}},
        {"interfaces": "x"}, {"routes": {}}, {"ips": [{"address": 5}]}, {"ips": "x"},
        {"dns": NESTED}, {"routes": [{"gw": "10.0.0.1"}]}, {"interfaces": [5]},
        {"ips": [{"address": "10.99.0.2/24", "interface": 99}]}, [], "ok"])),
    ("backend", st.sampled_from(["netlink", "sysfs", "../../x", 5])),
    ("cniVersion", st.sampled_from(["0.3.1", "0.4.0", "1.1.0", "9.9.9"])),
    ("dns", st.sampled_from([{"nameservers": ["192.0.2.53"]}, [], NESTED])),
    ("cni.dev/valid-attachments", st.sampled_from([[{"containerID": "fz1",
                                                     "ifname": "bond0"}], "x", [5]])),
    ("logLevel", st.sampled_from(["info", "none", "loud"])),
])


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    return [(key, draw(values)) for key, values in draw(st.lists(MUTATIONS, max_size=3))]


@dataclass(frozen=True)
class Example:
    command: str
    netns: str
    ifname: str
    cid: str
    args: str
    path: str
    plant: str
    ipam: tuple[str, tuple[str, int]]
    attached: str | None
    mutations: list[tuple[str, Any]]


@st.composite
def examples(draw: st.DrawFn) -> Example:
    command = draw(COMMANDS)
    if draw(st.booleans()):  # a sane runtime: only the config, the state and IPAM are hostile
        env = ("pod", "bond0", "fz1", "", "BIN")
    else:
        env = (draw(NETNS), draw(IFNAMES), draw(CONTAINER_IDS), draw(CNI_ARGS),
               draw(CNI_PATHS))
    ipam = [("ipam", {"type": IPAM})] if draw(st.booleans()) else []  # then its output counts
    return Example(command, *env, draw(PLANTS), draw(IPAM_OUTPUTS), draw(ATTACHED),
                   ipam + draw(mutations()))


def case(command: str, *, netns: str = "pod", ifname: str = "bond0", path: str = "BIN",
         plant: str = "absent", ipam_out: str = "valid", attached: str | None = None,
         **muts: Any) -> Example:
    """An explicit example (the issue's cases, run first every time); `muts` are config keys."""
    (output,) = [out for name, out in IPAM_CASES if name == ipam_out]
    return Example(command, netns, ifname, "fz1", "", path, plant, (ipam_out, output),
                   attached, list(muts.items()))


# -- the config -----------------------------------------------------------------------------------
def config_pairs(world: World, muts: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The world's valid config, then each mutation: a key already present is replaced,
    unless it differs in case only (then it follows as a duplicate, as a tenant may write)."""
    pairs: list[tuple[str, Any]] = [
        ("cniVersion", "1.0.0"), ("name", "fuzz"), ("type", "bond"), ("mode", "active-backup"),
        ("miimon", "100"), ("links", [{"name": "eth0"}, {"name": "eth1"}]),
        ("stateDir", str(world.state)), ("logLevel", "debug"),
        ("logFile", str(LOG_DIR / "bond.log"))]
    for key, raw in muts:
        value = place(world, key, raw)
        if key == "links" and value == [{"name": "net1"}, {"name": "net2"}]:
            pairs = [p for p in pairs if p[0] != "linksInContainer"] + [
                ("linksInContainer", True)]
        index = next((i for i, (k, _) in enumerate(pairs) if k == key), None)
        if index is None:
            pairs.append((key, value))
        else:
            pairs[index] = (key, value)
    return pairs


def place(world: World, key: str, raw: Any) -> Any:
    """Paths and link lists of the drawn values, made concrete for this world."""
    if isinstance(raw, str) and key in ("logFile", "stateDir"):
        for token, path in (("LOG", LOG_DIR), ("OUTSIDE", OUTSIDE), ("OTHER", world.other_state),
                            ("LINK", world.state_link), ("STATE", world.state)):
            if raw == token or raw.startswith(token + "/"):
                return str(path) + raw[len(token):]
    if key == "links" and isinstance(raw, list):
        return [{"name": n} if isinstance(n, str) else n for n in raw]
    return raw


def dumps(pairs: list[tuple[str, Any]]) -> bytes:
    text = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"
    return text.replace(f'"{NESTED}"', NESTED_TEXT).encode()


def world_config(world: World, *, ipam: bool = True) -> bytes:
    pairs = config_pairs(world, [("ipam", {"type": IPAM})] if ipam else [])
    return dumps(pairs)


def cni_env(world: World, ex: Example) -> dict[str, str]:
    path = ex.path.replace("BIN", str(BIN))
    return {"CNI_COMMAND": ex.command, "CNI_CONTAINERID": ex.cid, "CNI_IFNAME": ex.ifname,
            "CNI_NETNS": world.netns_path(ex.netns), "CNI_ARGS": ex.args, "CNI_PATH": path}


def attach_env(world: World, command: str) -> dict[str, str]:
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": "fz1", "CNI_IFNAME": "bond0",
            "CNI_NETNS": str(world.pod.path), "CNI_PATH": str(BIN)}


# -- the property ---------------------------------------------------------------------------------
class Violation(AssertionError):
    """One kind of defect; each subclass is its own bug to hypothesis (shrunk on its own)."""


class Hang(Violation):
    pass


class Crash(Violation):  # a traceback, code 100, a signal, no error JSON
    pass


class BadOutput(Violation):
    pass


class HostChanged(Violation):
    pass


class OtherNamespaceChanged(Violation):
    pass


class FileWritten(Violation):
    pass


class LogInjected(Violation):
    pass


class NotRestored(Violation):
    pass


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    world = World()
    try:
        yield world
    finally:
        world.close()


SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate] if SURVEY else list(Phase),
)


@SETTINGS
@example(case("ADD", logFile="/etc/passwd", name=f"x\n{INJECTED}"))
@example(case("ADD", logFile="LOG/fifo"))
@example(case("ADD", stateDir="OUTSIDE/state"))
@example(case("ADD", stateDir="LINK"))
@example(case("DEL", plant="fifo"))
@example(case("GC", plant="dir"))
@example(case("DEL", plant="empty", attached="none"))
@example(case("DEL", netns="host", ifname="bond9"))
@example(case("DEL", netns="other", attached="none"))
@example(case("DEL", netns="empty", attached="none"))
@example(case("DEL", attached="impostor"))
@example(case("ADD", netns="root", links=["net1", "net2"]))
@example(case("ADD", links=["eth0", "addr0"]))
@example(case("ADD", path=f"{REL}:BIN", ipam={"type": IPAM}))
@example(case("ADD", ipam_out="error code 100", ipam={"type": IPAM}))
@example(case("ADD", ipam_out="no prefix", ipam={"type": IPAM}))
@example(case("ADD", ipam_out="nested dns", ipam={"type": IPAM}))
@example(case("CHECK", prevResult={"routes": [{"gw": "10.0.0.1"}]}))
@example(case("ADD", mode="balance-rr", Mode="802.3ad"))
@given(ex=examples())
def test_hostile_input_never_crashes_and_never_reaches_outside_the_pod(world, ex):
    found: list[Violation] = []
    started, world.plugin_seconds = time.monotonic(), []
    try:
        run_example(world, ex, found)
    finally:
        outcome = _PENDING.get("outcome")
        found += cleanup_violations(world, ex)
    if SURVEY:
        with open(SURVEY, "a") as fh:
            fh.write(json.dumps({"kind": "timing", "seconds": time.monotonic() - started,
                                 "plugin": world.plugin_seconds, "command": ex.command,
                                 "outcome": outcome})
                     + "\n")
            for v in found:
                fh.write(json.dumps({"kind": type(v).__name__, "what": str(v)[:3000],
                                     "example": asdict(ex)}, default=repr) + "\n")
        return
    if found:
        raise type(found[0])("\n".join(f"{type(v).__name__}: {v}" for v in found))


_PENDING: dict[str, Any] = {}  # what the cleanup of the current example must undo


def run_example(world: World, ex: Example, found: list[Violation]) -> None:
    world.reset_files()
    _PENDING.clear()
    if ex.attached:
        attach(world, ex.attached, found)
        if found:
            return
    planted = plant(world, ex.plant, ex.cid, ex.ifname) if (
        not ex.attached and ex.cid and ex.ifname and "/" not in ex.cid + ex.ifname
        and len(ex.cid) < 200) else None
    _PENDING["planted"] = planted
    _what, (out, rc) = ex.ipam
    world.ipam_output(out, rc)
    pairs = config_pairs(world, ex.mutations)
    stdin, variables = dumps(pairs), cni_env(world, ex)
    before = world.snapshot(namespaces=bool(ex.attached))
    run = world.plugin(variables, stdin)
    _PENDING["outcome"] = (run.rc, run.stdout[:200])
    after = world.snapshot()
    ok = run.rc == 0
    if ok and ex.command == "ADD":
        _PENDING["added"] = (variables, stdin)
    _PENDING["dirty"] = any(before[ns] != after[ns] for ns in NAMESPACES)
    found += check_run(ex, run)
    found += check_namespaces(world, ex, dict(pairs), ok, before, after)
    found += check_files(ex, ok, before, after)


def attach(world: World, mutation: str, found: list[Violation]) -> None:
    """A real attachment fz1/bond0 in the pod, then what the pod did to it."""
    world.ipam_output(json.dumps(GOOD_IPAM), 0)
    run = world.plugin(attach_env(world, "ADD"), world_config(world))
    if run.rc != 0:
        found.append(NotRestored(f"the world's own ADD failed: {run.stdout} {run.stderr}"))
        return
    _PENDING["attached"] = True
    if mutation == "impostor":  # the pod renames our slave and puts its own link there
        world.pod.batch(["link set eth0 down", "link set eth0 nomaster",
                         "link set eth0 name evil0", "link add eth0 type dummy"])
    elif mutation == "bond-deleted":
        world.pod.ip("link", "del", "bond0")


def check_run(ex: Example, run: Any) -> list[Violation]:
    if run.rc is None:
        return [Hang(f"no answer within 30 s; stderr: {run.stderr[-500:]}")]
    found: list[Violation] = []
    if "Traceback" in run.stderr or any("Traceback" in line for line in log_lines()):
        found.append(Crash(f"a traceback: {run.stderr[-1500:]}"))
    if run.rc < 0:
        return [*found, Crash(f"killed by signal {-run.rc}")]
    quiet_ok = ex.command in ("DEL", "CHECK", "GC", "STATUS")
    if run.rc == 0 and quiet_ok and not run.stdout.strip():
        return found
    try:
        out = json.loads(run.stdout)
    except ValueError:
        return [*found, BadOutput(f"stdout is not JSON (exit {run.rc}): {run.stdout[:300]!r}")]
    if not isinstance(out, dict):
        return [*found, BadOutput(f"stdout is not an object: {run.stdout[:300]!r}")]
    if run.rc == 0:
        if ex.command == "ADD":
            found += check_result(out)
        return found
    code = out.get("code")
    if code == 100:
        found.append(Crash(f"code 100: {out.get('msg')!r}"))
    elif not isinstance(code, int) or isinstance(code, bool) or not (
            code in SPEC_CODES or code > 100):
        found.append(BadOutput(f"error code {code!r} is neither the spec's nor ours: {out}"))
    if not isinstance(out.get("msg"), str) or set(out) - {"cniVersion", "code", "msg",
                                                          "details"}:
        found.append(BadOutput(f"not error JSON: {out}"))
    return found


def check_result(out: dict[str, Any]) -> list[Violation]:
    if not isinstance(out.get("interfaces"), list) or "cniVersion" not in out:
        return [BadOutput(f"ADD result without cniVersion or interfaces: {out}")]
    bad = [ip for ip in out.get("ips", []) if "/" not in str(ip.get("address", ""))]
    return [BadOutput(f"ADD result with an address without a prefix: {bad}")] if bad else []


def check_namespaces(world: World, ex: Example, conf: dict[str, Any], ok: bool,
                     before: dict[str, Any], after: dict[str, Any]) -> list[Violation]:
    found: list[Violation] = []
    target = ex.netns
    added = ok and ex.command == "ADD"
    released = ok and bool(ex.attached) and (ex.command == "GC" or (
        ex.command == "DEL" and (ex.cid, ex.ifname) == ("fz1", "bond0")))
    bond9 = world.index("host", "bond9")
    if after["host"]["links"].get(bond9, {}).get("name") != "bond9":
        found.append(HostChanged("the host's bond9 is gone"))
    if added and target in HOST_LIKE:
        found.append(HostChanged(f"ADD succeeded in the host's own namespace ({ex.netns})"))
    host_b, host_a = before["host"], after["host"]
    if added and target in POD_LIKE:
        found += check_taken(conf, host_b, host_a)
    elif not same_host(host_b, host_a, conf) and not (released and by_name(host_a) == by_name(
            world.baseline["host"])):
        found.append(HostChanged(
            f"{ex.command} ({'ok' if ok else 'failed'}, CNI_NETNS {ex.netns}) changed the "
            f"host: {diff(host_b, host_a)}"))
    may_change = ({target} if added else set()) | ({"pod"} if released else set())
    for ns in NAMESPACES[1:]:
        b, a = before[ns]["links"], after[ns]["links"]
        native = set(world.baseline[ns]["links"])
        gone = sorted(b[i]["name"] for i in native & (set(b) - set(a)))
        if gone:
            found.append(OtherNamespaceChanged(f"{ns}'s own links left it: {gone}"))
        if ns not in may_change and a != b:
            found.append(OtherNamespaceChanged(
                f"{ex.command} ({'ok' if ok else 'failed'}, CNI_NETNS {ex.netns}) changed "
                f"{ns}: {diff(before[ns], after[ns])}"))
    if not ok and ex.command == "ADD":
        new = {d: sorted(set(r) - set(before["records"].get(d, [])))
               for d, r in after["records"].items()}
        if any(new.values()):
            found.append(NotRestored(f"a failed ADD left records: {new}"))
    return found


def same_host(before: dict[str, Any], after: dict[str, Any], conf: dict[str, Any]) -> bool:
    """Nothing changed, but a configured link that went to the pod and back (a rolled-back
    ADD) may have a new ifindex: the kernel keeps the pod's when it is free in the host."""
    if by_name(before) != by_name(after):
        return False
    movable = {link.get("name") for link in conf.get("links") or [] if isinstance(link, dict)}
    return all(after["links"].get(i, {}).get("name") == link["name"]
               for i, link in before["links"].items() if link["name"] not in movable)


def check_taken(conf: dict[str, Any], before: dict[str, Any],
                after: dict[str, Any]) -> list[Violation]:
    """After an ADD into a pod: only configured links left the host, none with an address
    (unless allowed), and everything else of the host is as it was."""
    links = conf.get("links")
    wanted = {x.get("name") for x in links if isinstance(x, dict)} if isinstance(
        links, list) else set()
    left = {i: link for i, link in before["links"].items() if i not in after["links"]}
    found: list[Violation] = []
    stray = sorted(link["name"] for link in left.values() if link["name"] not in wanted)
    if stray:
        found.append(HostChanged(f"ADD took links it was not given: {stray}"))
    addressed = sorted(link["name"] for link in left.values() if link["addrs"])
    if addressed and conf.get("allowAddressedLinks") is not True:
        found.append(HostChanged(f"ADD took links that carry addresses: {addressed}"))
    stayed = {i: link for i, link in before["links"].items() if i in after["links"]}
    changed = {link["name"]: (link, after["links"][i]) for i, link in stayed.items()
               if after["links"][i] != link and link["kind"] != "vlan"}
    if changed:
        found.append(HostChanged(f"ADD changed host links it kept: {changed}"))
    names = {link["name"] for link in left.values()}
    kept = [r for r in before["routes"] if not any(f"dev={n}" in r.split() for n in names)]
    lost = sorted(set(kept) - set(after["routes"]))
    if lost:
        found.append(HostChanged(f"ADD removed host routes: {lost}"))
    return found


def check_files(ex: Example, ok: bool, before: dict[str, Any],
                after: dict[str, Any]) -> list[Violation]:
    found: list[Violation] = []
    if after["files"] != before["files"]:
        changed = {k: (before["files"].get(k), v) for k, v in after["files"].items()
                   if before["files"].get(k) != v}
        changed = {k: (repr(b)[:80], repr(a)[:80]) for k, (b, a) in changed.items()}
        found.append(FileWritten(f"files outside the state root and log dir changed: "
                                 f"{changed}"))
    injected = [line for line in log_lines() if line.startswith(INJECTED)]
    if injected:
        found.append(LogInjected(f"the log has lines a value wrote: {injected[:3]}"))
    return found


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        if key == "links":
            out[key] = {i: (b.get(i), a.get(i)) for i in sorted(set(b) | set(a))
                        if b.get(i) != a.get(i)}
        elif isinstance(b, list) and isinstance(a, list):
            out[key] = {"lost": sorted(set(b) - set(a)), "new": sorted(set(a) - set(b))}
        else:
            out[key] = (b, a)
    return out


# -- cleanup --------------------------------------------------------------------------------------
def cleanup_violations(world: World, ex: Example) -> list[Violation]:
    """Undo what the example legitimately made (DEL of an ADD that succeeded, of the world's
    attachment), then the namespaces must be exactly the baseline; if not, that is reported
    and the world is built anew for the next example."""
    found: list[Violation] = []
    if "added" in _PENDING:
        variables, stdin = _PENDING["added"]
        world.ipam_output(json.dumps(GOOD_IPAM), 0)
        run = world.plugin({**variables, "CNI_COMMAND": "DEL"}, stdin)
        if run.rc != 0:
            found.append(NotRestored(f"DEL after a successful ADD failed: {run.stdout}"))
    if _PENDING.get("attached"):
        world.plugin(attach_env(world, "DEL"), world_config(world))
        if world.pod.link("eth0") is not None and world.pod.link("evil0") is None:
            world.pod.ip("link", "del", "eth0")  # the impostor, if ours went home
    planted = _PENDING.get("planted")
    if planted is not None:
        remove(planted)
    if not (_PENDING.get("dirty") or "added" in _PENDING or _PENDING.get("attached")):
        _PENDING.clear()
        return found  # the namespaces are as the example found them: the baseline
    now = world.snapshot()
    for ns in NAMESPACES:
        if by_name(now[ns]) != by_name(world.baseline[ns]):
            if "added" in _PENDING or _PENDING.get("attached"):
                found.append(NotRestored(f"after ADD and DEL, {ns} is not as it was: "
                                         f"{diff(by_name(world.baseline[ns]), by_name(now[ns]))}"))
            world.rebuild()
            break
    else:
        # A link that went to a pod and back may have a new ifindex: the kernel keeps the
        # one it had in the pod when that is free. The same links, so the new baseline.
        world.baseline = now
    _PENDING.clear()
    return found


def by_name(ns: dict[str, Any]) -> dict[str, Any]:
    return {**ns, "links": {link["name"]: link for link in ns["links"].values()}}
