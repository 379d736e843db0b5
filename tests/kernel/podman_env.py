"""A private podman (CNI network backend) for end-to-end tests of the `bond` plugin.

podman is a real CNI runtime: `podman run --rm --network NET --rootfs DIR CMD` calls every
plugin of NET's conflist for ADD when the container starts and for DEL when it exits. Nothing
of the machine's podman setup is used or touched: containers.conf and storage.conf are private
(CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), state goes to a per-test directory on a tmpfs,
and the container's root is a tiny busybox tree (no image, no registry).

Settings that make podman work inside User-Mode Linux (see
/work/shared/reference/real-kernel-testing.md): cgroupfs manager and private cgroupns (no
systemd), file events (no journald), shm locks, the vfs storage driver, and CNI configs with
"ipMasq": false and no firewall/portmap plugins (the UML kernel has no iptables). --network is
always given: podman's implicit default network would need iptables.

Use in a test module (pytest finds fixtures bound to module-level names):

    from tests.kernel import podman_env
    busybox_rootfs = podman_env.busybox_rootfs
    make_podman_env = podman_env.make_podman_env

    def test_x(make_podman_env, ...):
        podman = make_podman_env(plugin_dir)      # a dir holding the `bond` under test
        podman.add_network(conflist)              # dict: {"cniVersion", "name", "plugins"}
        out = podman.run(conflist["name"], "/bin/ip", "addr")
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "ip", "ls", "cat", "sleep")
REFERENCE_PLUGINS = Path("/usr/lib/cni")
# tmpfs mounts the harness's init.sh makes inside User-Mode Linux: writes there are fast and
# vanish with the guest. Natively they are ordinary directories (each test uses its own subdir).
STATE_ROOT = Path("/var/lib/containers")
CNI_STATE_ROOT = Path("/var/lib/cni")
PODMAN_TIMEOUT = 240.0


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


class PodmanError(AssertionError):
    pass


class PodmanEnv:
    """One private podman: its config files, state dirs and CNI network config dir."""

    def __init__(self, root: Path, rootfs: Path, plugin_dirs: list[Path]) -> None:
        self.root = root
        self.rootfs = rootfs
        self.plugin_dirs = plugin_dirs
        self.net_dir = root / "net.d"
        self.ipam_dir = root / "ipam"  # host-local's dataDir for the configs written here
        self.log_dir = root / "log"  # the only place `bond` may put a logFile (made by it)
        for d in (self.net_dir, self.ipam_dir, root / "graph", root / "runroot", root / "tmp",
                  root / "libpod"):
            d.mkdir(parents=True, exist_ok=True)
        self.containers_conf = root / "containers.conf"
        self.storage_conf = root / "storage.conf"
        self.containers_conf.write_text("\n".join([
            "[containers]",
            'cgroupns = "private"',
            'apparmor_profile = ""',
            'log_driver = "k8s-file"',
            "",
            "[engine]",
            'cgroup_manager = "cgroupfs"',
            'events_logger = "file"',
            f"events_logfile_path = {toml_str(str(root / 'events.log'))}",
            'runtime = "crun"',
            'lock_type = "shm"',
            f"tmp_dir = {toml_str(str(root / 'libpod'))}",
            "",
            "[network]",
            'network_backend = "cni"',
            f"cni_plugin_dirs = {toml_list([str(d) for d in plugin_dirs])}",
            f"network_config_dir = {toml_str(str(self.net_dir))}",
            "",
        ]))
        self.storage_conf.write_text("\n".join([
            "[storage]",
            'driver = "vfs"',
            f"graphroot = {toml_str(str(root / 'graph'))}",
            f"runroot = {toml_str(str(root / 'runroot'))}",
            "",
        ]))
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(root),
            "TMPDIR": str(root / "tmp"),
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            # podman passes its environment on to CNI plugins: the node admin's setting of
            # where `bond` may write a logFile, here this podman's own log_dir.
            "BONDCTL_LOG_DIR": str(self.log_dir),
        }

    def add_network(self, conflist: dict[str, Any]) -> Path:
        """Write a conflist into the network config dir; returns its path."""
        name = conflist["name"]
        path = self.net_dir / f"{name}.conflist"
        path.write_text(json.dumps(conflist, indent=2))
        return path

    def podman(self, *args: str, check: bool = True,
               timeout: float = PODMAN_TIMEOUT) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise PodmanError(f"podman {' '.join(args)} exited {proc.returncode}\n"
                              f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def run(self, network: str, *argv: str, ifname: str | None = None,
            check: bool = True) -> str:
        """`podman run --rm` of argv in the busybox root on `network`; its stdout. ifname is
        the CNI_IFNAME podman passes (podman's default is eth0)."""
        spec = network if ifname is None else f"{network}:interface_name={ifname}"
        return self.podman("run", "--rm", "--network", spec, "--rootfs", str(self.rootfs),
                           *argv, check=check).stdout

    def close(self) -> None:
        # Removes any container a failed test left (its DEL runs now), then the state.
        self.podman("rm", "--all", "--force", check=False, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)


def make_rootfs(path: Path) -> Path:
    """A container root: static busybox with a few applets, and root in passwd/group."""
    if not BUSYBOX.is_file():
        raise PodmanError(f"{BUSYBOX} is missing: apt-get install busybox-static "
                          "(scripts/setup.sh installs it)")
    (path / "bin").mkdir(parents=True)
    (path / "etc").mkdir()
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (path / "bin" / applet).symlink_to("busybox")
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (path / "etc" / "group").write_text("root:x:0:\n")
    return path


def unique_dir(parent: Path, prefix: str) -> Path:
    path = parent / f"{prefix}-{secrets.token_hex(4)}"
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def busybox_rootfs() -> Iterator[Path]:
    """The busybox container root, shared by the session's podman runs."""
    base = unique_dir(STATE_ROOT, "bondctl-rootfs")
    yield make_rootfs(base / "rootfs")
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_podman_env(busybox_rootfs: Path) -> Iterator[Callable[..., PodmanEnv]]:
    """make_podman_env(plugin_dir, *more_dirs) -> PodmanEnv: a private podman whose CNI plugin
    path is the given dirs, then /usr/lib/cni (host-local, static, tuning, ...)."""
    made: list[PodmanEnv] = []

    def make(*plugin_dirs: Path) -> PodmanEnv:
        env = PodmanEnv(unique_dir(STATE_ROOT, "bondctl-podman"), busybox_rootfs,
                        [*plugin_dirs, REFERENCE_PLUGINS])
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


@pytest.fixture
def cni_bin_dir() -> Iterator[Path]:
    """A scratch "/opt/cni/bin" on the guest's tmpfs."""
    path = unique_dir(CNI_STATE_ROOT, "bondctl-bin")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def host_veths(peer_ns: Any, names: list[str]) -> None:
    """veth pairs with one end, named `names[i]`, DOWN in the root netns (the node's NICs for a
    bond with host links) and the other UP in peer_ns (deleting peer_ns removes both ends)."""
    init_ns_pid = "1"  # `netns PID` places a link in that process's namespace: the root one
    peer_ns.batch(f"link add {name}p up type veth peer name {name} netns {init_ns_pid}"
                  for name in names)
