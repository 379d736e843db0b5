"""Summaries of timing samples, and the round-robin loop that collects them fairly."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """Milliseconds: median and the spread around it (p10/p90, quartiles), plus p95."""
    ms = [s * 1000.0 for s in samples]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p10_ms": round(percentile(ms, 10), 2),
        "p25_ms": round(percentile(ms, 25), 2),
        "p75_ms": round(percentile(ms, 75), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
    }


def round_robin(runs: int, jobs: Mapping[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run every job once per round, in the same order (ABCABC...), `runs` rounds: a burst of
    load on a shared machine then hits every job alike, and the medians stay comparable."""
    times: dict[str, list[float]] = {label: [] for label in jobs}
    for _ in range(runs):
        for label, job in jobs.items():
            times[label].append(job())
    return times


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None
