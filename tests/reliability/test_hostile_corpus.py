"""The hostile-input corpus against real namespaces: the links each case names exist in the
host, so a case the plugin wrongly accepted would move them; every case must leave the links
of host and pod exactly as they were. Plus the cases only a kernel can pose: CNI_NETNS that
is not a network namespace, and a state directory (or a file in it) that is a symlink or
otherwise unsafe; a state record that is no regular file, too large or not of the schema
(ADD, DEL and GC never hang, never trace back); a stateDir outside the admin's root; and a
logFile that is no regular file in the admin's log directory, or a logged value that tries to
start a line of its own."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bondctl.cni.errors import (
    INVALID_CONFIG,
    INVALID_ENV,
    IO_FAILURE,
    PLUGIN_FAILURE,
    UNKNOWN_CONTAINER,
)
from bondctl.cni.log import LOG_DIR_ENV
from bondctl.cni.state import MAX_RECORD, STATE_ROOT_ENV
from tests.harness.netns import NetnsPool
from tests.kernel.test_cni_support import PLUGIN, link_facts
from tests.reliability.corpus import Case, cases, run_case
from tests.reliability.nothing_left import LinkView

CATEGORY = "hostile input (namespaces)"
LINKS = ["eth0", "eth1"]
STATE = Path("/var/lib/cni/bond-hostile")  # a tmpfs in the guest
CORPUS = {case.name: case for case in cases(LINKS, str(STATE))}


class World:
    def __init__(self, pool: NetnsPool) -> None:
        self.host = pool.new("host")
        self.pod = pool.new("pod")
        # Different MTU, MAC and state on each, as in the fault suite.
        self.host.batch([
            "link add eth0 mtu 1450 address 02:00:00:00:01:01 type dummy",
            "link add eth1 mtu 1480 address 02:00:00:00:02:01 type dummy",
            "link set eth0 up",
        ])

    def facts(self) -> dict[str, Any]:
        """Every link of both namespaces: names, MTU, MAC, admin state, master."""
        views = {"host": LinkView(self.host), "pod": LinkView(self.pod)}
        return {where: {name: link_facts(view, name) for name in view.by_name}
                for where, view in views.items()}

    def env(self) -> dict[str, str]:
        return {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "hostile",
                "CNI_NETNS": str(self.pod.path), "CNI_IFNAME": "bond0",
                "CNI_PATH": "/usr/lib/cni"}

    def run(self, case: Case) -> dict[str, Any]:
        """The case through the executable in the host namespace; nothing may change."""
        before = self.facts()
        out = run_case(case, ["ip", "netns", "exec", self.host.name, *PLUGIN], self.env())
        assert self.facts() == before
        return out


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    pool = NetnsPool()
    shutil.rmtree(STATE, ignore_errors=True)
    try:
        yield World(pool)
    finally:
        pool.close()
        shutil.rmtree(STATE, ignore_errors=True)


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_changes_nothing(world, summary, name):
    out = world.run(CORPUS[name])
    assert not STATE.exists(), "the state dir was created for input that was refused"
    summary.update(code=out["code"], msg=out["msg"][:120])


def valid_stdin(state_dir: Path) -> bytes:
    (case,) = [c for c in cases(LINKS, str(state_dir)) if c.name == "bond named like a link"]
    return case.stdin  # a valid config: that case is bad only through its CNI_IFNAME


# -- CNI_NETNS that is no network namespace -------------------------------------------------------
def netns_cases(scratch: Path) -> dict[str, tuple[str, int]]:
    fifo = scratch / "fifo"
    os.mkfifo(fifo)
    (scratch / "file").write_text("")
    (scratch / "dangling").symlink_to(scratch / "nowhere")
    return {
        "a regular file": (str(scratch / "file"), INVALID_ENV),
        "a directory": (str(scratch), INVALID_ENV),
        "a FIFO": (str(fifo), INVALID_ENV),
        "/dev/null": ("/dev/null", INVALID_ENV),
        "a mount namespace": ("/proc/self/ns/mnt", INVALID_ENV),
        "a UTS namespace": ("/proc/1/ns/uts", INVALID_ENV),
        "a dangling symlink": (str(scratch / "dangling"), UNKNOWN_CONTAINER),
        "a missing path": ("/run/netns/does-not-exist", UNKNOWN_CONTAINER),
    }


NETNS_CASES = ["a regular file", "a directory", "a FIFO", "/dev/null", "a mount namespace",
               "a UTS namespace", "a dangling symlink", "a missing path"]


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = Path("/var/lib/cni") / f"hostile-scratch-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("what", NETNS_CASES)
def test_cni_netns_that_is_not_a_network_namespace(world, scratch, summary, what):
    netns, code = netns_cases(scratch)[what]
    out = world.run(Case(f"CNI_NETNS {what}", code, valid_stdin(STATE), {"CNI_NETNS": netns}))
    assert not STATE.exists()
    summary.update(code=out["code"], msg=out["msg"][:120])


# -- an unsafe state directory --------------------------------------------------------------------
def unsafe_state(kind: str, scratch: Path) -> tuple[Path, Path | None]:
    """A state dir of the given kind; returns it and a target that must stay untouched."""
    target = scratch / "target"
    target.mkdir(mode=0o700)
    state = scratch / "state"
    if kind == "a symlink to a directory":
        state.symlink_to(target)
    elif kind == "a dangling symlink":
        state.symlink_to(scratch / "nowhere")
    elif kind == "a regular file":
        state.write_text("")
    elif kind == "world-writable":
        state.mkdir()
        state.chmod(0o777)
    elif kind == "group-writable":
        state.mkdir()
        state.chmod(0o770)
    elif kind == "a link lock that is a symlink":
        state.mkdir(mode=0o700)
        (state / f"+link@{LINKS[0]}.lock").symlink_to(target / "victim")
    elif kind == "a parent that is a symlink":
        (scratch / "parent").symlink_to(target)
        return scratch / "parent" / "state", target
    elif kind == "a link lock that is a FIFO":
        state.mkdir(mode=0o700)
        os.mkfifo(state / f"+link@{LINKS[0]}.lock")
    else:
        raise AssertionError(kind)
    return state, target


def plant_record(path: Path, kind: str, target: Path) -> None:
    """A state record ADD, DEL and GC must not trust; a symlink leads into `target`."""
    if kind == "a record that is a symlink":
        path.symlink_to(target / "victim")
    elif kind == "a record that is a FIFO":
        os.mkfifo(path)
    elif kind == "a record that is a directory":
        path.mkdir()
    elif kind == "a record that is a socket":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(path))  # the socket file outlives the socket
    else:
        path.write_bytes(RECORD_KINDS[kind])


RECORD_KINDS: dict[str, bytes] = {
    "a record that is a symlink": b"", "a record that is a FIFO": b"",
    "a record that is a directory": b"", "a record that is a socket": b"",
    "a corrupt record": b"{not json",
    "an empty-object record": b"{}",
    "a record that is a list": b"[]",
    "an oversize record": b'{"pad": "' + b"x" * MAX_RECORD + b'"}',
    "a record of binary garbage": bytes(range(256)) * 8,
    "a deeply nested record": b'{"a":' * 20000 + b"1" + b"}" * 20000,
    "a record with a wrong field type": json.dumps({
        "version": 1, "network": "hostile", "containerID": "hostile", "ifname": "bond0",
        "netns": "/run/netns/x", "netnsId": [1, 2], "bond": "bond0", "linksInContainer": False,
        "phase": "added", "created": 0,
        "links": [{"name": LINKS[0], "host": True, "index": "7", "mtu": 1500, "mac": None,
                   "permMac": None, "up": True}]}).encode(),
}
STATE_CASES = ["a symlink to a directory", "a dangling symlink", "a regular file",
               "world-writable", "group-writable", "a link lock that is a symlink",
               "a parent that is a symlink", "a link lock that is a FIFO"]


@pytest.mark.parametrize("kind", STATE_CASES)
def test_unsafe_state_dir_is_refused(world, scratch, summary, kind):
    state, target = unsafe_state(kind, scratch)
    out = world.run(Case(f"stateDir {kind}", IO_FAILURE, valid_stdin(state)))
    if target is not None:
        assert list(target.iterdir()) == [], "something was written through the symlink"
    assert not (scratch / "nowhere").exists()
    summary.update(code=out["code"], msg=out["msg"][:120])


# -- bad records met by ADD, DEL and GC -----------------------------------------------------------
def run_any(world: World, stdin: bytes, **env: str) -> dict[str, Any] | None:
    """A call that may succeed or fail, but in time, without a traceback or code 100, and
    without changing a link of host or pod. Returns the error JSON, None on success."""
    before = world.facts()
    proc = subprocess.run(["ip", "netns", "exec", world.host.name, *PLUGIN], input=stdin,
                          env={**world.env(), **env}, capture_output=True, timeout=60,
                          check=False)
    stderr = proc.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    assert world.facts() == before
    if proc.returncode == 0:
        return None
    out: dict[str, Any] = json.loads(proc.stdout)
    assert out["code"] != PLUGIN_FAILURE, out
    return out


@pytest.mark.parametrize("command", ["ADD", "DEL", "GC"])
@pytest.mark.parametrize("kind", list(RECORD_KINDS))
def test_bad_record_never_hangs_or_crashes(world, scratch, summary, command, kind):
    """ADD refuses to build over a record it cannot read (code 5, or 7: the attachment may
    exist); DEL and GC may clean up from the configuration or report the record, but in time,
    with a clean answer, and nothing written through a symlink."""
    state, target = scratch / "state", scratch / "target"
    state.mkdir(mode=0o700)
    target.mkdir(mode=0o700)
    plant_record(state / "hostile@bond0.json", kind, target)
    conf = json.loads(valid_stdin(state))
    if command == "GC":
        conf.update(cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
    out = run_any(world, json.dumps(conf).encode(), CNI_COMMAND=command)
    if command == "ADD":
        assert out is not None and out["code"] in (IO_FAILURE, INVALID_CONFIG), out
    assert list(target.iterdir()) == [], "something was written through the symlink"
    summary.update(code=out and out["code"], msg=(out or {}).get("msg", "")[:120])


# -- stateDir outside the admin's root -------------------------------------------------------------
OUTSIDE = {"in /etc": "/etc/bond-hostile", "/var/lib/cni/../../etc": "/var/lib/cni/../../etc/bh",
           "a sibling of the root": "/var/lib/cnix/bond", "in /run": "/run/bond-hostile"}


@pytest.mark.parametrize("where", OUTSIDE)
def test_state_dir_outside_the_root_is_refused(world, summary, where):
    assert STATE_ROOT_ENV not in os.environ
    conf = json.loads(valid_stdin(STATE))
    conf["stateDir"] = OUTSIDE[where]
    out = world.run(Case(f"stateDir {where}", INVALID_CONFIG, json.dumps(conf).encode()))
    assert out["msg"].startswith("stateDir: ")
    for made in ("/etc/bond-hostile", "/etc/bh", "/var/lib/cnix", "/run/bond-hostile"):
        assert not os.path.exists(made), made
    summary.update(code=out["code"], msg=out["msg"][:120])


# -- logFile -------------------------------------------------------------------------------------
EVENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d bond\[\d+\] ADD hostile/eth0 [a-z]+: ")


def run_logged(world: World, scratch: Path, log_file: str, **keys: Any) -> dict[str, Any]:
    """The "bond named like a link" ADD (refused with code 7 after logging has started) with
    `log_file`, the admin's log directory in scratch/log."""
    conf = {**json.loads(valid_stdin(STATE)), "logFile": log_file, "logLevel": "debug", **keys}
    case = Case("logFile", INVALID_CONFIG, json.dumps(conf).encode(),
                {"CNI_IFNAME": LINKS[0], LOG_DIR_ENV: str(scratch / "log")})
    return world.run(case)


def test_log_file_in_the_allowed_dir_has_one_line_per_event(world, scratch, summary):
    name = "hostile\n2030-01-01T00:00:00 bond[1] DEL x/y info: forged\u2028\r\x1b[2K"
    run_logged(world, scratch, str(scratch / "log" / "bond.log"), name=name)
    lines = (scratch / "log" / "bond.log").read_text().splitlines()
    assert len(lines) >= 2 and all(EVENT.match(line) for line in lines), lines
    assert [line for line in lines if "hostile\\n2030" in line], lines
    assert os.stat(scratch / "log").st_mode & 0o777 == 0o700
    summary.update(lines=len(lines))


def log_target(kind: str, scratch: Path) -> tuple[str, Path]:
    """A logFile of the given kind and a path that must stay as it is (absent, or empty)."""
    logs, target = scratch / "log", scratch / "target"
    logs.mkdir(mode=0o700)
    target.mkdir(mode=0o700)
    if kind == "outside the allowed dir":
        return "/etc/bond-hostile.log", Path("/etc/bond-hostile.log")
    if kind == "with .. out of the allowed dir":
        return f"{logs}/../target/bond.log", target / "bond.log"
    if kind == "a FIFO":
        os.mkfifo(logs / "bond.log")
        return str(logs / "bond.log"), target / "x"
    if kind == "a symlink":
        (logs / "bond.log").symlink_to(target / "bond.log")
        return str(logs / "bond.log"), target / "bond.log"
    if kind == "through a symlinked subdir":
        (logs / "net").symlink_to(target)
        return str(logs / "net" / "bond.log"), target / "bond.log"
    if kind == "a device":
        os.mknod(logs / "bond.log", 0o600 | 0o020000, os.makedev(1, 3))
        return str(logs / "bond.log"), target / "x"
    raise AssertionError(kind)


LOG_KINDS = ["outside the allowed dir", "with .. out of the allowed dir", "a FIFO", "a symlink",
             "through a symlinked subdir", "a device"]


@pytest.mark.parametrize("kind", LOG_KINDS)
def test_unsafe_log_file_is_refused_without_failing_or_hanging(world, scratch, summary, kind):
    path, untouched = log_target(kind, scratch)
    out = run_logged(world, scratch, path)  # in time, with the code of the real error
    assert not untouched.exists(), f"{untouched} was written"
    assert list((scratch / "target").iterdir()) == []
    summary.update(code=out["code"])


def test_corpus_covers_the_brief():
    """Every input class the reliability brief lists is in the corpus."""
    names = " | ".join(CORPUS)
    for needle in ("not JSON", "a string", "mode unknown", "miimon -1", "miimon 2^64",
                   "miimon 'abc'", "with /", "link name ..", "with space", "with NUL",
                   "unicode", "link name 16 bytes", "CNI_IFNAME 16 bytes", "CNI_IFNAME ..",
                   "duplicate links", "bond named like a link", "10 MB"):
        assert needle in names, needle
