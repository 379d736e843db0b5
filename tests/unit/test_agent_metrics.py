"""The node agent serves the pods' bond metrics when asked to, from the image's own runtime:
deploy/entrypoint.sh passes the DaemonSet's arguments on, and the artifact carries the monitor
and prometheus_client (it carries no CLI)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "dist" / "bond"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.skipif(os.geteuid() != 0, reason="the agent serves root only")
def test_agent_from_the_image_runtime_serves_metrics_and_stops_on_sigterm(tmp_path: Path):
    assert ARTIFACT.exists(), "build it first: bash packaging/build-artifact.sh (setup.sh does)"
    port = free_port()
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "BOND_ARTIFACT": str(ARTIFACT),
           "BONDCTL_STATE_ROOT": str(tmp_path), "BONDCTL_LOG_DIR": str(tmp_path / "log")}
    proc = subprocess.Popen(
        ["sh", str(ROOT / "deploy" / "entrypoint.sh"), "agent", "--socket",
         str(tmp_path / "run" / "agent.sock"), "--metrics-address", f"127.0.0.1:{port}",
         "--state-dir", str(state)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        text = scrape(port, time.monotonic() + 60)
        assert "# TYPE bondctl_bond_health gauge" in text
        assert (tmp_path / "run" / "agent.sock").exists()  # and it still serves the plugin
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
