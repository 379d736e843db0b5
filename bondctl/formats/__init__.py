"""Bonds in other tools' files: systemd-networkd, netplan, nmstate, NetworkManager keyfiles
and ifupdown2's interfaces(5), written (`bondctl export`) and read (`bondctl import`).

Option names and which tool can say what come from the catalogue (Option.networkd, .netplan,
.ifupdown2, .nm, .nmstate, .unit; SlaveOption.nm_port); a format module only knows its file
syntax. Whatever a format cannot express is named in a warning, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ..document import Bond
from ..errors import ValidationError
from ..options import OPTIONS, SLAVE_OPTIONS, Option, Value

FORMATS = ("networkd", "netplan", "nmstate", "nm-keyfile", "ifupdown2")


class Files(NamedTuple):
    """What an export produced: file name -> text, and what it could not express."""

    files: dict[str, str]
    warnings: list[str]


class Parsed(NamedTuple):
    bonds: list[Bond]
    warnings: list[str]


def module(fmt: str) -> object:
    import importlib

    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return importlib.import_module(f"bondctl.formats.{fmt.replace('-', '')}")


def export(fmt: str, bonds: list[Bond]) -> Files:
    return module(fmt).export(bonds)  # type: ignore[attr-defined,no-any-return]


def parse(fmt: str, files: dict[str, str]) -> Parsed:
    return module(fmt).parse(files)  # type: ignore[attr-defined,no-any-return]


def expressible(bond: Bond, fmt: str, can: Callable[[Option], bool],
                can_slave: Callable[[str], bool] = lambda name: False) -> tuple[
                    dict[str, Value], list[str]]:
    """The bond's options `fmt` can carry, and a warning for each one it cannot."""
    kept: dict[str, Value] = {}
    warnings: list[str] = []
    for key, value in bond.spec.options.items():
        if can(OPTIONS[key]):
            kept[key] = value
        else:
            warnings.append(f"{fmt}: {bond.spec.name}: option {key}={show(value)} cannot be "
                            "expressed; left out")
    for slave in bond.spec.slaves:
        for key, number in slave.options.items():
            if not can_slave(key):
                warnings.append(f"{fmt}: {bond.spec.name}: slave option {slave.name} "
                                f"{key}={number} cannot be expressed; left out")
    return kept, warnings


def show(value: Value) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


def by_key(attr: str) -> dict[str, Option]:
    """Catalogue options by their spelling in one format (Option.networkd, .netplan)."""
    return {getattr(o, attr): o for o in OPTIONS.values() if getattr(o, attr)}


def slave_by_nm() -> dict[str, str]:
    return {o.nm_port: o.name for o in SLAVE_OPTIONS.values() if o.nm_port}


_DURATION = re.compile(r"^\s*(\d+)\s*(us|usec|ms|msec|s|sec|min|)\s*$")
_FACTOR_MS = {"us": 0.001, "usec": 0.001, "ms": 1, "msec": 1, "s": 1000, "sec": 1000,
              "min": 60000}


def duration(value: Value, unit: str) -> str:
    """A catalogue value in `unit` as a time span with its suffix: "100ms", "1s"."""
    return f"{value}{unit}"


def parse_duration(text: str, unit: str, default_suffix: str) -> int:
    """A time span ("100ms", "1s", or a bare number in `default_suffix`) in `unit`."""
    found = _DURATION.match(str(text))
    if not found:
        raise ValidationError(f"invalid time span {text!r}")
    ms = int(found.group(1)) * _FACTOR_MS[found.group(2) or default_suffix]
    return round(ms / _FACTOR_MS[unit])


def words(flag: Value, yes: str = "yes", no: str = "no") -> str:
    return yes if flag else no


def truth(text: object) -> int:
    if isinstance(text, bool):
        return int(text)
    value = str(text).strip().lower()
    if value in ("1", "yes", "true", "on", "y"):
        return 1
    if value in ("0", "no", "false", "off", "n"):
        return 0
    raise ValidationError(f"invalid boolean {text!r}")


def family_split(addresses: Iterable[str]) -> tuple[list[str], list[str]]:
    v4 = [a for a in addresses if ":" not in a]
    return v4, [a for a in addresses if ":" in a]
