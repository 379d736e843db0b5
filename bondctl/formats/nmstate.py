"""nmstate's YAML API: an interface per bond and VLAN, routes under routes.config.

link-aggregation.options keys are the kernel names where the catalogue says nmstate has
them (Option.nmstate); flags are booleans, or the words nmstate uses (Option.nmstate_words).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..document import Bond, from_mapping
from ..errors import ValidationError
from ..ipconfig import Route
from ..options import MODE, OPTIONS, Option, Value
from . import Files, Parsed, expressible, family_split, truth

FILE = "bondctl.yml"


def _value(opt: Option, value: Value) -> object:
    if opt.kind == "flag":
        return opt.nmstate_words[int(value)] if opt.nmstate_words else bool(value)  # type: ignore[arg-type]
    if isinstance(value, tuple):
        return ",".join(value)
    return value


def _ip(addresses: tuple[str, ...] | None) -> dict[str, Any]:
    v4, v6 = family_split(addresses or ())
    out: dict[str, Any] = {}
    for key, addrs in (("ipv4", v4), ("ipv6", v6)):
        section: dict[str, Any] = {"enabled": bool(addrs)}
        if addrs:
            section["dhcp"] = False
            if key == "ipv6":
                section["autoconf"] = False
            section["address"] = [{"ip": str(ipaddress.ip_interface(a).ip),
                                   "prefix-length": ipaddress.ip_interface(a).network.prefixlen}
                                  for a in addrs]
        out[key] = section
    return out


def _routes(routes: tuple[Route, ...] | None, dev: str) -> list[dict[str, Any]]:
    out = []
    for r in routes or ():
        item: dict[str, Any] = {"destination": r.to, "next-hop-interface": dev}
        if r.via:
            item["next-hop-address"] = r.via
        if r.metric is not None:
            item["metric"] = r.metric
        if r.table is not None:
            item["table-id"] = r.table
        out.append(item)
    return out


def export(bonds: list[Bond]) -> Files:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    interfaces: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    warnings: list[str] = []
    for bond in bonds:
        spec = bond.spec
        options, said = expressible(bond, "nmstate", lambda o: o.nmstate)
        warnings += said
        item: dict[str, Any] = {"name": spec.name, "type": "bond",
                                "state": "up" if spec.up else "down"}
        if spec.mtu:
            item["mtu"] = spec.mtu
        if spec.mac:
            item["mac-address"] = spec.mac.upper()
        item["link-aggregation"] = {
            MODE.name: spec.mode,
            "options": {k: _value(OPTIONS[k], v) for k, v in options.items() if v != ""},
            "port": list(spec.slave_names)}
        item.update(_ip(bond.ip.addresses))
        interfaces.append(item)
        routes += _routes(bond.ip.routes, spec.name)
        for v in bond.ip.vlans or ():
            vitem: dict[str, Any] = {"name": v.name, "type": "vlan", "state": "up",
                                     "vlan": {"base-iface": spec.name, "id": v.id}}
            if v.mtu:
                vitem["mtu"] = v.mtu
            vitem.update(_ip(v.addresses))
            interfaces.append(vitem)
            routes += _routes(v.routes, v.name)
    doc: dict[str, Any] = {"interfaces": interfaces}
    if routes:
        doc["routes"] = {"config": routes}
    return Files({FILE: yaml.safe_dump(doc, sort_keys=False)}, warnings)


def _addresses(iface: dict[str, Any]) -> list[str]:
    out = []
    for key in ("ipv4", "ipv6"):
        for a in (iface.get(key) or {}).get("address") or []:
            out.append(f"{a['ip']}/{a['prefix-length']}")
    return out


def _option(opt: Option, value: object) -> object:
    if opt.kind == "flag":
        if opt.nmstate_words and value in opt.nmstate_words:
            return opt.nmstate_words.index(str(value))
        return truth(value)
    return value


def parse(files: dict[str, str]) -> Parsed:
    import yaml

    warnings: list[str] = []
    interfaces: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for fname, text in sorted(files.items()):
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValidationError(f"nmstate: {fname}: invalid YAML: {exc}") from None
        interfaces += doc.get("interfaces") or []
        routes += (doc.get("routes") or {}).get("config") or []

    def routes_of(dev: str) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for r in routes:
            if r.get("next-hop-interface") != dev or r.get("state") == "absent":
                continue
            route: dict[str, object] = {"to": r["destination"]}
            for ours, theirs in (("via", "next-hop-address"), ("metric", "metric"),
                                 ("table", "table-id")):
                if r.get(theirs) is not None:
                    route[ours] = r[theirs]
            out.append(route)
        return out

    bonds = []
    for iface in interfaces:
        if iface.get("type") != "bond":
            continue
        name = iface["name"]
        agg = iface.get("link-aggregation") or {}
        options = {}
        for key, value in (agg.get("options") or {}).items():
            opt = OPTIONS.get(key)
            if opt is None or not opt.nmstate:
                warnings.append(f"nmstate: {name}: option {key} is not one bondctl reads; "
                                "ignored")
            else:
                options[key] = _option(opt, value)
        vlans = []
        for other in interfaces:
            vlan = other.get("vlan") or {}
            if other.get("type") == "vlan" and vlan.get("base-iface") == name:
                vitem: dict[str, object] = {"id": vlan.get("id"), "name": other["name"],
                                            "addresses": _addresses(other),
                                            "routes": routes_of(other["name"])}
                if other.get("mtu"):
                    vitem["mtu"] = other["mtu"]
                vlans.append(vitem)
        item: dict[str, object] = {"name": name, "mode": agg.get(MODE.name, MODE.default),
                                   "options": options,
                                   "slaves": list(agg.get("port") or agg.get("ports") or []),
                                   "addresses": _addresses(iface), "routes": routes_of(name),
                                   "vlans": vlans, "up": iface.get("state", "up") == "up"}
        if iface.get("mtu"):
            item["mtu"] = iface["mtu"]
        if iface.get("mac-address"):
            item["mac"] = iface["mac-address"]
        bonds.append(from_mapping(item))
    return Parsed(bonds, warnings)
