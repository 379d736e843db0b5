"""The node agent and the native shim, natively (no bonding driver needed): the frame protocol,
what a request child gets of the environment, and a live agent on a scratch socket taking
good, bad and hostile requests. Everything that makes bonds is in tests/kernel/test_agent.py
and in the CNI kernel suite's agent mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from bondctl.cni import wire
from bondctl.cni.agent import child_env
from tests.kernel.test_cni_support import SHIM, AgentProcess, served

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the agent serves root only")
CONF = {"cniVersion": "1.0.0", "name": "n", "type": "bond", "mode": "active-backup",
        "links": [{"name": "a0"}, {"name": "a1"}]}


# -- frames and environment -----------------------------------------------------------------
def test_request_frame_round_trip() -> None:
    env = {"CNI_COMMAND": "ADD", "X": "a=b", "EMPTY": "", "U": "caf\udcc3"}
    frame = wire.encode_request(env, True, 2)
    magic, version, flags, err, n = wire.REQUEST.unpack(frame[:wire.REQUEST.size])
    assert (magic, version, flags, err, n) == (b"BNDA", 1, wire.NETNS_FD, 2,
                                                len(frame) - wire.REQUEST.size)
    assert wire.parse_env(frame[wire.REQUEST.size:]) == env


@pytest.mark.parametrize("raw, why", [(b"A=1", "end with NUL"), (b"=x\0", "KEY="),
                                      (b"novalue\0", "KEY=")])
def test_bad_environment_blocks(raw: bytes, why: str) -> None:
    with pytest.raises(wire.BadFrame, match=why):
        wire.parse_env(raw)


def test_child_env_keeps_the_admins_bondctl_settings_not_the_callers() -> None:
    request = {"PATH": "/bin", "CNI_COMMAND": "ADD", "BONDCTL_STATE_ROOT": "/tmp/evil",
               "BONDCTL_LOG_DIR": "/", "BONDCTL_FAULT": "bond", "BONDCTL_BACKEND": "sysfs",
               "BONDCTL_AGENT_SOCKET": "/x"}
    own = {"PATH": "/sbin", "BONDCTL_STATE_ROOT": "/var/lib/cni", "HOME": "/root",
           "BONDCTL_AGENT_SOCKET": "/run/bondctl/agent.sock"}
    assert child_env(request, own) == {"PATH": "/bin", "CNI_COMMAND": "ADD",
                                       "BONDCTL_FAULT": "bond",
                                       "BONDCTL_STATE_ROOT": "/var/lib/cni"}


# -- a live agent -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    if not SHIM.is_file():
        pytest.fail(f"{SHIM} is missing: run `bash packaging/build-artifact.sh`")
    root = tmp_path_factory.mktemp("agent")
    running = AgentProcess(root / "run", {"BONDCTL_STATE_ROOT": str(root / "state"),
                                          "BONDCTL_LOG_DIR": str(root / "log")}).start()
    yield running
    assert running.stop() == 0, running.text()


def shim(env: dict[str, str], stdin: bytes = b"", socket_path: str | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    variables = {"PATH": os.environ["PATH"], **env}
    if socket_path is not None:
        variables["BONDCTL_AGENT_SOCKET"] = socket_path
    return subprocess.run([str(SHIM)], input=stdin, env=variables, capture_output=True,
                          timeout=timeout, check=False)


def direct(env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return shim(env, stdin, socket_path="off")


def cni_env(command: str, **more: str) -> dict[str, str]:
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_IFNAME": "bond0",
            "CNI_PATH": "/usr/lib/cni", **more}


def test_the_socket_is_roots_alone(agent: AgentProcess) -> None:
    st = os.stat(agent.socket)
    assert (st.st_mode & 0o777, st.st_uid) == (0o600, 0)
    assert os.stat(os.path.dirname(agent.socket)).st_mode & 0o777 == 0o700


@pytest.mark.parametrize("env, stdin", [
    (cni_env("VERSION"), b'{"cniVersion": "0.4.0"}'),
    (cni_env("ADD", CNI_NETNS="/proc/self/ns/net"), json.dumps(CONF).encode()),
    (cni_env("ADD", CNI_NETNS="/no/such/netns"), json.dumps(CONF).encode()),
    (cni_env("ADD", CNI_NETNS="/etc/hostname"), json.dumps(CONF).encode()),
    (cni_env("ADD", CNI_NETNS="/proc/self/ns/net"), b"{not json"),
    (cni_env("NOPE"), b"{}"),
    ({"CNI_COMMAND": "DEL"}, b"{}"),
], ids=["version", "host-netns", "missing-netns", "not-a-netns", "bad-json", "bad-command",
        "missing-env"])
def test_agent_answers_exactly_as_the_direct_path(agent: AgentProcess, env: dict[str, str],
                                                   stdin: bytes) -> None:
    offset = agent.size()
    via_agent = shim(env, stdin, agent.socket)
    by_itself = direct(env, stdin)
    assert (via_agent.returncode, via_agent.stdout) == (by_itself.returncode,
                                                        by_itself.stdout), via_agent.stderr
    assert via_agent.stdout.startswith(b"{")
    assert served(agent, offset, env)  # the agent served it


def test_without_an_agent_the_shim_takes_the_direct_path(tmp_path: Path) -> None:
    stdin = json.dumps(CONF).encode()
    env = cni_env("ADD", CNI_NETNS="/proc/self/ns/net")
    absent = shim(env, stdin, str(tmp_path / "nothing.sock"))
    refused = tmp_path / "refused.sock"  # a socket nobody listens on: ECONNREFUSED
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(refused))
    sock.close()
    for run in (absent, shim(env, stdin, str(refused))):
        assert run.returncode == 1 and json.loads(run.stdout)["code"] == 4, run.stdout


def raw_request(path: str, frame: bytes, fds: list[int] | None = None,
                close_after: bool = False) -> tuple[bytes, int, str] | None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(path)
        if fds:
            socket.send_fds(sock, [frame[:1]], fds)
            frame = frame[1:]
        sock.sendall(frame)
        if close_after:
            return None
        return wire.read_reply(sock)


def stdio_and_netns() -> list[int]:
    return [0, 1, 2, os.open("/proc/self/ns/net", os.O_RDONLY)]


def still_serves(agent: AgentProcess) -> None:
    run = shim(cni_env("VERSION"), b"{}", agent.socket)
    assert run.returncode == 0 and b"supportedVersions" in run.stdout
    assert agent.proc is not None and agent.proc.poll() is None


@pytest.mark.parametrize("frame, fds, why", [
    (b"GET / HTTP/1.1\r\n\r\n", False, "not a bond request"),
    (wire.REQUEST.pack(b"BNDA", 1, 0, 0, wire.MAX_ENV + 1), True, "over the"),
    (wire.REQUEST.pack(b"BNDA", 99, 0, 0, 0), True, "protocol version 99"),
    (wire.encode_request({"A": "1"}, True), True, "4 file descriptors attached, 5 expected"),
    (wire.encode_request({"A": "1"}, False), False, "0 file descriptors"),
    (wire.REQUEST.pack(b"BNDA", 1, 0, 0, 3) + b"A=1", True, "end with NUL"),
], ids=["garbage", "huge", "version", "fd-count", "no-fds", "bad-env"])
def test_bad_frames_are_refused_and_the_agent_stays_up(agent: AgentProcess, frame: bytes,
                                                       fds: bool, why: str) -> None:
    answer = raw_request(agent.socket, frame, stdio_and_netns() if fds else None)
    assert answer is not None
    kind, version, msg = answer
    assert (kind, version) == (wire.REFUSED, wire.VERSION) and why in msg, answer
    still_serves(agent)


def test_truncated_frames_and_clients_that_vanish(agent: AgentProcess) -> None:
    frame = wire.encode_request(cni_env("VERSION"), False)
    raw_request(agent.socket, frame[:7], stdio_and_netns(), close_after=True)  # mid-header
    raw_request(agent.socket, frame[:-3], stdio_and_netns(), close_after=True)  # mid-env
    with socket.socket(socket.AF_UNIX) as sock:  # connects and says nothing
        sock.connect(agent.socket)
    time.sleep(0.5)
    still_serves(agent)
    assert "truncated frame" in agent.text()


def test_a_client_that_leaves_mid_request_does_not_harm_the_agent(agent: AgentProcess) -> None:
    """The request keeps running (as the direct path's process would, its runtime gone); its
    answer then has nowhere to go, and the agent carries on."""
    read_end, write_end = os.pipe()
    fds = [read_end, 1, 2, os.open("/proc/self/ns/net", os.O_RDONLY)]
    offset = agent.size()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(agent.socket)
        frame = wire.encode_request(cni_env("VERSION"), False)
        socket.send_fds(sock, [frame], fds)
        assert wire.read_reply(sock) == (wire.ACCEPTED, 0, "")
    os.close(read_end)
    os.write(write_end, b"{}")
    os.close(write_end)  # the child reads stdin to its end, then answers
    end = time.monotonic() + 30
    while "VERSION c1/bond0: ok" not in agent.text(offset) and time.monotonic() < end:
        time.sleep(0.05)
    assert "VERSION c1/bond0: ok" in agent.text(offset)
    still_serves(agent)


def test_a_non_root_client_is_refused(agent: AgentProcess) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the unprivileged client
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(agent.socket)  # allowed by the 0600 socket? no: root's alone
        except PermissionError:
            os.write(write_end, b"EACCES")
            os._exit(0)
        os.write(write_end, b"connected")
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 100) == b"EACCES"
    os.close(read_end)
    # The mode bits are one wall; SO_PEERCRED is the other, for a socket someone loosened:
    # a world-reachable hard link to it, made 0666.
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="bondctl-agent-"))
    try:
        public.chmod(0o755)
        os.link(agent.socket, public / "s.sock")
        os.chmod(public / "s.sock", 0o666)
        out = subprocess.run(
            [sys.executable, "-c", "import os, socket, sys\n"
             "from bondctl.cni import wire\n"
             "os.setgid(65534); os.setuid(65534)\n"
             "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
             "print(wire.read_reply(s))", str(public / "s.sock")],
            capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]).stdout
    finally:
        os.chmod(agent.socket, 0o600)
        (public / "s.sock").unlink(missing_ok=True)
        public.rmdir()
    assert "permission denied" in out and "b'R'" in out, out
    assert "refused a client of uid 65534" in agent.text()
    still_serves(agent)


def test_a_request_past_its_deadline_is_killed(tmp_path: Path) -> None:
    """Its shim dies of SIGKILL, as the direct path's process killed by a runtime would."""
    agent = AgentProcess(tmp_path / "run", args=("--timeout", "1")).start()
    try:
        hang = subprocess.Popen([str(SHIM)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env={"CNI_COMMAND": "VERSION",
                                     "BONDCTL_AGENT_SOCKET": agent.socket})
        assert hang.wait(30) == -signal.SIGKILL  # stdin never closes: the child never ends
        assert hang.stdin is not None
        hang.stdin.close()
        assert "VERSION -/-: killed at its deadline" in agent.text()
        still_serves(agent)
    finally:
        assert agent.stop() == 0


def test_sigterm_finishes_requests_in_flight_then_exits(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "run").start()
    assert agent.proc is not None
    slow = subprocess.Popen([str(SHIM)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={"CNI_COMMAND": "VERSION", "BONDCTL_AGENT_SOCKET": agent.socket})
    assert slow.stdin is not None
    end = time.monotonic() + 30
    while not _holds(agent.proc.pid, slow.stdin) and time.monotonic() < end:
        time.sleep(0.02)  # until a request child holds the shim's stdin: in flight
    agent.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert agent.proc.poll() is None, "the agent left a request in flight"
    assert not os.path.exists(agent.socket), "new callers must go direct from now on"
    out, _ = slow.communicate(b'{"cniVersion": "1.0.0"}', timeout=30)
    assert slow.returncode == 0 and json.loads(out)["cniVersion"] == "1.0.0"
    assert agent.proc.wait(30) == 0
    assert "stopping: 1 request(s) in flight" in agent.text()


def _holds(pid: int, pipe: IO[bytes]) -> bool:
    """Whether a child of `pid` has `pipe`'s other end (the shim's stdin) among its fds."""
    want = f"pipe:[{os.fstat(pipe.fileno()).st_ino}]"
    for child in _children(pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{child}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{child}/fd/{fd}") == want:
                        return True
    return False


def _children(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return fh.read().split()
    except OSError:
        return []


def test_workers_are_started_restarted_and_stopped(tmp_path: Path) -> None:
    """The place issue 13's monitor goes: a worker process the agent supervises."""
    marks = tmp_path / "marks"
    code = f"""
import os, sys, time
from bondctl.cni.agent import Agent, Worker, agent_log

def work():
    with open({str(marks)!r}, "a") as fh:
        fh.write(f"{{os.getpid()}}\\n")
    if sum(1 for _ in open({str(marks)!r})) == 1:
        sys.exit(3)  # the first run dies: the agent must start another
    time.sleep(3600)

sys.exit(Agent({str(tmp_path / 'a.sock')!r}, workers=[Worker("w", work, grace=1)]).serve())
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[2])
    end = time.monotonic() + 60
    while (not marks.exists() or len(marks.read_text().split()) < 2) and time.monotonic() < end:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    pids = marks.read_text().split()
    assert len(pids) == 2, err
    assert "worker w (pid" in err and "restarting it" in err
    for pid in pids:  # stopped, and reaped by the agent
        assert not os.path.exists(f"/proc/{pid}"), pid


def test_the_zygote_has_imported_every_module_a_request_imports_late() -> None:
    """A module a request child imports is read and executed in every request (in UML, ~2 ms
    for bondctl.links alone); warm() must hold every one the CNI path imports inside a
    function."""
    import ast

    late = set()
    root = Path(__file__).resolve().parents[2] / "bondctl"
    for path in sorted((root / "cni").glob("*.py")):
        if path.stem in ("agent", "install", "runtime", "docs"):
            continue  # the agent itself, and what only the CLI runs
        package = "bondctl.cni"
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.level:
                    base = package.rsplit(".", inner.level - 1)[0]
                    late.add(f"{base}.{inner.module}" if inner.module else base)
                    late.update(f"{base}.{a.name}" for a in inner.names
                                if not inner.module and a.name != "*")
                elif isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith(
                        "bondctl"):
                    late.add(inner.module or "")
    code = ("import sys, json; from bondctl.cni import agent; agent.warm(); "
            "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded = set(json.loads(done.stdout))
    assert "bondctl.links" in late  # the scan sees what it is meant to
    assert sorted(m for m in late if m not in loaded) == []


def test_the_rehearsal_runs_to_its_end() -> None:
    """rehearse() swallows errors (a spare must get ready whatever happens): the rehearsal
    itself must not fail, or it silently warms nothing."""
    from bondctl.cni.agent import rehearsal

    rehearsal()
