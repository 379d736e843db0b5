"""Figures for docs/reliability.md, written by the tests as they run.

Every case appends one JSON line (category, case, outcome, facts) to SUMMARY_FILE; both the
outer pytest (unit tests) and the inner one in User-Mode Linux (same path: hostfs) append to
it. `python -m tests.reliability.summary` folds the latest line of each case into tables.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

SUMMARY_ENV = "BONDCTL_RELIABILITY_SUMMARY"
SUMMARY_FILE = Path(os.environ.get(
    SUMMARY_ENV, Path(__file__).resolve().parents[2] / "build" / "reliability" / "summary.jsonl"))


def record(category: str, case: str, outcome: str, **facts: Any) -> None:
    """One finished case; a later line for the same (category, case) replaces it."""
    entry = {"category": category, "case": case, "outcome": outcome, "at": time.time(), **facts}
    SUMMARY_FILE.parent.mkdir(parents=True, exist_ok=True)
    with SUMMARY_FILE.open("a") as out:
        out.write(json.dumps(entry, sort_keys=True, default=str) + "\n")


@pytest.fixture
def summary(request: pytest.FixtureRequest) -> Any:
    """A dict a test fills with its figures; recorded after the test under the module's
    CATEGORY, as passed or failed (a failed call phase is counted before teardown runs)."""
    facts: dict[str, Any] = {}
    failed_before = request.session.testsfailed
    started = time.monotonic()
    yield facts
    outcome = "failed" if request.session.testsfailed > failed_before else "passed"
    facts.setdefault("seconds", round(time.monotonic() - started, 1))
    record(request.module.CATEGORY, request.node.name, outcome, **facts)


def load(path: Path = SUMMARY_FILE) -> dict[tuple[str, str], dict[str, Any]]:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    if not path.exists():
        return latest
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a dying guest
        latest[(entry["category"], entry["case"])] = entry
    return latest


def main() -> int:
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (category, _), entry in sorted(load().items()):
        by_category[category].append(entry)
    for category, entries in by_category.items():
        outcomes: dict[str, int] = defaultdict(int)
        for entry in entries:
            outcomes[entry["outcome"]] += 1
        tally = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        print(f"\n## {category}: {len(entries)} cases ({tally})")
        for entry in entries:
            facts = {k: v for k, v in entry.items() if k not in ("category", "case", "at")}
            print(f"- {entry['case']}: {json.dumps(facts, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
