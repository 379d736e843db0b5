"""The self-contained `bond` artifact (packaging/build-artifact.sh → dist/bond), installed with
bondctl.cni.install into a scratch CNI bin dir and driven by a real runtime: podman.

The artifact is built on the host, before the kernel suite starts (scripts/setup.sh runs the
build; User-Mode Linux has no network and no compiler run here): this module only checks that
dist/ is present and matches the sources, and fails saying how to build it otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bondctl.cni.install import RUNTIME_LINK, install, read_manifest
from tests.harness.netns import Netns, run_ip
from tests.kernel import podman_env
from tests.kernel.podman_env import PodmanEnv, host_veths

# Fixtures of the shared podman helper, made visible to this module.
busybox_rootfs = podman_env.busybox_rootfs
cni_bin_dir = podman_env.cni_bin_dir
make_podman_env = podman_env.make_podman_env

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
BUILD_HINT = "build it on the host first: bash packaging/build-artifact.sh (scripts/setup.sh does)"


def build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bondctl_build_artifact", REPO / "packaging" / "build_artifact.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def artifact() -> Path:
    """dist/bond, checked to be complete and built from the current sources."""
    launcher = DIST / "bond"
    if not launcher.is_file() or read_manifest((DIST / RUNTIME_LINK).resolve()) is None:
        pytest.fail(f"no artifact in {DIST}: {BUILD_HINT}", pytrace=False)
    builder = build_module()
    stamp = DIST / builder.STAMP_NAME
    if not stamp.is_file() or stamp.read_text().strip() != builder.input_digest():
        pytest.fail(f"{launcher} is older than the sources: {BUILD_HINT}", pytrace=False)
    return launcher


@pytest.fixture
def installed(artifact: Path, cni_bin_dir: Path) -> Path:
    result = install(artifact, cni_bin_dir)
    assert result.changed
    return cni_bin_dir


def cni(plugin: Path, command: str, stdin: bytes = b"", **env: str) -> dict[str, Any]:
    proc = subprocess.run([str(plugin)], input=stdin, capture_output=True, timeout=120,
                          env={"CNI_COMMAND": command, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                               **env})
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_installed_artifact_answers_version_without_any_python_env(installed: Path) -> None:
    # No PYTHON* variables, no venv on PATH: the plugin must carry everything it needs.
    reply = cni(installed / "bond", "VERSION", b'{"cniVersion": "0.4.0"}')
    assert reply["cniVersion"] == "0.4.0"
    assert "1.1.0" in reply["supportedVersions"]


def test_podman_add_and_del_with_host_links(installed: Path, make_podman_env: Any,
                                            peer_netns: Netns) -> None:
    tag = secrets.token_hex(3)
    links = [f"bh{tag}a", f"bh{tag}b"]
    host_veths(peer_netns, links)
    macs = {name: host_link(name)["address"] for name in links}
    subnet = "10.231.7.0/24"
    podman: PodmanEnv = make_podman_env(installed)
    net = f"bondart{tag}"
    podman.add_network({
        "cniVersion": "1.0.0",
        "name": net,
        "plugins": [{
            "type": "bond",
            "mode": "active-backup",
            "miimon": "100",
            "failOverMac": 1,
            "links": [{"name": name} for name in links],
            "ipam": {"type": "host-local", "subnet": subnet,
                     "dataDir": str(podman.ipam_dir)},
            "logFile": str(podman.log_dir / "bond.log"),
            "logLevel": "debug",
        }],
    })

    addr = podman.run(net, "/bin/ip", "addr", ifname="bond0")

    bond0 = section(addr, "bond0")
    assert bond0 is not None, addr
    assert "inet 10.231.7." in bond0 and "/24" in bond0, addr
    assert ",UP" in bond0.splitlines()[0], addr
    for name in links:
        slave = section(addr, name)
        assert slave is not None, f"{name} not in the container:\n{addr}"
        assert "master bond0" in slave.splitlines()[0], addr
    # ADD moved the links out of the host; DEL (on exit) brought them back, names kept.
    for name in links:
        link = host_link(name)
        assert "master" not in link, link
        assert link["address"] == macs[name], link
    assert not list((podman.ipam_dir / net).glob("10.231.7.*")), "IPAM DEL released the lease"

    bonding = podman.run(net, "/bin/cat", "/sys/class/net/bond0/bonding/mode",
                         "/sys/class/net/bond0/bonding/slaves", ifname="bond0")
    assert bonding.split() == ["active-backup", "1", *links], bonding
    assert {n for n in links if host_link(n)} == set(links)
    log = (podman.log_dir / "bond.log").read_text()
    assert " ADD " in log and " DEL " in log, log  # the logFile was taken, not refused


def host_link(name: str) -> dict[str, Any]:
    links = json.loads(run_ip("-j", "-d", "link", "show", "dev", name))
    assert links, name
    return links[0]  # type: ignore[no-any-return]


def section(ip_addr: str, ifname: str) -> str | None:
    """One interface's block of `ip addr` output (busybox's format is iproute2's)."""
    blocks: list[list[str]] = []
    for line in ip_addr.splitlines():
        if line[:1].isdigit():
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    for block in blocks:
        name = block[0].split(":", 2)[1].strip().split("@")[0]
        if name == ifname:
            return "\n".join(block)
    return None


def test_the_runtime_enters_a_pod_namespace_without_ctypes(artifact: Path, netns: Netns) -> None:
    # The bundled Python 3.11 has no os.setns: the artifact's C helper stands in, so the
    # direct path's ADD and DEL do not pay for importing ctypes and opening libc through it.
    netns.ip("link", "add", "probe0", "type", "dummy")
    runtime = (DIST / RUNTIME_LINK).resolve()
    code = (
        "import json, os, sys\n"
        "from bondctl.netlink import Rtnl, enter_netns\n"
        f"with enter_netns({str(netns.path)!r}):\n"
        "    inside = os.stat('/proc/thread-self/ns/net').st_ino\n"
        "    rtnl = Rtnl.open()\n"
        "back = os.stat('/proc/thread-self/ns/net').st_ino\n"
        "names = sorted(link.name for link in rtnl.list_links())\n"
        "print(json.dumps({'inside': inside, 'back': back, 'names': names,\n"
        "                  'ctypes': 'ctypes' in sys.modules}))\n")
    proc = subprocess.run([str(runtime / "lib" / "ld.so"), "--library-path",
                           str(runtime / "lib"), str(runtime / "bin" / "python"), "-I", "-S",
                           "-c", code], capture_output=True, text=True, timeout=120, env={})
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["inside"] == netns.path.stat().st_ino
    assert seen["back"] == Path("/proc/self/ns/net").stat().st_ino
    assert "probe0" in seen["names"]
    assert seen["ctypes"] is False
