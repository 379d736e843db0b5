"""Entry points read straight from *.dist-info/entry_points.txt on sys.path.

importlib.metadata costs about 25 ms to import on a pod's start-up path; reading the few
entry_points.txt files costs well under one.
"""

from __future__ import annotations

import os
import sys

from .record import Record

# Where backends register, bondctl's own included. Named here, the one module every reader of
# entry points (the registry, the pluggy hookspecs, completion, the pip runtime) already imports.
BACKENDS_GROUP = "bondctl.backends"


class EntryPoint(Record):
    name: str
    value: str  # "module" or "module:attr"
    dist: str
    version: str


def _dist_of(entry: str, dirname: str) -> tuple[str, str]:
    stem = dirname.rsplit(".", 1)[0]
    name, _, version = stem.partition("-")
    if not version:  # an egg-info left by a build: the version is only in PKG-INFO
        try:
            with open(os.path.join(entry, dirname, "PKG-INFO"), encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("Version:"):
                        version = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
    return name, version


def entry_points(group: str, path: list[str] | None = None) -> list[EntryPoint]:
    """Entry points of `group` from every distribution, first one on sys.path winning."""
    found: dict[str, EntryPoint] = {}
    seen_dists: set[str] = set()
    for entry in path if path is not None else sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for dirname in names:
            if not dirname.endswith((".dist-info", ".egg-info")):
                continue
            dist, version = _dist_of(entry, dirname)
            key = dist.lower().replace("-", "_")
            if key in seen_dists:
                continue
            seen_dists.add(key)
            try:
                with open(os.path.join(entry, dirname, "entry_points.txt"),
                          encoding="utf-8") as fh:
                    text = fh.read()
            except OSError:
                continue
            for name, value in _section(text, group):
                found.setdefault(name, EntryPoint(name, value, dist, version))
    return list(found.values())


def _section(text: str, group: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            inside = line[1:-1].strip() == group
            continue
        if inside and "=" in line:
            name, _, value = line.partition("=")
            out.append((name.strip(), value.split("[")[0].strip()))
    return out
