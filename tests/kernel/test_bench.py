"""The benchmark suite's kernel part in its short mode, against a real bonding driver: it runs,
writes valid JSON, every bond it measured was really made (the bench reads each one back and
fails otherwise), and the process counts it reports hold for each backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import report

ROOT = Path(__file__).resolve().parents[2]


def test_short_kernel_run(tmp_path: Path) -> None:
    out = tmp_path / "kernel.json"
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    # A short pause before each command keeps the suite quick; the option must reach the run.
    done = subprocess.run([sys.executable, "-m", "bench", "--short", "--kernel-only",
                           "--settle", "0.05", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    kernel = json.loads(out.read_text())["kernel"]
    runs = kernel["runs"]
    assert kernel["latency"]["settle_s"] == 0.05

    variants = kernel["latency"]["variants"]
    for backend in ("netlink", "iproute2", "sysfs"):
        v = variants[f"{backend} (.venv/bin/bond)"]
        assert v["add"]["n"] == runs and v["del"]["n"] == runs
        assert v["add"]["median_ms"] > 0 and v["add"]["x_ip_batch"] is not None
        # Every ADD and DEL runs the IPAM plugin once, whatever the backend.
        assert v["spawns"]["add"]["programs"].get("static") == 1
        assert v["spawns"]["del"]["programs"].get("static") == 1
    netlink = variants["netlink (.venv/bin/bond)"]["spawns"]
    assert netlink["add"]["processes"] == 1 and netlink["del"]["processes"] == 1
    # dist/bond both ways, read back like every variant: direct, and through a bench agent
    for label in (report.DIRECT_DIST, report.AGENT):
        pair = variants[label]["add_del"]
        assert pair["n"] == runs and pair["x_python"] is not None, label
    assert kernel["latency"]["floor_true"]["n"] == runs
    assert kernel["latency"]["floor_ipam_add"]["n"] == kernel["latency"]["floor_ipam"]["n"] == runs
    iproute2 = variants["iproute2 (.venv/bin/bond)"]
    assert 1 <= report.ip_runs(iproute2["spawns"]["add"]) <= 2
    assert 1 <= report.ip_runs(iproute2["spawns_run_netns"]["add"]) <= 2

    parallel = kernel["parallel"]
    assert parallel["add"]["each"]["n"] == parallel["parallel"] * parallel["rounds"]
    assert parallel["add"]["per_second"] > 0

    many = kernel["many_bonds"]
    assert many["default_backend"] == "netlink"
    assert many["commands"]["bondctl list --json"]["n"] == runs
    goals = {g["id"]: g["met"] for g in report.goals({"kernel": kernel})}
    assert goals["netlink_spawns"] is True and goals["iproute2_ip"] is True

    left = (set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()) - before
    assert not left, f"the bench left namespaces behind: {sorted(left)}"
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                                      text=True, check=True).stdout)
    assert not [x["ifname"] for x in links if x["ifname"].startswith("bh")]
