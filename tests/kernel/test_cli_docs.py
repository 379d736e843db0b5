"""Every `console` example of docs/cli.md, run in order against the real bonding driver, with
its output and exit status compared with the page.

The examples are a story in one namespace, `lab` (a throw-away namespace here, its name put
back as `lab` in the output), with eth0..eth3 whose veth peers are up. SCRIPT lists every
example's command in the page's order with what must be true before it runs (a bond made, a
cable pulled): a new example in the docs fails this test until SCRIPT says how to reach its
state. Only what truly varies is normalised, on both sides: MAC addresses, clock times, the
installed runtime's digest, the site-packages path, and the width of table padding.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.harness.netns import Netns

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "cli.md"
BIN = Path(sys.executable).parent
LAB = "lab"
CNI_DIR = "/opt/cni/bin"


class Example(NamedTuple):
    line: int
    command: str
    output: str
    status: int  # 0 unless the page shows `echo $?`


def examples(text: str) -> list[Example]:
    found: list[Example] = []
    lines = text.splitlines()
    inside = False
    current: list[object] | None = None  # [line, command, output lines, status]

    def finish() -> None:
        nonlocal current
        if current is not None:
            line, command, out, status = current
            found.append(Example(line, command, "\n".join(out), status))  # type: ignore[arg-type]
            current = None

    index = 0
    while index < len(lines):
        line = lines[index]
        if not inside and line.strip() == "```console":
            inside = True
        elif inside and line.strip() == "```":
            finish()
            inside = False
        elif inside and line == "$ echo $?":
            assert current is not None, f"docs/cli.md:{index + 1}: `echo $?` after nothing"
            current[3] = int(lines[index + 1])
            index += 1
        elif inside and line.startswith("$ "):
            finish()
            current = [index + 1, line[2:], [], 0]
        elif inside:
            assert current is not None, f"docs/cli.md:{index + 1}: output before a command"
            current[2].append(line)  # type: ignore[union-attr]
        index += 1
    return found


def yaml_block(text: str) -> str:
    return text.split("```yaml\n", 1)[1].split("```", 1)[0]


_MAC = re.compile(r"\b(?!00:00:00:00:00:00\b)(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b")
_TIME = re.compile(r"\b\d\d:\d\d:\d\d\b")
_DIGEST = re.compile(r"\bruntime [0-9a-f]{12}\b")
_SITE = re.compile(r"/\S*/site-packages/")
_PADDING = re.compile(r"(?<=\S) {2,}(?=\S)")
# doctor's fallback row says "this is User-Mode Linux" in the guest, something else natively
_UML_ROW = re.compile(r"^User-Mode Linux +ok +.*$", re.MULTILINE)


def normalise(text: str) -> str:
    text = _MAC.sub("<mac>", text)
    text = _TIME.sub("<time>", text)
    text = _DIGEST.sub("runtime <digest>", text)
    text = _SITE.sub("<site-packages>/", text)
    text = _UML_ROW.sub("User-Mode Linux  ok  <where>", text)
    lines = [_PADDING.sub("  ", line.rstrip()) for line in text.splitlines()]
    return "\n".join(lines).strip("\n")


class Lab:
    """The namespace the page calls `lab`, and the commands to run in it."""

    def __init__(self, ns: Netns, peers: list[str], peer_ns: Netns, cwd: Path) -> None:
        self.ns, self.peers, self.peer_ns, self.cwd = ns, peers, peer_ns, cwd
        self.cni_dir = cwd / "cni-bin"

    def argv(self, command: str) -> list[str]:
        words = shlex.split(command)
        if words[0] == "sudo":
            words = words[1:]
        words = [self.ns.name if w == LAB else w.replace(CNI_DIR, str(self.cni_dir))
                 for w in words]
        if words[0] == "bondctl":
            words[0] = str(BIN / "bondctl")
        return words

    def run(self, command: str) -> tuple[int, str]:
        env = {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1",
               "PYTHONUNBUFFERED": "1"}  # stdout and stderr interleave as on a terminal
        done = subprocess.run(self.argv(command), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env, cwd=self.cwd,
                              timeout=120, check=False)
        out = done.stdout.replace(self.ns.name, LAB).replace(str(self.cni_dir), CNI_DIR)
        return done.returncode, out

    def must(self, command: str) -> None:
        status, out = self.run(command)
        assert status == 0, f"setup `{command}` failed ({status}): {out}"

    def show(self, bond: str) -> dict:
        return json.loads(self.ns.ip("-j", "-d", "link", "show", "master", bond) or "[]")

    def wait_slaves(self, bond: str, want: dict[str, tuple[str, str]]) -> None:
        """Until each slave has its (state, mii_status): the kernel settles asynchronously."""
        deadline = time.monotonic() + 10
        while True:
            have = {}
            for link in self.show(bond):
                data = link.get("linkinfo", {}).get("info_slave_data", {})
                have[link["ifname"]] = (data.get("state", "").lower(),
                                        data.get("mii_status", "").lower())
            if all(have.get(k) == v for k, v in want.items()):
                return
            assert time.monotonic() < deadline, f"{bond} slaves: want {want}, have {have}"
            time.sleep(0.1)

    def cable(self, index: int, up: bool) -> None:
        self.peer_ns.ip("link", "set", self.peers[index], "up" if up else "down")


# What each example needs before it runs, in the page's order.
def _bond0(lab: Lab) -> None:
    lab.must("bondctl -n lab create bond0 --mode active-backup --miimon 100 -s eth0 -s eth1 "
             "--primary eth0")
    lab.wait_slaves("bond0", {"eth0": ("active", "up"), "eth1": ("backup", "up")})


def _degraded(lab: Lab) -> None:
    lab.must("bondctl -n lab set bond0 miimon=200 downdelay=400")
    lab.cable(1, up=False)
    lab.wait_slaves("bond0", {"eth0": ("active", "up"), "eth1": ("backup", "down")})


def _bond1_lacp(lab: Lab) -> None:
    lab.must("bondctl -n lab create bond1 --mode 802.3ad --lacp-rate fast --xmit-hash-policy "
             "layer3+4 --min-links 1 -s eth2 -s eth3")
    lab.wait_slaves("bond1", {"eth2": ("active", "up"), "eth3": ("backup", "up")})


def _fresh(lab: Lab) -> None:
    lab.must("bondctl -n lab delete bond0")
    lab.must("bondctl -n lab delete bond1")
    lab.cable(1, up=True)
    (lab.cwd / "bonds.yaml").write_text(yaml_block(DOCS.read_text()))


def _settled(lab: Lab) -> None:
    lab.wait_slaves("bond0", {"eth0": ("active", "up"), "eth1": ("backup", "up")})


def _drift(lab: Lab) -> None:
    lab.must("bondctl -n lab set bond0 miimon=300")


Setup = Callable[[Lab], None] | None
SCRIPT: list[tuple[str, Setup]] = [
    ("bondctl sandbox -- bondctl list --json", None),
    ("bondctl --version", None),
    ("bondctl -n lab create bond0 --mode active-backup --miimon 100 -s eth0 -s eth1 "
     "--primary eth0", None),
    ("bondctl -n lab create bond1 --mode 802.3ad --lacp-rate fast --xmit-hash-policy layer3+4 "
     "-s eth2 -s eth3 --dry-run", None),
    ("bondctl -n lab create bond1 --mode active-backup --lacp-rate fast -s eth2", None),
    ("bondctl -n lab create bond1 --mode active-backup -o miimon=100 -o updelay=150", None),
    ("bondctl -n lab create bond1 --mode active-backup -o fail_over_mac=active "
     "--mac 02:00:00:00:00:5a -s eth2", None),
    ("bondctl -n lab create bond2 --mode active-backup --min-links 1 --xmit-hash-policy "
     "layer3+4", None),
    ("bondctl -n lab delete bond2", None),
    ("bondctl -n lab set bond0 miimon=200 downdelay=400",
     lambda lab: lab.wait_slaves("bond0", {"eth0": ("active", "up"), "eth1": ("backup", "up")})),
    ("bondctl -n lab set bond0 mode=802.3ad lacp_rate=fast --dry-run", None),
    ("bondctl -n lab failover bond0", None),
    ("bondctl -n lab failover bond0 --to eth0", None),
    ("bondctl -n lab enslave bond0 eth2", None),
    ("bondctl -n lab release bond0 eth2", None),
    ("bondctl -n lab delete bond0", None),
    ("bondctl -n lab list", _bond0),
    ("bondctl -n lab list --json", None),
    ("bondctl -n lab show bond0", None),
    ("bondctl -n lab show bond0", _degraded),
    ("bondctl -n lab show bond1", _bond1_lacp),
    ("bondctl -n lab show bond0 --json", None),
    ("bondctl -n lab show bond7", None),
    ("bondctl -n lab watch bond0 --once", None),
    ("bondctl -n lab diff -f bonds.yaml", _fresh),
    ("bondctl -n lab apply -f bonds.yaml", None),
    ("bondctl -n lab apply -f bonds.yaml", _settled),
    ("bondctl -n lab check -f bonds.yaml", _drift),
    ("bondctl -n lab diff -f bonds.yaml", None),
    ("bondctl -n lab apply -f bonds.yaml", None),
    ("bondctl backends", None),
    ("bondctl doctor", None),
    ("sudo bondctl cni install --dir /opt/cni/bin", None),
    ("sudo bondctl cni install --dir /opt/cni/bin", None),
    ("env -i CNI_COMMAND=VERSION /opt/cni/bin/bond", None),
]


@pytest.fixture
def lab(netns, make_links, tmp_path) -> Lab:
    links = make_links(netns, 4)
    return Lab(netns, links.peers, links.peer_ns, tmp_path)


@pytest.mark.uml_weight(15)  # 34 commands, each a bondctl start inside the guest
def test_every_console_example_in_cli_md_runs_and_matches(lab: Lab) -> None:
    page = examples(DOCS.read_text())
    assert [e.command for e in page] == [command for command, _ in SCRIPT], (
        "docs/cli.md's examples changed: list each one in SCRIPT, with the state it needs")
    failures = []
    for example, (_, setup) in zip(page, SCRIPT, strict=True):
        if setup is not None:
            setup(lab)
        status, out = lab.run(example.command)
        want, have = normalise(example.output), normalise(out)
        if status != example.status or want != have:
            delta = "\n".join(difflib.unified_diff(want.splitlines(), have.splitlines(),
                                                   "docs/cli.md", "actual", lineterm=""))
            failures.append(f"docs/cli.md:{example.line}: $ {example.command}\n"
                            f"exit status: docs {example.status}, actual {status}\n{delta}")
    assert not failures, "\n\n".join(failures)


def test_ctrl_c_ends_watch_with_130(netns, make_links) -> None:
    links = make_links(netns, 1)
    subprocess.run([BIN / "bondctl", "-n", netns.name, "create", "bond0", "--mode",
                    "active-backup", "-s", links[0]], check=True, capture_output=True)
    watch = subprocess.Popen([BIN / "bondctl", "-n", netns.name, "watch", "bond0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert watch.stdout is not None
    first = watch.stdout.readline()
    assert first.startswith("watch bond0 "), first
    watch.send_signal(signal.SIGINT)
    _, err = watch.communicate(timeout=30)
    assert watch.returncode == 130
    assert err == ""  # Ctrl-C is how a watch ends: no error line


def test_completion_offers_bonds_and_links_from_the_kernel(netns, make_links) -> None:
    links = make_links(netns, 3)
    subprocess.run([BIN / "bondctl", "-n", netns.name, "create", "bond0", "--mode",
                    "active-backup", "-s", links[0], "-s", links[1]], check=True,
                   capture_output=True)

    def complete(line: str) -> list[str]:
        done = subprocess.run([BIN / "bondctl"], capture_output=True, text=True, check=True,
                              env={**os.environ, "_BONDCTL_COMPLETE": "complete_bash",
                                   "COMP_WORDS": line,
                                   "COMP_CWORD": str(len(line.split(" ")) - 1)})
        return sorted(done.stdout.split())

    ns = netns.name
    assert complete(f"bondctl -n {ns} show ") == ["bond0"]
    assert complete(f"bondctl -n {ns} enslave bond0 ") == [links[2]]
    assert complete(f"bondctl -n {ns} release bond0 ") == sorted(links[:2])
    assert complete(f"bondctl -n {ns} failover bond0 --to ") == sorted(links[:2])
    assert complete(f"bondctl -n {ns} create bond1 -s ") == [links[2]]
