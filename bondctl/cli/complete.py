"""Shell completion (typer's autocompletion callbacks): modes and option keys from the catalogue,
bond, link and namespace names from the kernel.

Called on every Tab press, so each is cheap and never fails: a name that cannot be read is
simply not offered. Links are read with one `ip -j link show` (in the namespace given by
--netns or BONDCTL_NETNS), namespaces from /run/netns; nothing heavier is imported.
"""

from __future__ import annotations

import os
from typing import Any

from bondctl.options import MODE, MODES, OPTIONS, SETTINGS

NETNS_DIR = "/run/netns"


def modes(incomplete: str) -> list[tuple[str, str]]:
    return [(m, f"mode {n}") for n, m in enumerate(MODES) if m.startswith(incomplete)]


def option_pairs(incomplete: str) -> list[tuple[str, str]] | list[str]:
    """KEY= for every option, then KEY=VALUE for the values of an enum or flag."""
    key, sep, value = incomplete.partition("=")
    if not sep:
        return [(f"{name}=", opt.doc) for name, opt in SETTINGS.items()
                if name.startswith(key.replace("-", "_"))]
    opt = OPTIONS.get(key.replace("-", "_"))
    if opt is None or opt is MODE:
        return []
    values = opt.choices if opt.kind == "enum" else ("0", "1") if opt.kind == "flag" else ()
    return [f"{key}={v}" for v in values if v.startswith(value)]


def set_pairs(incomplete: str) -> list[tuple[str, str]] | list[str]:
    """Like option_pairs, with mode= too: `set` can change the mode."""
    key = f"{MODE.name}="
    if incomplete.startswith(key):
        return [f"{key}{m}" for m in MODES if m.startswith(incomplete[len(key):])]
    extra = [(key, MODE.doc)] if MODE.name.startswith(incomplete) else []
    return extra + option_pairs(incomplete)  # type: ignore[operator]


def namespaces(incomplete: str) -> list[str]:
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except OSError:
        return []
    return [n for n in names if n.startswith(incomplete)]


def bonds(ctx: Any, incomplete: str) -> list[str]:
    return [link["ifname"] for link in _links(ctx)
            if _kind(link) == "bond" and link["ifname"].startswith(incomplete)]


def slave_candidates(ctx: Any, incomplete: str) -> list[str]:
    """Links that could join a bond: not a bond, not loopback, not enslaved already."""
    return [link["ifname"] for link in _links(ctx)
            if _kind(link) != "bond" and "LOOPBACK" not in link.get("flags", ())
            and not link.get("master") and link["ifname"].startswith(incomplete)]


def slaves(ctx: Any, incomplete: str) -> list[str]:
    """The slaves of the bond named on the command line so far."""
    bond = (ctx.params or {}).get("name") or _first_argument(ctx)
    return [link["ifname"] for link in _links(ctx)
            if bond and link.get("master") == bond and link["ifname"].startswith(incomplete)]


def _first_argument(ctx: Any) -> str | None:
    """The command's first positional word, from the shell's own variables: while an
    option's value is being completed, click has not parsed the arguments before it (and
    typer hands the callback no words)."""
    import shlex

    raw = os.environ.get("COMP_WORDS") or os.environ.get("_TYPER_COMPLETE_ARGS") or ""
    try:
        words = shlex.split(raw)
    except ValueError:
        return None
    if ctx.info_name not in words:
        return None
    rest = words[words.index(ctx.info_name) + 1:]
    for index, word in enumerate(rest):
        if not word.startswith("-") and not (index and rest[index - 1] in ("--to",)):
            return word
    return None


def _kind(link: dict[str, Any]) -> str:
    return str((link.get("linkinfo") or {}).get("info_kind", ""))


def _netns(ctx: Any) -> str | None:
    while ctx is not None:
        value = (getattr(ctx, "params", None) or {}).get("netns")
        if value:
            return str(value)
        ctx = getattr(ctx, "parent", None)
    return os.environ.get("BONDCTL_NETNS") or None


def backends(incomplete: str) -> list[str]:
    from bondctl.entrypoints import BACKENDS_GROUP, entry_points

    return sorted(ep.name for ep in entry_points(BACKENDS_GROUP)
                  if ep.name.startswith(incomplete))


def _links(ctx: Any) -> list[dict[str, Any]]:
    import json  # only on a Tab press: `bondctl --help` stays light
    import subprocess

    netns = _netns(ctx)
    argv = ["ip", "-d", "-j"]
    if netns and "/" in netns:
        argv = ["nsenter", f"--net={netns}", *argv]
    elif netns:
        argv += ["-n", netns]
    try:
        done = subprocess.run([*argv, "link", "show"], capture_output=True, text=True,
                              timeout=2, check=False)
        found = json.loads(done.stdout) if done.returncode == 0 else []
    except (OSError, ValueError, subprocess.SubprocessError):
        return []
    return [link for link in found if isinstance(link, dict) and "ifname" in link]
