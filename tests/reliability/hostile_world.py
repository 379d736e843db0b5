"""The world of the hostile-input fuzz suite (test_hostile_fuzz.py): namespaces, links, files
and a fake IPAM plugin that every example may aim at, and their exact read-back. No tests here.

- "host": where the plugin runs. Two dummies it may take (eth0: up, MTU 1450, rp_filter 2,
  IPv6 disabled; eth1: down, MTU 1480, lower device of the DOWN VLAN eth1.5), the node's own
  bond9, and addr0, which carries 192.0.2.1/24 and the default route (the node's uplink).
- "pod": the pod under attack, with links of its own (net1, net2 and bond5 over net3).
- "other": another pod, with its own bond0 over links named like ours (eth0, eth1).
- the root namespace (/proc/1/ns/net), which the plugin sees as a foreign one.
- SANDBOX (a tmpfs path): outside/ holds victims nothing may touch; log/ is the log dir the node
  admin allows (BONDCTL_LOG_DIR), with a FIFO, a directory and a symlink out of it planted;
  bin/ holds the fake IPAM, rel/ an evil one reachable only through a relative CNI_PATH entry.
- /etc/passwd: the plugin runs in a private mount namespace where a copy in SANDBOX is bound
  over it (the guest's root file system is the host's: a write must land nowhere real).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.netns import NETNS_DIR, NetnsPool, run_ip

ROOTDIR = Path(__file__).resolve().parents[2]
SANDBOX = Path("/run/bondctl-fuzz")
OUTSIDE = SANDBOX / "outside"
LOG_DIR = SANDBOX / "log"
BIN = SANDBOX / "bin"
REL = "rel"  # relative to the plugin's working directory, SANDBOX
PASSWD = SANDBOX / "passwd"
NOT_NETNS = SANDBOX / "notns"
STATE_ROOT = Path("/var/lib/cni")  # a tmpfs in the guest
IPAM = "fakeipam"
TIMEOUT = 30.0  # seconds for one plugin run: an ADD costs ~1 s in User-Mode Linux
SYSCTLS = ("ipv4/conf/*/rp_filter", "ipv6/conf/*/disable_ipv6")
NAMESPACES = ("host", "pod", "other", "root")

# The fake IPAM: VERSION and DEL always answer well (cleanup must work); every other command
# prints the drawn output with the drawn exit code.
FAKE_IPAM = f"""#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}}'
         exit 0;;
DEL) exit 0;;
esac
cat {BIN}/out
exit $(cat {BIN}/rc)
"""
EVIL_IPAM = f"""#!/bin/sh
: > {OUTSIDE}/EVIL-IPAM-RAN
exit 1
"""


@dataclass
class Run:
    rc: int | None  # None: killed after TIMEOUT
    stdout: str
    stderr: str


def _json_stream(text: str) -> list[Any]:
    """The JSON documents `ip -batch` prints one after another."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        doc, pos = decoder.raw_decode(text, pos)
        out.append(doc)


def _link(link: dict[str, Any]) -> dict[str, Any]:
    info = link.get("linkinfo", {})
    # A VLAN's MAC is its lower device's, copied when it is up: not state of its own.
    mac = None if info.get("info_kind") == "vlan" else link.get("address")
    return {"name": link["ifname"], "mtu": link["mtu"], "mac": mac,
            "up": "UP" in link["flags"], "master": link.get("master"),
            "kind": info.get("info_kind"), "lower": link.get("link"),
            "addrs": sorted(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                            if "local" in a and not _kernel_made(a["local"]))}


def _kernel_made(address: str) -> bool:
    """IPv6 link-local addresses and multicast routes: the kernel adds them a moment after a
    link comes up (which "up" already tells), so a read-back may or may not see them yet."""
    return address.startswith(("fe80:", "ff00:"))


def _routes(routes: list[dict[str, Any]]) -> list[str]:
    keys = ("table", "type", "dst", "gateway", "dev", "metric", "prefsrc")
    return sorted(" ".join(f"{k}={r[k]}" for k in keys if k in r) for r in routes
                  if not _kernel_made(str(r.get("dst", ""))))


def ident(path: str | Path) -> list[int]:
    st = os.stat(path)
    return [st.st_dev, st.st_ino]


class World:
    def __init__(self) -> None:
        self.token = secrets.token_hex(3)
        self.state = STATE_ROOT / f"fuzz-{self.token}"
        self.other_state = STATE_ROOT / f"fuzz-{self.token}-b"
        self.state_link = STATE_ROOT / f"fuzz-{self.token}-link"
        self.pool = NetnsPool("fz")
        self.plugin_seconds: list[float] = []  # of each run, for the survey's timings
        self.build()

    # -- building ---------------------------------------------------------------------------
    def build(self) -> None:
        self.host = self.pool.new("fzhost")
        self.pod = self.pool.new("fzpod")
        self.other = self.pool.new("fzother")
        self.host.batch([
            "link add eth0 mtu 1450 address 02:00:00:00:01:01 type dummy",
            "link add eth1 mtu 1480 address 02:00:00:00:02:01 type dummy",
            "link add link eth1 name eth1.5 type vlan id 5",
            "link add bond9 type bond",
            "link add addr0 address 02:00:00:00:03:01 type dummy",
            "link set addr0 addrgenmode none",
            "link set addr0 up",
            "address add 192.0.2.1/24 dev addr0",
            "route add default via 192.0.2.254 dev addr0",
        ])
        self.host.run("sh", "-c", "echo 2 > /proc/sys/net/ipv4/conf/eth0/rp_filter && "
                      "echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6")
        self.host.ip("link", "set", "eth0", "up")
        self.pod.batch(["link add net1 type dummy", "link add net2 type dummy",
                        "link add net3 type dummy", "link add bond5 type bond",
                        "link set net3 master bond5"])
        self.other.batch(["link add eth0 type dummy", "link add eth1 type dummy",
                          "link add bond0 type bond", "link set eth0 master bond0",
                          "link set eth1 master bond0"])
        self.baseline = self.snapshot()
        self.first_root = getattr(self, "first_root", self.baseline["root"]["links"])

    def rebuild(self) -> None:
        """After an example that left the namespaces changed: start over, new namespaces, and
        whatever a wrongly accepted ADD left in the root namespace deleted."""
        first = {link["name"] for link in self.first_root.values()}
        for link in self._links("root")["links"].values():
            if link["name"] not in first:
                subprocess.run(["ip", "link", "del", link["name"]], capture_output=True)
        self.pool.close()
        self.pool = NetnsPool("fz")
        self.build()

    def close(self) -> None:
        self.pool.close()
        for path in (self.state, self.other_state):
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.state_link.unlink()
        shutil.rmtree(SANDBOX, ignore_errors=True)

    def reset_files(self) -> None:
        """The sandbox, log dir and state dirs as every example starts with them."""
        shutil.rmtree(SANDBOX, ignore_errors=True)
        for path in (OUTSIDE / "statetarget", LOG_DIR / "adir", BIN, SANDBOX / REL):
            path.mkdir(parents=True, mode=0o700)
        os.chmod(SANDBOX, 0o755)
        (OUTSIDE / "victim").write_text("victim\n")
        os.mkfifo(LOG_DIR / "fifo")
        (LOG_DIR / "escape").symlink_to(OUTSIDE / "victim")
        shutil.copyfile("/etc/passwd", PASSWD)
        NOT_NETNS.write_text("")
        for path, text in ((BIN / IPAM, FAKE_IPAM), (SANDBOX / REL / IPAM, EVIL_IPAM)):
            path.write_text(text)
            path.chmod(0o755)
        self.ipam_output("", 0)
        for path in (self.state, self.other_state):
            shutil.rmtree(path, ignore_errors=True)
        self.state.mkdir(mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.state_link.unlink()
        self.state_link.symlink_to(OUTSIDE / "statetarget")

    def ipam_output(self, out: str, rc: int) -> None:
        (BIN / "out").write_text(out)
        (BIN / "rc").write_text(f"{rc}\n")

    # -- the namespaces by name -------------------------------------------------------------
    def netns_path(self, which: str) -> str:
        return {"pod": str(self.pod.path), "host": str(self.host.path), "other":
                str(self.other.path), "root": "/proc/1/ns/net", "self": "/proc/self/ns/net",
                "notns": str(NOT_NETNS), "missing": str(NETNS_DIR / "fz-missing"),
                "empty": ""}[which]

    # -- reading back -----------------------------------------------------------------------
    def snapshot(self, *, namespaces: bool = True) -> dict[str, Any]:
        """Links (by ifindex), addresses, the host's routes and per-link sysctls, every
        namespace; the files outside the allowed dirs; the records in the state dirs.
        namespaces=False: the namespaces as in the baseline (the world is known clean)."""
        out = {ns: self.baseline[ns] for ns in NAMESPACES} if not namespaces else {
            "host": self._host(), **{ns: self._links(ns) for ns in NAMESPACES[1:]}}
        out["files"] = files_outside()
        out["records"] = {str(d): sorted(p.name for p in d.iterdir() if p.suffix == ".json")
                          for d in (self.state, self.other_state) if d.is_dir()}
        return out

    def _host(self) -> dict[str, Any]:
        text = run_ip("-n", self.host.name, "-j", "-d", "-batch", "-",
                      stdin="address show\nroute show table all\n")
        addrs, routes4 = _json_stream(text)
        routes6 = json.loads(run_ip("-6", "-n", self.host.name, "-j", "route", "show", "table",
                                    "all") or "[]")
        names = ["all", "default", *(a["ifname"] for a in addrs)]
        files = [f"/proc/sys/net/{path.replace('*', n)}" for n in names for path in SYSCTLS]
        sysctl = self.host.run("grep", "-s", "-H", ".", *files, check=False)
        return {"links": {a["ifindex"]: _link(a) for a in addrs},
                "routes": _routes(routes4 + routes6), "sysctl": sorted(sysctl.stdout.split())}

    def _links(self, ns: str) -> dict[str, Any]:
        where = {"pod": ["-n", self.pod.name], "other": ["-n", self.other.name], "root": []}
        found = json.loads(run_ip(*where[ns], "-j", "-d", "address", "show") or "[]")
        return {"links": {a["ifindex"]: _link(a) for a in found}}

    def index(self, where: str, name: str) -> int:
        links = self.baseline[where]["links"]
        return next(i for i, link in links.items() if link["name"] == name)

    # -- running the plugin -----------------------------------------------------------------
    def environ(self, variables: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CNI_", "BONDCTL_FAULT"))}
        env.update({"PYTHONPATH": str(ROOTDIR), "BONDCTL_LOG_DIR": str(LOG_DIR),
                    "BONDCTL_STATE_ROOT": str(STATE_ROOT)})
        env.update({k: v for k, v in variables.items() if v != ""})
        return env

    def plugin(self, variables: dict[str, str], stdin: bytes) -> Run:
        """The real executable in the host namespace, in a private mount namespace with the
        passwd copy over /etc/passwd; every exec replaces the process, so the timeout kills
        the plugin itself."""
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/passwd && exec ip netns exec "$1" "$2" -m bondctl.cni',
                str(PASSWD), self.host.name, sys.executable]
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, input=stdin, env=self.environ(variables), cwd=SANDBOX,
                                  capture_output=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            self.plugin_seconds.append(TIMEOUT)
            return Run(None, (exc.stdout or b"").decode(errors="replace"),
                       (exc.stderr or b"").decode(errors="replace"))
        self.plugin_seconds.append(round(time.monotonic() - started, 2))
        return Run(proc.returncode, proc.stdout.decode(errors="replace"),
                   proc.stderr.decode(errors="replace"))


def files_outside() -> dict[str, Any]:
    """Everything under OUTSIDE (type, size, mtime, symlink target) and the passwd copy."""
    seen: dict[str, Any] = {}
    for top, dirs, files in os.walk(OUTSIDE):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            seen[path] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns,
                          os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
    seen[str(PASSWD)] = PASSWD.read_bytes() if PASSWD.exists() else None
    return seen


def log_lines() -> list[str]:
    """Every line of every regular file in the log dir (the FIFO and the rest skipped)."""
    lines: list[str] = []
    for top, _dirs, files in os.walk(LOG_DIR):
        for name in files:
            path = os.path.join(top, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                with open(path, "rb") as fh:
                    lines += fh.read().decode(errors="replace").splitlines()
    return lines


def record_v2(world: World, cid: str, ifname: str, where: str) -> dict[str, Any]:
    """A schema-valid record of links that are not ours: aimed at the host's own namespace
    (its real bond9, eth0 and addr0 by their real ifindex), or at the pod with identities that
    do not match (net1 by ifindex but of another kind and permanent MAC, net3 by a wrong
    ifindex, bond5 by a wrong index)."""
    def link(name: str, index: int, kind: str) -> dict[str, Any]:
        return {"name": name, "host": True, "index": index, "podIndex": index, "kind": kind,
                "mtu": 1500, "mac": "02:99:00:00:00:01", "permMac": "02:99:00:00:00:02",
                "up": True, "addresses": [], "routes": [], "sysctls": {}, "uppers": []}

    if where == "host":
        ns, bond = world.host, "bond9"
        bond_index = world.index("host", "bond9")
        links = [link("eth0", world.index("host", "eth0"), "dummy"),
                 link("addr0", world.index("host", "addr0"), "dummy")]
    else:
        ns, bond, bond_index = world.pod, "bond5", 9999
        links = [link("net1", world.index("pod", "net1"), "veth"),
                 link("net3", 9998, "dummy")]
    return {"version": 2, "network": "fuzz", "containerID": cid, "ifname": ifname,
            "netns": str(ns.path), "netnsId": ident(ns.path), "bond": bond,
            "bondIndex": bond_index, "linksInContainer": False, "phase": "added",
            "created": 1.0, "pod": None, "links": links}


def plant(world: World, kind: str, cid: str, ifname: str) -> Path | None:
    """A state record of the given kind for <cid>@<ifname> in the world's state dir."""
    if kind == "absent":
        return None
    path = world.state / f"{cid}@{ifname}.json"
    if kind in ("foreign-pod", "foreign-host"):
        path.write_text(json.dumps(record_v2(world, cid, ifname, kind.split("-")[1])))
    elif kind == "empty":
        path.write_text("{}")
    elif kind == "garbage":
        path.write_bytes(b"\x00\xff{garbage")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "symlink":
        path.symlink_to("/etc/passwd")
    elif kind == "huge":
        record = record_v2(world, cid, ifname, "pod")
        record["padding"] = "x" * (1 << 20)
        path.write_text(json.dumps(record))
    else:
        raise AssertionError(kind)
    return path


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

