"""The hostile-input corpus against real namespaces: the links each case names exist in the
host, so a case the plugin wrongly accepted would move them; every case must leave the links
of host and pod exactly as they were. Plus the cases only a kernel can pose: CNI_NETNS that
is not a network namespace, and a state directory (or a file in it) that is a symlink or
otherwise unsafe."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bondctl.cni.errors import INVALID_ENV, IO_FAILURE, UNKNOWN_CONTAINER
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
    elif kind == "a record that is a symlink":
        state.mkdir(mode=0o700)
        (state / "hostile@bond0.json").symlink_to(target / "victim")
    elif kind == "a corrupt record":
        state.mkdir(mode=0o700)
        (state / "hostile@bond0.json").write_text("{not json")
        return state, None
    elif kind == "a link lock that is a symlink":
        state.mkdir(mode=0o700)
        (state / f"+link@{LINKS[0]}.lock").symlink_to(target / "victim")
    else:
        raise AssertionError(kind)
    return state, target


STATE_CASES = ["a symlink to a directory", "a dangling symlink", "a regular file",
               "world-writable", "group-writable", "a record that is a symlink",
               "a corrupt record", "a link lock that is a symlink"]


@pytest.mark.parametrize("kind", STATE_CASES)
def test_unsafe_state_dir_is_refused(world, scratch, summary, kind):
    state, target = unsafe_state(kind, scratch)
    out = world.run(Case(f"stateDir {kind}", IO_FAILURE, valid_stdin(state)))
    if target is not None:
        assert list(target.iterdir()) == [], "something was written through the symlink"
    assert not (scratch / "nowhere").exists()
    summary.update(code=out["code"], msg=out["msg"][:120])


def test_corpus_covers_the_brief():
    """Every input class the reliability brief lists is in the corpus."""
    names = " | ".join(CORPUS)
    for needle in ("not JSON", "a string", "mode unknown", "miimon -1", "miimon 2^64",
                   "miimon 'abc'", "with /", "link name ..", "with space", "with NUL",
                   "unicode", "link name 16 bytes", "CNI_IFNAME 16 bytes", "CNI_IFNAME ..",
                   "duplicate links", "bond named like a link", "10 MB"):
        assert needle in names, needle
