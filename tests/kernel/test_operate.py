"""Operating a node, in the real kernel: checkpoint rollback, and bonds persisted in other
tools' formats brought back up by those tools.

Every check reads the kernel back with `ip -j -d` on its own; bondctl's word is not evidence.
One module, few tests: they share the suite's User-Mode Linux boot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

BOND_FILE = """
- name: bond0
  mode: 802.3ad
  options: {{miimon: 100, lacp_rate: fast, xmit_hash_policy: layer3+4, min_links: 1}}
  slaves: [{a}, {b}]
  addresses: [{addresses}]
  routes: [{routes}]
  vlans: [{vlans}]
"""
FULL = {"addresses": "10.71.0.1/24, 2001:db8:71::1/64",
        "routes": "{to: 10.73.0.0/16, via: 10.71.0.254, metric: 100}",
        "vlans": "{id: 71, addresses: [10.72.0.1/24]}"}


def bondctl(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("bondctl")
    proc = subprocess.run([str(exe if exe.exists() else shutil.which("bondctl")), *args],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1",
                               "COLUMNS": "120", **env})
    if check:
        assert proc.returncode == 0, f"bondctl {' '.join(args)}: {proc.stderr}"
    return proc


def addresses_of(ns, name):
    return {f"{a['local']}/{a['prefixlen']}" for link in ns.ip_json("address", "show", "dev", name)
            for a in link["addr_info"] if a.get("scope") != "link"}


def bond_data(ns):
    return ns.link("bond0")["linkinfo"]["info_data"]


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


@pytest.mark.uml_weight(15)  # two rollback windows: ~60 s in UML, a typical test ~4 s
def test_an_unconfirmed_change_rolls_back_and_a_committed_one_stays(netns, make_links,
                                                                    tmp_path):
    a, b = make_links(netns, 2)
    env = {"BONDCTL_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}
    cli = ("--netns", netns.name)
    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    before.write_text(BOND_FILE.format(a=a, b=b, **FULL))
    after.write_text(BOND_FILE.format(a=a, b=b, addresses="", routes="", vlans="")
                     .replace("miimon: 100", "miimon: 200"))
    bondctl(*cli, "apply", "-f", str(before), env=env)

    started = time.monotonic()  # the countdown starts inside apply, so no earlier than this
    out = bondctl(*cli, "apply", "-f", str(after), "--rollback-after", "5", env=env)
    assert "rolls back in 5 s" in out.stderr
    assert addresses_of(netns, "bond0") == set() and netns.link("bond0.71") is None
    assert bond_data(netns)["miimon"] == 200
    assert wait_for(lambda: addresses_of(netns, "bond0") == {"10.71.0.1/24",
                                                           "2001:db8:71::1/64"}, 40)
    assert time.monotonic() - started >= 5  # not before its time
    vlan = netns.link("bond0.71")
    assert vlan["linkinfo"]["info_data"]["id"] == 71 and vlan["link"] == "bond0"
    assert addresses_of(netns, "bond0.71") == {"10.72.0.1/24"}
    data = bond_data(netns)
    assert (data["miimon"], data["ad_lacp_rate"], data["xmit_hash_policy"]) == (
        100, "fast", "layer3+4")
    route = json.loads(netns.ip("-j", "route", "show", "10.73.0.0/16"))
    assert [(r["gateway"], r["dev"], r.get("metric")) for r in route] == [
        ("10.71.0.254", "bond0", 100)]
    assert bondctl(*cli, "check", "-f", str(before), env=env).returncode == 0

    bondctl(*cli, "apply", "-f", str(after), "--rollback-after", "5", env=env)
    assert "committed" in bondctl("commit", env=env).stdout
    time.sleep(7)
    assert addresses_of(netns, "bond0") == set() and netns.link("bond0.71") is None
    assert bond_data(netns)["miimon"] == 200
    busy = bondctl("commit", env=env, check=False)
    assert busy.returncode == 3 and "was committed" in busy.stderr
    assert os.listdir(tmp_path / "checkpoints")  # last.json says what became of it


# ifupdown2 writes its state under /var/tmp/network, logs under /var/log/ifupdown2 and locks
# /run/network/.lock: on the host's filesystem, in User-Mode Linux. `ip netns exec` gives the
# command its own mount namespace (slave to the host's): tmpfs mounts made inside stay there.
PRIVATE_RUN = """
import os, subprocess, sys
for path in ("/var/tmp", "/var/log", "/run/network"):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", path], check=True)
os.execvp(sys.argv[1], sys.argv[1:])
"""


def exported_then_deleted(netns, make_links, tmp_path, fmt):
    """The full bond applied, exported in `fmt` into a folder, then deleted (check says drift):
    what a real tool must bring back from the files alone."""
    a, b = make_links(netns, 2)
    env = {"BONDCTL_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}
    cli = ("--netns", netns.name)
    original = tmp_path / "bond.yaml"
    original.write_text(BOND_FILE.format(a=a, b=b, **FULL))
    bondctl(*cli, "apply", "-f", str(original), env=env)
    out = tmp_path / fmt
    exported = bondctl(*cli, "export", "bond0", "--format", fmt, "--out", str(out), env=env)
    assert "warning" not in exported.stderr  # this bond has nothing the format cannot carry
    bondctl(*cli, "delete", "bond0", env=env)
    assert netns.link("bond0") is None and netns.link("bond0.71") is None
    assert bondctl(*cli, "check", "-f", str(original), env=env, check=False).returncode == 6
    return cli, env, original, out, (a, b)


@pytest.mark.uml_weight(4)  # ~16 s in UML
def test_ifupdown2_brings_an_exported_bond_back_with_no_drift(netns, make_links, tmp_path):
    ifup = shutil.which("ifup", path="/usr/sbin:/sbin")
    assert ifup, "ifupdown2 is not installed (scripts/setup.sh installs it)"
    cli, env, original, out, (a, b) = exported_then_deleted(netns, make_links, tmp_path,
                                                            "ifupdown2")

    proc = netns.run(sys.executable, "-c", PRIVATE_RUN, ifup, "-i", str(out / "interfaces"),
                     "-a", check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    data = bond_data(netns)
    assert (data["mode"], data["ad_lacp_rate"], data["xmit_hash_policy"], data["miimon"]) == (
        "802.3ad", "fast", "layer3+4", 100)
    assert addresses_of(netns, "bond0") == {"10.71.0.1/24", "2001:db8:71::1/64"}
    assert addresses_of(netns, "bond0.71") == {"10.72.0.1/24"}
    assert {netns.link(s).get("master") for s in (a, b)} == {"bond0"}
    check = bondctl(*cli, "check", "-f", str(original), env=env, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


# systemd-networkd outside systemd, in the test's namespace (`ip netns exec` gives it its own
# mount namespace). A tmpfs over /run holds its state (/run/systemd/netif) and our files
# (/run/systemd/network) and hides any system bus, which it then does without; empty tmpfs
# over the other network dirs keep the host's own configuration out. It drops to
# user systemd-network before reading the files, so they are copied out of the 0700 tmp_path.
# Read-only /sys tells it there is no udev (systemd's udev_available()): with /sys writable it
# waits for udev to initialise each link, and nothing comes up. Its defaults leave the kernel's
# own routes and rules alone (ManageForeignRoutes= needs no networkd.conf here).
PRIVATE_NETWORKD = """
import os, shutil, subprocess, sys
config, networkd = sys.argv[1], sys.argv[2]
def mount(*args):
    subprocess.run(["mount", *args], check=True)
mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
os.makedirs("/run/systemd/network")
for name in os.listdir(config):
    shutil.copy(os.path.join(config, name), "/run/systemd/network")
for path in ("/etc/systemd/network", "/usr/local/lib/systemd/network",
             "/usr/lib/systemd/network", "/lib/systemd/network"):
    if os.path.isdir(path):
        mount("-t", "tmpfs", "tmpfs", path)
mount("-o", "remount,bind,ro", "/sys")
os.execv(networkd, [networkd])
"""
NETWORKD = Path("/lib/systemd/systemd-networkd")


@pytest.mark.uml_weight(2)  # ~5 s in UML
def test_networkd_brings_an_exported_bond_back_with_no_drift(netns, make_links, tmp_path):
    assert NETWORKD.exists(), "systemd-networkd is not installed (Debian's systemd package)"
    cli, env, original, out, (a, b) = exported_then_deleted(netns, make_links, tmp_path,
                                                            "networkd")

    def recreated() -> bool:
        vlan, route = netns.link("bond0.71"), netns.ip("route", "show", "10.73.0.0/16")
        return (vlan is not None and addresses_of(netns, "bond0.71") == {"10.72.0.1/24"}
                and addresses_of(netns, "bond0") == {"10.71.0.1/24", "2001:db8:71::1/64"}
                and {netns.link(s).get("master") for s in (a, b)} == {"bond0"}
                and "via 10.71.0.254" in route)

    log = tmp_path / "networkd.log"
    with log.open("w") as sink:
        networkd = subprocess.Popen(
            ["ip", "netns", "exec", netns.name, sys.executable, "-c", PRIVATE_NETWORKD,
             str(out), str(NETWORKD)], stdout=sink, stderr=subprocess.STDOUT,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_TARGET": "console",
                 "SYSTEMD_LOG_LEVEL": "debug"})
        try:
            done = wait_for(lambda: networkd.poll() is not None or recreated(), 30)
            assert networkd.poll() is None, f"networkd exited: {log.read_text()[-3000:]}"
            assert done, f"networkd did not recreate the bond: {log.read_text()[-3000:]}"
        finally:
            networkd.terminate()
            networkd.wait(timeout=10)
    data = bond_data(netns)
    assert (data["mode"], data["ad_lacp_rate"], data["xmit_hash_policy"], data["miimon"],
            data["min_links"]) == ("802.3ad", "fast", "layer3+4", 100, 1)
    vlan = netns.link("bond0.71")
    assert vlan["linkinfo"]["info_data"]["id"] == 71 and vlan["link"] == "bond0"
    route = json.loads(netns.ip("-j", "route", "show", "10.73.0.0/16"))
    assert [(r["gateway"], r["dev"], r.get("metric")) for r in route] == [
        ("10.71.0.254", "bond0", 100)]
    check = bondctl(*cli, "check", "-f", str(original), env=env, check=False)
    assert check.returncode == 0, check.stdout + check.stderr + log.read_text()[-3000:]
