"""systemd-networkd: a .netdev and a .network per bond and VLAN, a .network per slave.

Keys from the catalogue (Option.networkd); durations carry their unit ("100ms"); an ifname
option (primary, active_slave) is the named slave's [Network] PrimarySlave=/ActiveSlave=.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import Any

from ..document import Bond, from_mapping
from ..errors import ValidationError
from ..ipconfig import Route
from ..options import MODE, OPTIONS, Option, Value
from . import Files, Parsed, by_key, duration, expressible, parse_duration, truth, words

PREFIX = "10-"


def reaches_kernel(bond: Bond, opt: Option) -> bool:
    """systemd-networkd sends some keys to the kernel only beside another (Option.networkd_with;
    its bond.c nests them there): without, they are silently ignored. netplan renders through
    networkd, so the same holds there."""
    return opt.networkd_with is None or bool(bond.spec.options.get(opt.networkd_with))


def _can(bond: Bond, opt: Option) -> bool:
    return opt.networkd is not None and reaches_kernel(bond, opt)


def render(opt: Option, value: Value) -> str:
    if opt.unit:
        return duration(value, opt.unit)
    if opt.kind == "flag":
        return words(value)
    if isinstance(value, tuple):
        return " ".join(value)
    return str(value)


def _ini(sections: list[tuple[str, list[tuple[str, Any]]]]) -> str:
    out = []
    for name, pairs in sections:
        if pairs or name in ("Match", "NetDev"):
            out.append(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in pairs))
    return "\n".join(out)


def _layer(addresses: tuple[str, ...] | None, routes: tuple[Route, ...] | None,
           extra: list[tuple[str, object]]) -> list[tuple[str, list[tuple[str, object]]]]:
    network: list[tuple[str, object]] = [("LinkLocalAddressing", "ipv6"), *extra]
    network += [("Address", a) for a in addresses or ()]
    sections = [("Network", network)]
    for r in routes or ():
        pairs: list[tuple[str, object]] = []
        if r.to not in ("0.0.0.0/0", "::/0") or not r.via:
            pairs.append(("Destination", r.to))
        if r.via:
            pairs.append(("Gateway", r.via))
        pairs += [(k, v) for k, v in (("Metric", r.metric), ("Table", r.table)) if v is not None]
        sections.append(("Route", pairs))
    return sections


def export(bonds: list[Bond]) -> Files:
    files: dict[str, str] = {}
    warnings: list[str] = []
    for bond in bonds:
        spec = bond.spec
        options, said = expressible(bond, "networkd", partial(_can, bond))
        warnings += said
        netdev: list[tuple[str, object]] = [("Name", spec.name), ("Kind", "bond")]
        netdev += [(k, v) for k, v in (("MTUBytes", spec.mtu), ("MACAddress", spec.mac)) if v]
        bond_keys: list[tuple[str, object]] = [("Mode", spec.mode)]
        per_slave: dict[str, list[tuple[str, object]]] = defaultdict(list)
        for key, value in options.items():
            opt = OPTIONS[key]
            if opt.kind == "ifname":
                if value:
                    per_slave[str(value)].append((str(opt.networkd), "yes"))
                continue
            bond_keys.append((str(opt.networkd), render(opt, value)))
        files[f"{PREFIX}{spec.name}.netdev"] = _ini([("NetDev", netdev), ("Bond", bond_keys)])
        vlans = bond.ip.vlans or ()
        files[f"{PREFIX}{spec.name}.network"] = _ini(
            [("Match", [("Name", spec.name)]),
             *_layer(bond.ip.addresses, bond.ip.routes, [("VLAN", v.name) for v in vlans])])
        for slave in spec.slave_names:
            files[f"{PREFIX}{slave}.network"] = _ini(
                [("Match", [("Name", slave)]), ("Network", [("Bond", spec.name),
                                                            *per_slave[slave]])])
        for v in vlans:
            vdev: list[tuple[str, object]] = [("Name", v.name), ("Kind", "vlan")]
            if v.mtu:
                vdev.append(("MTUBytes", v.mtu))
            files[f"{PREFIX}{v.name}.netdev"] = _ini([("NetDev", vdev), ("VLAN", [("Id", v.id)])])
            files[f"{PREFIX}{v.name}.network"] = _ini(
                [("Match", [("Name", v.name)]), *_layer(v.addresses, v.routes, [])])
    return Files(files, warnings)


# -- reading -----------------------------------------------------------------------------------
def read_ini(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """systemd's unit syntax: sections may repeat ([Route]), keys too (Address=)."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1], []))
        elif "=" in line and sections:
            key, _, value = line.partition("=")
            sections[-1][1].append((key.strip(), value.strip()))
        else:
            raise ValidationError(f"not a systemd unit line: {raw!r}")
    return sections


def parse_value(opt: Option, text: str) -> object:
    if opt.unit:
        return parse_duration(text, opt.unit, "s")  # a bare networkd time span is seconds
    if opt.kind == "flag":
        return truth(text)
    if opt.kind in ("ipv4list", "ipv6list"):
        return text.split()
    return text


def _first(pairs: list[tuple[str, str]], key: str) -> str | None:
    return next((v for k, v in pairs if k == key), None)


def parse(files: dict[str, str]) -> Parsed:
    keys = by_key("networkd")
    warnings: list[str] = []
    netdevs: dict[str, dict[str, list[tuple[str, str]]]] = {}
    networks: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {}
    for fname, text in sorted(files.items()):
        sections = read_ini(text)
        if fname.endswith(".netdev"):
            merged: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for name, pairs in sections:
                merged[name] += pairs
            netdevs[str(_first(merged["NetDev"], "Name"))] = merged
        elif fname.endswith(".network"):
            match = next((p for n, p in sections if n == "Match"), [])
            matched = _first(match, "Name")
            if matched:
                networks[matched] = sections
        else:
            warnings.append(f"networkd: {fname}: not a .netdev or .network file; ignored")

    def layer(name: str) -> tuple[list[str], list[dict[str, object]], list[tuple[str, str]]]:
        addrs: list[str] = []
        routes: list[dict[str, object]] = []
        network: list[tuple[str, str]] = []
        for section, pairs in networks.get(name, []):
            if section == "Network":
                network += pairs
                addrs += [v for k, v in pairs if k == "Address"]
            elif section == "Address":
                addrs += [v for k, v in pairs if k == "Address"]
            elif section == "Route":
                d = dict(pairs)
                route: dict[str, object] = {"to": d.get("Destination", "default")}
                for ours, theirs in (("via", "Gateway"), ("metric", "Metric"),
                                     ("table", "Table")):
                    if theirs in d:
                        route[ours] = d[theirs]
                routes.append(route)
        return addrs, routes, network

    bonds: list[Bond] = []
    slaves: dict[str, list[str]] = defaultdict(list)
    per_slave: dict[str, dict[str, str]] = defaultdict(dict)
    for name in networks:
        _, _, network = layer(name)
        master = _first(network, "Bond")
        if master:
            slaves[master].append(name)
            for key, value in network:
                opt = keys.get(key)
                if opt is not None and opt.kind == "ifname" and truth(value):
                    per_slave[master][opt.name] = name
    for name, netdev in sorted(netdevs.items()):
        if _first(netdev["NetDev"], "Kind") != "bond":
            continue
        options: dict[str, object] = {}
        mode = str(MODE.default)
        for key, value in netdev.get("Bond", []):
            opt = keys.get(key)
            if opt is None:
                warnings.append(f"networkd: {name}: [Bond] {key}= is not a bonding option "
                                "bondctl knows; ignored")
            elif opt.is_mode:
                mode = value
            else:
                options[opt.name] = parse_value(opt, value)
        options.update(per_slave[name])
        addrs, routes, network = layer(name)
        vlans = []
        for vname in (v for k, v in network if k == "VLAN"):
            vdev = netdevs.get(vname, {})
            vaddrs, vroutes, _ = layer(vname)
            item: dict[str, object] = {"id": _first(vdev.get("VLAN", []), "Id"), "name": vname,
                                       "addresses": vaddrs, "routes": vroutes}
            mtu = _first(vdev.get("NetDev", []), "MTUBytes")
            if mtu:
                item["mtu"] = mtu
            vlans.append(item)
        item = {"name": name, "mode": mode, "options": options,
                "slaves": sorted(slaves[name]), "addresses": addrs, "routes": routes,
                "vlans": vlans}
        for ours, theirs in (("mtu", "MTUBytes"), ("mac", "MACAddress")):
            found = _first(netdev["NetDev"], theirs)
            if found:
                item[ours] = found
        bonds.append(from_mapping(item))
    return Parsed(bonds, warnings)
