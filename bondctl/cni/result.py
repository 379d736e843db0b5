"""Results shaped per requested cniVersion, and IPAM / previous results read from any of them.

Internally a result is the 1.x shape (interfaces, ips without "version", routes, dns); `render`
turns it into the version the runtime asked for.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import DECODE_FAILURE, CniError

Result = dict[str, Any]
_INTERFACE_KEYS = {  # what each version's Interface holds
    "0": ("name", "mac", "sandbox"),
    "1.0": ("name", "mac", "sandbox"),
    "1.1": ("name", "mac", "mtu", "sandbox", "socketPath", "pciID"),
}


def _family(version: str) -> str:
    if version.startswith("0."):
        return "0"
    return "1.1" if version == "1.1.0" else "1.0"


def normalize(raw: object, what: str = "result") -> Result:
    """A result of any supported version in the internal shape (a deep copy)."""
    if not isinstance(raw, dict):
        raise CniError(DECODE_FAILURE, f"{what} is not a JSON object")
    out: Result = {
        "interfaces": [dict(i) for i in raw.get("interfaces") or [] if isinstance(i, dict)],
        "ips": [],
        "routes": [dict(r) for r in raw.get("routes") or [] if isinstance(r, dict)],
        "dns": copy.deepcopy(raw.get("dns") or {}),
    }
    for ip in raw.get("ips") or []:
        if not isinstance(ip, dict) or not isinstance(ip.get("address"), str):
            raise CniError(DECODE_FAILURE, f"{what}: an ips entry has no address")
        entry = {k: v for k, v in ip.items() if k != "version"}
        out["ips"].append(entry)
    return out


def render(result: Result, version: str) -> Result:
    """The internal result as the runtime's cniVersion lays it out."""
    family = _family(version)
    keys = _INTERFACE_KEYS[family]
    out: Result = {"cniVersion": version}
    out["interfaces"] = [{k: i[k] for k in keys if i.get(k) not in (None, "")}
                         for i in result.get("interfaces", [])]
    ips = []
    for ip in result.get("ips", []):
        entry = dict(ip)
        if family == "0":
            entry = {"version": "6" if ":" in ip["address"] else "4", **entry}
        ips.append(entry)
    out["ips"] = ips
    out["routes"] = [dict(r) for r in result.get("routes", [])]
    out["dns"] = dict(result.get("dns") or {})
    return out


def interface(name: str, mac: str, sandbox: str, mtu: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "mac": mac}
    if mtu is not None:
        entry["mtu"] = mtu
    entry["sandbox"] = sandbox
    return entry


def add_result(
    prev: Result | None,
    bond: dict[str, Any],
    slaves: list[dict[str, Any]],
    ipam: Result | None,
    conf_dns: dict[str, Any] | None,
) -> Result:
    """The ADD result: the previous plugin's (when chained) plus the bond, then its slaves;
    IPAM's addresses point at the bond."""
    out = normalize(prev, "prevResult") if prev else {"interfaces": [], "ips": [], "routes": [],
                                                         "dns": {}}
    bond_index = len(out["interfaces"])
    out["interfaces"] += [bond, *slaves]
    if ipam:
        for ip in ipam["ips"]:
            out["ips"].append({**ip, "interface": bond_index})
        out["routes"] += ipam["routes"]
        if ipam["dns"]:
            out["dns"] = ipam["dns"]
    if conf_dns and not out["dns"]:
        out["dns"] = dict(conf_dns)
    return out
