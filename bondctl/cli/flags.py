"""Command-line flags made from the option catalogue: one `--opt-name` per bonding option,
with the catalogue's text and allowed values as help. No option is spelled out here.

Values stay strings on the way in: BondSpec.build (the catalogue's parsers) validates them, so
a bad value gets the same message from every entry point.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any

import typer

from bondctl.errors import ValidationError
from bondctl.options import ALL_MODES, MODE, OPTIONS, SETTINGS, Option, Value

_METAVARS = {"int": "INT", "flag": "0|1", "ifname": "IF", "mac": "MAC",
             "ipv4list": "IP[,IP]", "ipv6list": "IP6[,IP6]"}
PANEL = "Bond options (from the catalogue)"


def flag_name(opt: Option) -> str:
    return "--" + opt.name.replace("_", "-")


def metavar(opt: Option) -> str:
    if opt.kind == "enum":
        return "|".join(opt.choices)
    return _METAVARS[opt.kind]


def help_text(opt: Option) -> str:
    parts = [opt.doc, f"Allowed: {opt.allowed()}."]
    if opt.default not in ("", ()):
        parts.append(f"Kernel default: {opt.render(opt.default)}.")
    if opt.modes != ALL_MODES:
        parts.append(f"Modes: {opt.mode_names()}.")
    elif opt.effective != ALL_MODES:
        parts.append(f"Takes effect in: {opt.mode_names(opt.effective)}.")
    if opt.netlink_only:
        parts.append("Netlink only (no sysfs file).")
    if opt.min_kernel != (0, 0):
        parts.append(f"Linux {opt.min_kernel[0]}.{opt.min_kernel[1]}+.")
    return " ".join(parts)


def mode_help() -> str:
    return f"{MODE.doc} Allowed: {MODE.allowed()}."


def catalogue_parameters() -> list[inspect.Parameter]:
    """Keyword-only parameters for a typer command, one per settable bond option."""
    params = []
    for opt in SETTINGS.values():
        info = typer.Option(flag_name(opt), help=help_text(opt), metavar=metavar(opt),
                            rich_help_panel=PANEL, show_default=False)
        many = opt.kind in ("ipv4list", "ipv6list")  # repeatable as well as comma-separated
        kind: Any = list[str] | None if many else str | None
        params.append(inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=None, annotation=Annotated[kind, info]))
    return params


def with_catalogue_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give `func(**kwargs)` the catalogue's flags after its own declared parameters.

    typer reads the signature: setting __signature__ (and __annotations__ for get_type_hints)
    is the documented way to shape a command at run time.
    """
    own = list(inspect.signature(func, eval_str=True).parameters.values())
    own = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params = own + catalogue_parameters()
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in params}
    return func


def collect(flags: Mapping[str, Any], pairs: Iterable[str]) -> dict[str, object]:
    """Options from the catalogue flags and from KEY=VALUE pairs, as raw values by key."""
    raw: dict[str, object] = {}
    for name, value in flags.items():
        if name not in OPTIONS or value is None:
            continue
        raw[name] = ",".join(value) if isinstance(value, list) else value
    for key, value in parse_pairs(pairs).items():
        if key in raw or key.replace("-", "_") in raw:
            raise ValidationError(f"option {key} is given twice")
        raw[key] = value
    return raw


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"expected KEY=VALUE, got {pair!r}")
        key = key.strip()
        if key in out:
            raise ValidationError(f"option {key} is given twice")
        out[key] = value
    return out


def render_value(value: Value) -> str:
    if isinstance(value, tuple):
        return ",".join(value) if value else "-"
    if value == "":
        return "-"
    return str(value)
