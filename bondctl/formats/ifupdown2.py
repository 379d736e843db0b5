"""ifupdown2's interfaces(5): an `iface` stanza per bond and per VLAN.

A bond option is `bond-` + its kernel name with dashes where the catalogue says ifupdown2 3.0
has it (Option.ifupdown2). ifupdown2 reads a two-valued enum (lacp_rate) as a boolean, so
those are written as their number; flags as yes/no. Routes have no keyword of their own:
they are `post-up ip route add ...` lines, and only lines of exactly that form are read back.
"""

from __future__ import annotations

import shlex

from ..document import Bond, from_mapping
from ..errors import ValidationError
from ..ipconfig import Route
from ..options import MODE, OPTIONS, Option, Value
from . import Files, Parsed, expressible, truth, words

FILE = "interfaces"


def keyword(opt: Option) -> str:
    return "bond-" + opt.name.replace("_", "-")


def _value(opt: Option, value: Value) -> str:
    if opt.kind == "flag":
        return words(value)
    if opt.kind == "enum" and len(opt.choices) == 2:
        return str(opt.choices.index(str(value)))
    return str(value)


def _route_line(route: Route, dev: str) -> str:
    argv = ["ip", "route", "add", route.to]
    if route.via:
        argv += ["via", route.via]
    argv += [w for k, v in (("metric", route.metric), ("table", route.table)) if v is not None
             for w in (k, str(v))]
    argv += ["dev", dev]
    return "post-up " + " ".join(argv)


def _stanza(name: str, lines: list[str]) -> str:
    return f"auto {name}\niface {name}\n" + "".join(f"    {line}\n" for line in lines)


def export(bonds: list[Bond]) -> Files:
    stanzas = ["# interfaces(5) for ifupdown2, written by bondctl export\n"]
    warnings: list[str] = []
    for bond in bonds:
        spec = bond.spec
        options, said = expressible(bond, "ifupdown2", lambda o: o.ifupdown2)
        warnings += said
        lines = [f"bond-slaves {' '.join(spec.slave_names) or 'none'}",
                 f"bond-mode {spec.mode}"]
        lines += [f"{keyword(OPTIONS[k])} {_value(OPTIONS[k], v)}" for k, v in options.items()
                  if v != ""]
        if spec.mtu:
            lines.append(f"mtu {spec.mtu}")
        if spec.mac:
            lines.append(f"hwaddress ether {spec.mac}")
        lines += [f"address {a}" for a in bond.ip.addresses or ()]
        lines += [_route_line(r, spec.name) for r in bond.ip.routes or ()]
        stanzas.append(_stanza(spec.name, lines))
        for v in bond.ip.vlans or ():
            vlines = [f"vlan-raw-device {spec.name}", f"vlan-id {v.id}"]
            if v.mtu:
                vlines.append(f"mtu {v.mtu}")
            vlines += [f"address {a}" for a in v.addresses or ()]
            vlines += [_route_line(r, v.name) for r in v.routes or ()]
            stanzas.append(_stanza(v.name, vlines))
    return Files({FILE: "\n".join(stanzas)}, warnings)


def _parse_route(words_: list[str], iface: str) -> dict[str, object] | None:
    if words_[:3] != ["ip", "route", "add"] or len(words_) < 4:
        return None
    route: dict[str, object] = {"to": words_[3]}
    pairs = words_[4:]
    if len(pairs) % 2:
        return None
    for key, value in zip(pairs[::2], pairs[1::2], strict=True):
        if key in ("via", "metric", "table"):
            route[key] = value
        elif key != "dev" or value != iface:
            return None
    return route


def parse(files: dict[str, str]) -> Parsed:
    by_keyword = {keyword(o): o for o in OPTIONS.values() if o.ifupdown2}
    warnings: list[str] = []
    stanzas: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for fname, text in sorted(files.items()):
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, _, rest = line.partition(" ")
            if key == "iface":
                name = rest.split()[0]
                current = stanzas.setdefault(name, [])
            elif key in ("auto", "allow-hotplug", "source", "source-directory"):
                if key.startswith("source"):
                    warnings.append(f"ifupdown2: {fname}:{number}: {key} is not followed")
                current = None
            elif current is None:
                raise ValidationError(f"ifupdown2: {fname}:{number}: {line!r} outside a stanza")
            else:
                current.append((key, rest.strip()))
    bonds = []
    vlans_of: dict[str, list[dict[str, object]]] = {}
    layers: dict[str, tuple[list[str], list[dict[str, object]]]] = {}
    for name, lines in stanzas.items():
        addrs, routes = [], []
        for key, rest in lines:
            if key == "address":
                addrs += rest.split()
            elif key in ("up", "post-up"):
                route = _parse_route(shlex.split(rest), name)
                if route is None:
                    warnings.append(f"ifupdown2: {name}: {key} {rest!r} is not a route "
                                    "bondctl reads; ignored")
                else:
                    routes.append(route)
        layers[name] = addrs, routes
        values = dict(lines)
        if "vlan-raw-device" in values or ("." in name and "bond-slaves" not in values):
            parent = values.get("vlan-raw-device") or name.rsplit(".", 1)[0]
            vitem: dict[str, object] = {"id": values.get("vlan-id") or name.rsplit(".", 1)[1],
                                        "name": name, "addresses": addrs, "routes": routes}
            if "mtu" in values:
                vitem["mtu"] = values["mtu"]
            vlans_of.setdefault(parent, []).append(vitem)
    for name, lines in stanzas.items():
        values = dict(lines)
        if "bond-slaves" not in values and "bond-ports" not in values:
            continue
        options: dict[str, object] = {}
        mode = str(MODE.default)
        for key, rest in lines:
            if not key.startswith("bond-") or key in ("bond-slaves", "bond-ports"):
                continue
            opt = by_keyword.get(key)
            if opt is None:
                warnings.append(f"ifupdown2: {name}: {key} is not an option bondctl reads; "
                                "ignored")
            elif opt.is_mode:
                mode = rest
            elif opt.kind == "flag":
                options[opt.name] = truth(rest)
            else:
                options[opt.name] = rest
        slaves = (values.get("bond-slaves") or values.get("bond-ports") or "").split()
        addrs, routes = layers[name]
        item: dict[str, object] = {"name": name, "mode": mode, "options": options,
                                   "slaves": [s for s in slaves if s != "none"],
                                   "addresses": addrs, "routes": routes,
                                   "vlans": vlans_of.get(name, [])}
        if "mtu" in values:
            item["mtu"] = values["mtu"]
        if "hwaddress" in values:
            item["mac"] = values["hwaddress"].split()[-1]
        bonds.append(from_mapping(item))
    return Parsed(bonds, warnings)
