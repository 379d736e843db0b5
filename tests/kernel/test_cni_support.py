"""Helpers for the CNI plugin's kernel tests: the plugin runs as a real subprocess inside a
throw-away "host" namespace, against a throw-away "pod" namespace, and everything is read back
with `ip -j -d` independently of the plugin. No tests here (pytest collects none).

Every test that takes the `cni` fixture runs twice: "direct" (the Python plugin started per
call, as a node without the agent has it) and "agent" (the native shim dist/bond forwarding to
one `bondctl agent` shared by the whole session in this guest; each call is checked to have been
served by the agent, never by the shim's direct fallback)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = [sys.executable, "-m", "bondctl.cni"]
SHIM = REPO / "dist" / "bond"  # packaging/build-artifact.sh (scripts/setup.sh runs it)
CNI_BIN = "/usr/lib/cni"
STATE_ROOT = Path("/var/lib/cni")  # a tmpfs inside User-Mode Linux
MODES = ("direct", "agent")


class AgentProcess:
    """A `bondctl agent` (python -m bondctl.cni.agent) on its own socket, logging to a file."""

    def __init__(self, directory: Path, extra_env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.args = args
        self.socket = str(directory / "agent.sock")
        self.log = directory / "agent.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> AgentProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BONDCTL_")}
        env.update(self.extra_env)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bondctl.cni.agent", "--socket", self.socket, *self.args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=REPO)
        end = time.monotonic() + timeout
        while "listening on" not in self.text():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"the agent did not start: {self.text()}")
            time.sleep(0.05)
        return self

    def text(self, offset: int = 0) -> str:
        try:
            with open(self.log, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def served(agent: AgentProcess, offset: int, variables: dict[str, str],
           wait: float = 30.0) -> bool:
    """Whether the agent logged this request after `offset`. The request's child answers the
    shim itself, before it exits; the agent logs when it reaps the child, a moment later."""
    what = (f"{variables.get('CNI_COMMAND') or '-'} {variables.get('CNI_CONTAINERID') or '-'}/"
            f"{variables.get('CNI_IFNAME') or '-'}: ")
    end = time.monotonic() + wait
    while what not in agent.text(offset):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@dataclass
class Call:
    rc: int
    out: dict[str, Any]
    stderr: str

    @property
    def code(self) -> int | None:
        return self.out.get("code")


def link_facts(ns, name: str) -> dict[str, Any] | None:
    """What the plugin must restore: name, MTU, MAC, admin state, no master."""
    link = ns.link(name)
    if link is None:
        return None
    return {"name": link["ifname"], "mtu": link["mtu"], "mac": link["address"],
            "up": "UP" in link["flags"], "master": link.get("master")}


@dataclass
class Env:
    """One test's world: host and pod namespaces, a state dir, a host-local data dir."""

    host: Any
    pod: Any
    state_dir: Path
    ipam_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    agent: AgentProcess | None = None  # agent mode: calls go through the shim to it
    # Calls go through the shim to this socket, whoever serves them (the agent, or the direct
    # path when it is down): for tests that stop and kill agents.
    via_shim: str | None = None

    def conf(self, links: list[str], *, ipam: bool = False, version: str = "1.0.0",
             **keys: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": version, "name": "bondnet", "type": "bond",
            "mode": "active-backup", "miimon": "100",
            "links": [{"name": n} for n in links], "stateDir": str(self.state_dir),
            "logLevel": "debug",
        }
        if ipam:
            conf["ipam"] = self.host_local()
        conf.update(keys)
        return conf

    def host_local(self, subnet: str = "10.56.217.0/24") -> dict[str, Any]:
        return {"type": "host-local", "subnet": subnet, "gateway": subnet.rsplit(".", 1)[0]
                + ".1", "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.ipam_dir)}

    def call(self, command: str, conf: dict[str, Any] | bytes | str, *, ifname: str = "bond0",
             cid: str = "ctr1", netns: str | None = None, env: dict[str, str] | None = None,
             path: str = CNI_BIN) -> Call:
        variables = {**os.environ, **self.extra_env, "CNI_COMMAND": command,
                     "CNI_CONTAINERID": cid, "CNI_IFNAME": ifname, "CNI_PATH": path,
                     "CNI_NETNS": str(self.pod.path) if netns is None else netns}
        variables.update(env or {})
        if variables["CNI_NETNS"] == "":
            del variables["CNI_NETNS"]
        stdin = conf if isinstance(conf, bytes | str) else json.dumps(conf)
        argv, offset = PLUGIN, 0
        if self.via_shim is not None:
            argv = [str(SHIM)]
            variables["BONDCTL_AGENT_SOCKET"] = self.via_shim
        elif self.agent is not None:
            argv, offset = [str(SHIM)], self.agent.size()
            variables["BONDCTL_AGENT_SOCKET"] = self.agent.socket
        proc = self.host.run(*argv, input=stdin if isinstance(stdin, str) else
                             stdin.decode(), env=variables, check=False)
        if self.agent is not None:
            assert served(self.agent, offset, variables), (
                f"the shim did not reach the agent: {self.agent.text(offset)}")
        try:
            out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        except ValueError:
            pytest.fail(f"plugin stdout is not JSON: {proc.stdout!r}\n{proc.stderr}")
        assert "Traceback" not in proc.stderr, proc.stderr
        return Call(proc.returncode, out, proc.stderr)

    def ok(self, command: str, conf: Any, **kwargs: Any) -> dict[str, Any]:
        call = self.call(command, conf, **kwargs)
        assert call.rc == 0, f"{command} failed: {call.out}\n{call.stderr}"
        return call.out

    def fails(self, command: str, conf: Any, code: int | None = None, **kwargs: Any) -> Call:
        call = self.call(command, conf, **kwargs)
        assert call.rc != 0, f"{command} succeeded but should not: {call.out}"
        assert set(call.out) == {"cniVersion", "code", "msg", "details"}, call.out
        if code is not None:
            assert call.code == code, call.out
        return call

    # -- reading back ----------------------------------------------------------------------
    def bond(self, name: str = "bond0") -> dict[str, Any]:
        link = self.pod.link(name)
        assert link is not None, f"{name} is not in the pod"
        assert link["linkinfo"]["info_kind"] == "bond"
        return link

    def records(self) -> list[str]:
        if not self.state_dir.exists():
            return []
        return sorted(p.name for p in self.state_dir.iterdir() if p.name.endswith(".json"))

    def leases(self) -> list[str]:
        """host-local's reserved addresses (its lock and last-reserved files aside)."""
        found = []
        for path in self.ipam_dir.rglob("*"):
            if path.is_file() and path.name != "lock" and not path.name.startswith(
                    "last_reserved_ip"):
                found.append(path.name)
        return sorted(found)

    def snapshot(self, ns: Any, names: list[str]) -> dict[str, Any]:
        return {name: link_facts(ns, name) for name in names}

    def assert_nothing_left(self, before: dict[str, Any], *, in_pod: bool = False,
                            bond: str = "bond0") -> None:
        """The one "nothing left" check, kept in tests/reliability/nothing_left.py: no bond,
        links as they were, no lease, no record, no lock still held."""
        from tests.reliability.nothing_left import assert_nothing_left

        assert_nothing_left(self, before, in_pod=in_pod, bond=bond)

    def cleanup(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)
        shutil.rmtree(self.ipam_dir, ignore_errors=True)


_shared: list[AgentProcess] = []


def shared_agent(config: pytest.Config) -> AgentProcess:
    """One agent for every agent-mode test in this guest (its start costs seconds in UML),
    started on first use and stopped (SIGTERM, which must end it cleanly) when the run ends.
    Not a session fixture: test modules import `cni` alone."""
    if not _shared:
        if not SHIM.is_file():
            pytest.fail(f"{SHIM} is missing: run `bash packaging/build-artifact.sh`")
        directory = Path(f"/run/bondctl-test-{secrets.token_hex(4)}")
        _shared.append(AgentProcess(directory).start())

        def stop() -> None:
            agent = _shared.pop()
            status = agent.stop()
            shutil.rmtree(directory, ignore_errors=True)
            if status != 0:
                raise AssertionError(f"the agent did not stop cleanly ({status}): "
                                     f"{agent.text()[-2000:]}")

        config.add_cleanup(stop)
    return _shared[0]


@pytest.fixture(params=MODES)
def cni(request, make_netns) -> Any:
    token = secrets.token_hex(4)
    world = Env(make_netns("host"), make_netns("pod"), STATE_ROOT / f"bond-test-{token}",
                STATE_ROOT / f"ipam-test-{token}")
    if request.param == "agent":
        world.agent = shared_agent(request.config)
    yield world
    world.cleanup()


def host_links(cni: Env, make_links, n: int = 2, *, up: bool = True, mtu: int | None = None,
               prefix: str = "eth") -> list[str]:
    """veth links in the host namespace, with distinct MTU/MAC/state to restore."""
    names = make_links(cni.host, n, prefix=prefix)
    for i, name in enumerate(names):
        args = ["link", "set", "dev", name, "address", f"02:00:00:00:{i + 1:02x}:01"]
        if mtu is not None:
            args += ["mtu", str(mtu)]
        cni.host.ip(*args)
        if up:
            cni.host.ip("link", "set", "dev", name, "up")
    return names


def pod_links(cni: Env, make_links, n: int = 2, *, kind: str = "dummy",
              prefix: str = "net") -> list[str]:
    """Links already in the pod (Multus + SR-IOV style), named net1, net2, ... as bond-cni's
    own tests do."""
    names = [f"{prefix}{i + 1}" for i in range(n)]
    cni.pod.batch(f"link add {name} type {kind}" for name in names)
    return names
