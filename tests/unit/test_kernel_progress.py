"""The outer run reports each kernel test as its guest finishes it, not when the guest stops:
UmlRun.result() reads results.jsonl while the guest (here a real process standing in for
linux.uml: only its lifetime matters) still runs, and the proxies take turns between guests."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.harness.uml import UmlRun


def _run(tmp_path: Path) -> UmlRun:
    run = UmlRun(binary="linux.uml", rootdir=tmp_path, python="python", pytest_options=[],
                 nodeids=[], env={}, timeout=60)
    run.run_dir.mkdir(parents=True)
    return run


def _line(nodeid: str, outcome: str = "passed") -> str:
    return json.dumps({"nodeid": nodeid, "outcome": outcome, "longrepr": "", "reason": "",
                       "duration": 0.1}) + "\n"


def test_a_result_is_there_while_the_guest_still_runs(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (run.run_dir / "booted").write_text("6.1.0 1.0\n")
    results = run.run_dir / "results.jsonl"
    results.write_text(_line("t.py::a") + '{"nodeid": "t.py::b", "outc')  # b: half-written
    run._proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    run._started = time.monotonic()
    try:
        started = time.monotonic()
        assert run.result("t.py::a")["outcome"] == "passed"
        assert time.monotonic() - started < 5
        assert run._proc.poll() is None  # the guest goes on
        with results.open("a") as fh:
            fh.write('come": "failed", "longrepr": "boom", "reason": "", "duration": 0}\n')
        assert run.result("t.py::b")["longrepr"] == "boom"
    finally:
        run.kill()
    assert run.result("t.py::c") is None  # the guest is gone: no waiting for it


def test_a_guest_that_dies_ends_the_wait(tmp_path: Path) -> None:
    run = _run(tmp_path)
    run._proc = subprocess.Popen(["sleep", "0.3"], start_new_session=True)
    run._started = time.monotonic()
    assert run.result("t.py::never") is None
    assert run.error is not None and "did not boot" in run.error
