"""`bondctl sandbox --uml -- CMD`: the command runs inside User-Mode Linux, and its stdout,
stderr and exit status come back as its own (stdin too, when it is not a terminal). One boot,
from the host: this is the path a bondless machine takes (the kernel suite runs the same
command natively, as docs/cli.md's example)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bondctl.cli import uml

BONDCTL = Path(sys.executable).with_name("bondctl")

# Every module the guest is meant to have (a VLAN of `apply` needs 8021q, and the kernel
# cannot load it on demand there), and no uevent helper, as on a node.
LOADED = " && ".join([*(f"test -e /sys/module/{m}" for m in uml.GUEST_MODULES),
                      'test -z "$(cat /proc/sys/kernel/hotplug)"'])
SCRIPT = f"""
read line
printf 'stdin said: %s\\n' "$line"
grep -c 'User Mode Linux' /proc/cpuinfo
echo 'to stderr' >&2
bondctl list --json
{LOADED} && echo modules-loaded
exit 3
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as bondctl itself does")
def test_sandbox_runs_a_command_in_uml_and_hands_back_its_streams_and_status() -> None:
    if not uml.availability().ok:
        pytest.fail(f"User-Mode Linux is not usable here: {uml.availability().reason}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BONDCTL_")}
    done = subprocess.run([str(BONDCTL), "sandbox", "--uml", "--", "sh", "-c", SCRIPT],
                          input=b"hello sandbox\n", capture_output=True, timeout=300, env=env,
                          cwd="/", check=False)
    assert done.returncode == 3, done.stderr
    out = done.stdout.decode()
    assert b"\r" not in done.stdout  # a pipe gets the bytes, not a terminal's \r\n
    lines = out.splitlines()
    assert lines[0] == "stdin said: hello sandbox"
    assert int(lines[1]) >= 1  # it ran in the guest
    assert lines[-1] == "modules-loaded"
    assert json.loads("\n".join(lines[2:-1])) == []  # a fresh kernel: no bonds
    assert done.stderr.decode() == "to stderr\n"
