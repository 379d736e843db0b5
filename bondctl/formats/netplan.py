"""netplan: one YAML file with ethernets (the slaves), bonds and vlans, rendered by networkd.

Keys from the catalogue (Option.netplan); durations are written with their unit ("100ms").
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ..document import Bond, from_mapping
from ..errors import ValidationError
from ..ipconfig import Route
from ..options import MODE, OPTIONS, Option, Value
from . import Files, Parsed, by_key, duration, expressible, networkd, parse_duration, truth

FILE = "90-bondctl.yaml"


def _value(opt: Option, value: Value) -> object:
    if opt.unit:
        return duration(value, opt.unit)
    if opt.kind == "flag":
        return bool(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _routes(routes: tuple[Route, ...] | None) -> list[dict[str, object]]:
    return [{k: v for k, v in (("to", "default" if r.to in ("0.0.0.0/0", "::/0") else r.to),
                                ("via", r.via), ("metric", r.metric), ("table", r.table))
             if v is not None} for r in routes or ()]


def _layer(target: dict[str, Any], addresses: tuple[str, ...] | None,
           routes: tuple[Route, ...] | None) -> None:
    if addresses:
        target["addresses"] = list(addresses)
    if routes:
        target["routes"] = _routes(routes)


def _can(bond: Bond, opt: Option) -> bool:
    return opt.netplan is not None and networkd.reaches_kernel(bond, opt)  # rendered by networkd


def export(bonds: list[Bond]) -> Files:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    ethernets: dict[str, Any] = {}
    bond_defs: dict[str, Any] = {}
    vlans: dict[str, Any] = {}
    warnings: list[str] = []
    for bond in bonds:
        spec = bond.spec
        options, said = expressible(bond, "netplan", partial(_can, bond))
        warnings += said
        for slave in spec.slave_names:
            ethernets[slave] = {}
        params: dict[str, Any] = {str(MODE.netplan): spec.mode}
        params.update({str(OPTIONS[k].netplan): _value(OPTIONS[k], v)
                       for k, v in options.items() if not OPTIONS[k].is_mode and v != ""})
        item: dict[str, Any] = {"interfaces": list(spec.slave_names), "parameters": params}
        if spec.mtu:
            item["mtu"] = spec.mtu
        if spec.mac:
            item["macaddress"] = spec.mac
        _layer(item, bond.ip.addresses, bond.ip.routes)
        bond_defs[spec.name] = item
        for v in bond.ip.vlans or ():
            vitem: dict[str, Any] = {"id": v.id, "link": spec.name}
            if v.mtu:
                vitem["mtu"] = v.mtu
            _layer(vitem, v.addresses, v.routes)
            vlans[v.name] = vitem
    network: dict[str, Any] = {"version": 2, "renderer": "networkd", "ethernets": ethernets,
                               "bonds": bond_defs}
    if vlans:
        network["vlans"] = vlans
    text = yaml.safe_dump({"network": network}, sort_keys=False, default_flow_style=False)
    return Files({FILE: text}, warnings)


def _parse_value(opt: Option, value: object) -> object:
    if opt.unit:
        return parse_duration(str(value), opt.unit, opt.unit)  # bare: the kernel's unit
    if opt.kind == "flag":
        return truth(value)
    return value


def _ours(raw: object, name: str) -> tuple[list[str], list[dict[str, object]]]:
    if not isinstance(raw, dict):
        raise ValidationError(f"netplan: {name} must be a mapping")
    routes = []
    for r in raw.get("routes") or []:
        routes.append({k: r[k] for k in ("to", "via", "metric", "table") if k in r})
    if raw.get("gateway4") or raw.get("gateway6"):
        routes += [{"to": "default", "via": raw[k]} for k in ("gateway4", "gateway6")
                   if raw.get(k)]
    return list(raw.get("addresses") or []), routes


def parse(files: dict[str, str]) -> Parsed:
    import yaml

    keys = by_key("netplan")
    warnings: list[str] = []
    bonds_raw: dict[str, Any] = {}
    vlans_raw: dict[str, Any] = {}
    for fname, text in sorted(files.items()):
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValidationError(f"netplan: {fname}: invalid YAML: {exc}") from None
        network = doc.get("network") if isinstance(doc, dict) else None
        if not isinstance(network, dict):
            raise ValidationError(f"netplan: {fname}: no network: mapping")
        bonds_raw.update(network.get("bonds") or {})
        vlans_raw.update(network.get("vlans") or {})
    bonds = []
    for name, raw in bonds_raw.items():
        params = dict(raw.get("parameters") or {})
        mode = params.pop(str(MODE.netplan), MODE.default)
        options = {}
        for key, value in params.items():
            opt = keys.get(key)
            if opt is None:
                warnings.append(f"netplan: {name}: parameter {key} is not a bonding option "
                                "bondctl knows; ignored")
            else:
                options[opt.name] = _parse_value(opt, value)
        addrs, routes = _ours(raw, name)
        vlans = []
        for vname, vraw in vlans_raw.items():
            if vraw.get("link") == name:
                vaddrs, vroutes = _ours(vraw, vname)
                vitem: dict[str, object] = {"id": vraw.get("id"), "name": vname,
                                            "addresses": vaddrs, "routes": vroutes}
                if vraw.get("mtu"):
                    vitem["mtu"] = vraw["mtu"]
                vlans.append(vitem)
        item: dict[str, object] = {"name": name, "mode": mode, "options": options,
                                   "slaves": list(raw.get("interfaces") or []),
                                   "addresses": addrs, "routes": routes, "vlans": vlans}
        for ours, theirs in (("mtu", "mtu"), ("mac", "macaddress")):
            if raw.get(theirs):
                item[ours] = raw[theirs]
        bonds.append(from_mapping(item))
    return Parsed(bonds, warnings)
