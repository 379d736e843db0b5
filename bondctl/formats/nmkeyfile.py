"""NetworkManager keyfiles (1.42): a profile per bond, per slave and per VLAN.

[bond] keys are the kernel names where the catalogue says NetworkManager has them
(Option.nm), per-slave options go to [bond-port] (SlaveOption.nm_port). Profile UUIDs are
derived from the interface name, so exporting the same bond twice gives the same files.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..document import Bond, from_mapping
from ..errors import ValidationError
from ..ipconfig import Route
from ..options import MODE, OPTIONS, SLAVE_OPTIONS, Value
from . import Files, Parsed, expressible, family_split, show, slave_by_nm, truth

_ANY = {4: "0.0.0.0", 6: "::"}  # noqa: S104  # NetworkManager's "no gateway"
_NAMESPACE = uuid.UUID("6f1c1b0e-2f55-4b8e-9d4e-6c0a6f5b0b0d")


def _uuid(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, name))


def _ini(sections: list[tuple[str, list[tuple[str, Any]]]]) -> str:
    return "\n".join(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in pairs)
                     for name, pairs in sections if pairs)


def _ip(addresses: tuple[str, ...] | None,
        routes: tuple[Route, ...] | None) -> list[tuple[str, list[tuple[str, object]]]]:
    v4, v6 = family_split(addresses or ())
    out = []
    for section, addrs, version in (("ipv4", v4, 4), ("ipv6", v6, 6)):
        mine = [r for r in routes or () if r.version == version]
        pairs: list[tuple[str, object]] = [("method", "manual" if addrs else "disabled")]
        pairs += [(f"address{i}", a) for i, a in enumerate(addrs, 1)]
        for i, r in enumerate(mine, 1):
            words = [r.to, r.via or _ANY[version]]
            if r.metric is not None:
                words.append(str(r.metric))
            pairs.append((f"route{i}", ",".join(words)))
            if r.table is not None:
                pairs.append((f"route{i}_options", f"table={r.table}"))
        out.append((section, pairs))
    return out


def _render(key: str, value: Value) -> str:
    if OPTIONS[key].kind == "flag":
        return str(int(value))  # type: ignore[arg-type]
    return show(value)


def export(bonds: list[Bond]) -> Files:
    files: dict[str, str] = {}
    warnings: list[str] = []
    for bond in bonds:
        spec = bond.spec
        options, said = expressible(bond, "nm-keyfile", lambda o: o.nm,
                                    lambda k: SLAVE_OPTIONS[k].nm_port is not None)
        warnings += said
        # NetworkManager writes MACs in upper case: so do we, so its read-back is ours.
        mac = spec.mac.upper() if spec.mac else None
        ethernet = [(k, v) for k, v in (("mtu", spec.mtu), ("cloned-mac-address", mac))
                    if v]
        bond_keys: list[tuple[str, object]] = [(MODE.name, spec.mode)]
        bond_keys += [(k, _render(k, v)) for k, v in options.items() if v != ""]
        files[f"{spec.name}.nmconnection"] = _ini([
            ("connection", [("id", spec.name), ("uuid", _uuid(spec.name)), ("type", "bond"),
                            ("interface-name", spec.name)]),
            ("ethernet", ethernet), ("bond", bond_keys),
            *_ip(bond.ip.addresses, bond.ip.routes)])
        for slave in spec.slaves:
            port = [(str(SLAVE_OPTIONS[k].nm_port), v) for k, v in slave.options.items()
                    if SLAVE_OPTIONS[k].nm_port]
            files[f"{spec.name}-port-{slave.name}.nmconnection"] = _ini([
                ("connection", [("id", f"{spec.name}-port-{slave.name}"),
                                ("uuid", _uuid(f"{spec.name}/{slave.name}")),
                                ("type", "ethernet"), ("interface-name", slave.name),
                                ("master", spec.name), ("slave-type", "bond")]),
                ("bond-port", port)])
        for v in bond.ip.vlans or ():
            files[f"{v.name}.nmconnection"] = _ini([
                ("connection", [("id", v.name), ("uuid", _uuid(v.name)), ("type", "vlan"),
                                ("interface-name", v.name)]),
                ("ethernet", [("mtu", v.mtu)] if v.mtu else []),
                ("vlan", [("id", v.id), ("parent", spec.name)]),
                *_ip(v.addresses, v.routes)])
    return Files(files, warnings)


def read_keyfile(text: str, fname: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = out.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
        else:
            raise ValidationError(f"nm-keyfile: {fname}: not a keyfile line: {raw!r}")
    return out


def _layer(profile: dict[str, dict[str, str]]) -> tuple[list[str], list[dict[str, object]]]:
    addrs: list[str] = []
    routes: list[dict[str, object]] = []
    for section in ("ipv4", "ipv6"):
        keys = profile.get(section, {})
        i = 1
        while f"address{i}" in keys:
            addrs.append(keys[f"address{i}"].split(",")[0])
            i += 1
        i = 1
        while f"route{i}" in keys:
            words = keys[f"route{i}"].split(",")
            route: dict[str, object] = {"to": words[0]}
            if len(words) > 1 and words[1] not in (*_ANY.values(), ""):
                route["via"] = words[1]
            if len(words) > 2:
                route["metric"] = words[2]
            for option in keys.get(f"route{i}_options", "").split(","):
                if option.startswith("table="):
                    route["table"] = option[6:]
            routes.append(route)
            i += 1
    return addrs, routes


def parse(files: dict[str, str]) -> Parsed:
    warnings: list[str] = []
    profiles = {f: read_keyfile(t, f) for f, t in sorted(files.items())}
    port_keys = slave_by_nm()
    bonds = []
    for fname, profile in profiles.items():
        conn = profile.get("connection", {})
        if conn.get("type") != "bond":
            continue
        name = conn.get("interface-name") or conn.get("id", "")
        raw_bond = dict(profile.get("bond", {}))
        mode = raw_bond.pop(MODE.name, MODE.default)
        options: dict[str, object] = {}
        for key, value in raw_bond.items():
            opt = OPTIONS.get(key)
            if opt is None or not opt.nm:
                warnings.append(f"nm-keyfile: {fname}: [bond] {key} is not an option bondctl "
                                "reads; ignored")
            else:
                options[key] = truth(value) if opt.kind == "flag" else value
        slaves: list[object] = []
        vlans = []
        for other in profiles.values():
            oconn = other.get("connection", {})
            if oconn.get("master") in (name, conn.get("uuid")) and (
                    oconn.get("slave-type") == "bond"):
                port = {port_keys[k]: v for k, v in other.get("bond-port", {}).items()
                        if k in port_keys}
                ifname = oconn.get("interface-name", "")
                slaves.append({"name": ifname, **port} if port else ifname)
            if oconn.get("type") == "vlan" and other.get("vlan", {}).get("parent") in (
                    name, conn.get("uuid")):
                vaddrs, vroutes = _layer(other)
                vitem: dict[str, object] = {"id": other["vlan"].get("id"),
                                            "name": oconn.get("interface-name"),
                                            "addresses": vaddrs, "routes": vroutes}
                if other.get("ethernet", {}).get("mtu"):
                    vitem["mtu"] = other["ethernet"]["mtu"]
                vlans.append(vitem)
        addrs, routes = _layer(profile)
        item: dict[str, object] = {"name": name, "mode": mode, "options": options,
                                   "slaves": slaves, "addresses": addrs, "routes": routes,
                                   "vlans": vlans}
        ethernet = profile.get("ethernet", {})
        for ours, theirs in (("mtu", "mtu"), ("mac", "cloned-mac-address")):
            if ethernet.get(theirs):
                item[ours] = ethernet[theirs]
        bonds.append(from_mapping(item))
    return Parsed(bonds, warnings)
