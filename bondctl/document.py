"""One bond of a desired-state file, everything it carries, and the file's own mapping form.

The same mapping is what `apply`/`diff`/`check` read, what `import` prints, what `export`
and the checkpoint start from: one parser and one writer for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from . import ipconfig
from .errors import ValidationError
from .ipconfig import IpConfig
from .model import BondSpec, BondState

KEYS = ("name", "mode", "options", "slaves", "mtu", "mac", "netns", "up", *ipconfig.KEYS)


class Bond(NamedTuple):
    spec: BondSpec
    netns: str | None = None
    ip: IpConfig = ipconfig.NOTHING


def from_mapping(item: object, index: int = 0) -> Bond:
    """One bond of a file, validated, or a ValidationError naming what is wrong."""
    if not isinstance(item, Mapping):
        raise ValidationError(f"bond #{index + 1}: expected a mapping with name, mode, ...")
    unknown = sorted(map(str, set(item) - set(KEYS)))
    if unknown:
        raise ValidationError(f"bond #{index + 1}: unknown key(s) {', '.join(unknown)}; "
                              f"known: {', '.join(KEYS)}")
    for key in ("name", "mode"):
        if key not in item:
            raise ValidationError(f"bond #{index + 1}: {key} is missing")
    options = item.get("options") or {}
    if not isinstance(options, Mapping):
        raise ValidationError(f"bond {item['name']}: options must be a mapping")
    names, slave_options = _slaves(item.get("slaves") or [], str(item["name"]))
    spec = BondSpec.build(item["name"], item["mode"], dict(options), names,
                          mtu=item.get("mtu"), mac=item.get("mac"),
                          slave_options=slave_options, up=bool(item.get("up", True)))
    netns = item.get("netns")
    if netns is not None and not isinstance(netns, str):
        raise ValidationError(f"bond {spec.name}: netns must be a name or a path")
    ip = ipconfig.build(spec.name, item)
    for vlan in ip.vlans or ():
        if vlan.name in spec.slave_names or vlan.name == spec.name:
            raise ValidationError(f"bond {spec.name}: VLAN {vlan.name} has the name of a link "
                                  "of the bond")
    return Bond(spec, netns, ip)


def _slaves(raw: object, bond: str) -> tuple[list[str], dict[str, dict[str, object]]]:
    if not isinstance(raw, list):
        raise ValidationError(f"bond {bond}: slaves must be a list")
    names: list[str] = []
    options: dict[str, dict[str, object]] = {}
    for slave in raw:
        if isinstance(slave, Mapping):
            if "name" not in slave:
                raise ValidationError(f"bond {bond}: a slave without a name")
            name = str(slave["name"])
            extra = {k: v for k, v in slave.items() if k != "name"}
            if extra:
                options[name] = extra
            names.append(name)
        else:
            names.append(slave if isinstance(slave, str) else str(slave))
    return names, options


def to_mapping(bond: Bond) -> dict[str, Any]:
    """The file form of a bond: only what it asks for, in the order a person reads it."""
    spec = bond.spec
    out: dict[str, Any] = {"name": spec.name, "mode": spec.mode}
    if bond.netns:
        out["netns"] = bond.netns
    if spec.options:
        out["options"] = {k: list(v) if isinstance(v, tuple) else v
                          for k, v in spec.options.items()}
    out["slaves"] = [{"name": s.name, **s.options} if s.options else s.name
                     for s in spec.slaves]
    for key in ("mtu", "mac"):
        if getattr(spec, key) is not None:
            out[key] = getattr(spec, key)
    if not spec.up:
        out["up"] = False
    out.update(bond.ip.to_dict())
    return out


def dump(bonds: list[Bond]) -> str:
    """The desired-state file for these bonds, as YAML (JSON when PyYAML is missing)."""
    data = [to_mapping(b) for b in bonds]
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        import json

        return json.dumps(data, indent=2) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100))


def from_state(state: BondState, ip: IpConfig | None, netns: str | None = None,
               *, defaults: bool = True) -> Bond:
    """A bond asking for exactly what runs: every option the reader saw that its mode takes
    (without those at the kernel default unless `defaults`), the slaves with their options,
    MTU, MAC, up, and everything it carries."""
    from .options import OPTIONS, SLAVE_OPTIONS, idle, mode_number

    number = mode_number(state.mode)
    options = {k: v for k, v in state.options.items()
               if number in OPTIONS[k].modes and not OPTIONS[k].transient
               and (defaults or v != OPTIONS[k].parse(OPTIONS[k].default))}
    for name in idle(options):
        # The kernel keeps targets it cannot use without the ARP monitor; asking for them
        # back would be refused as a combination.
        del options[name]
    slave_options = {}
    for s in state.slaves:
        opts: dict[str, object] = {
            k: getattr(s, k) for k, opt in SLAVE_OPTIONS.items()
            if number in opt.modes and getattr(s, k) not in (None, opt.default)}
        if opts:
            slave_options[s.name] = opts
    # The MAC a bond inherits from its first slave is not a setting: only a full snapshot
    # (a checkpoint) pins it.
    spec = BondSpec.build(state.name, state.mode, options, list(state.slave_names),
                          mtu=state.mtu if defaults or state.mtu != 1500 else None,
                          mac=state.mac if defaults else None, slave_options=slave_options,
                          up=state.up)
    return Bond(spec, netns, ip or ipconfig.NOTHING)
