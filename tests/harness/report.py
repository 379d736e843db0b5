"""Inner-run plugin: one JSON line per finished test, so the outer run can replay each result.

Lines are appended as tests finish, so a guest that dies half-way still reports what it ran.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

RESULTS_ENV = "BONDCTL_KERNEL_RESULTS"


def merge_phase(entry: dict[str, Any], report: pytest.TestReport) -> None:
    """Fold one phase (setup/call/teardown) into the test's single result."""
    entry["duration"] += report.duration
    wasxfail = getattr(report, "wasxfail", None)
    if report.failed:
        entry["outcome"] = "failed"
        text = report.longreprtext
        if report.when != "call":
            text = f"[error in {report.when}]\n{text}"
        entry["longrepr"] = f"{entry['longrepr']}\n{text}".strip("\n")
    elif report.skipped and entry["outcome"] != "failed":
        if wasxfail is not None:
            entry["outcome"], entry["reason"] = "xfailed", wasxfail
        else:
            entry["outcome"] = "skipped"
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            entry["reason"] = reason.removeprefix("Skipped: ")
    elif report.when == "call" and wasxfail is not None and entry["outcome"] == "passed":
        entry["outcome"], entry["reason"] = "xpassed", wasxfail


class ResultWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.pending.setdefault(
            report.nodeid,
            {
                "nodeid": report.nodeid,
                "outcome": "passed",
                "longrepr": "",
                "reason": "",
                "duration": 0.0,
            },
        )
        merge_phase(entry, report)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        entry = self.pending.pop(nodeid, None)
        if entry is not None:
            with self.path.open("a") as out:
                out.write(json.dumps(entry) + "\n")
                out.flush()
                # hostfs keeps writes in the guest's page cache for up to 30 s: the host
                # reads this file while the guest runs, to show each result as it comes.
                os.fsync(out.fileno())


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return results
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a dying guest
        results[entry["nodeid"]] = entry
    return results
