"""Reading `python -X importtime` output: per-module self and cumulative microseconds."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

_PREFIX = "import time:"


class Entry(NamedTuple):
    name: str
    self_us: int
    cumulative_us: int
    depth: int  # 0: imported by the program itself, 1: by a depth-0 module, ...


def parse(text: str) -> list[Entry]:
    entries = []
    for line in text.splitlines():
        if not line.startswith(_PREFIX):
            continue
        fields = line[len(_PREFIX):].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        raw = fields[2].rstrip()
        name = raw.lstrip()
        depth = (len(raw) - len(name) - 1) // 2
        entries.append(Entry(name, int(fields[0]), int(fields[1]), max(depth, 0)))
    return entries


def cumulative_ms(entries: Iterable[Entry], module: str) -> float | None:
    for entry in entries:
        if entry.name == module:
            return entry.cumulative_us / 1000.0
    return None


def top(runs: Sequence[Sequence[Entry]], *, key: str, count: int = 12,
        max_depth: int | None = None, exclude: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The modules with the largest median `key` ("self_us" or "cumulative_us") over runs;
    a module missing from a run counts 0 there (it was already imported, or not at all)."""
    names: dict[str, list[float]] = {}
    depths: dict[str, int] = {}
    skip = set(exclude)
    for entries in runs:
        for entry in entries:
            if entry.name in skip:
                continue
            if max_depth is not None and entry.depth > max_depth:
                continue
            names.setdefault(entry.name, [])
            depths[entry.name] = entry.depth
    for entries in runs:
        seen = {e.name: e for e in entries}
        for name, values in names.items():
            e = seen.get(name)
            values.append(getattr(e, key) if e is not None else 0)
    ranked = sorted(names.items(), key=lambda kv: -statistics.median(kv[1]))[:count]
    return [{"module": name, "median_ms": round(statistics.median(v) / 1000.0, 2),
             "depth": depths[name]} for name, v in ranked]
