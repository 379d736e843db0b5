"""Results shaped per requested cniVersion, and IPAM / previous results read from any of them.

Internally a result is the 1.x shape (interfaces, ips without "version", routes, dns); `render`
turns it into the version the runtime asked for.

A result from outside (prevResult, an IPAM plugin's output) is checked in two stages, by one
rule: `normalize` refuses, with code 6, what Go's decoder would refuse too (a wrong JSON type,
an address or CIDR that does not parse, an address without its prefix length) and an
`interface` index that points at no interface; `check_for_kernel` refuses, with code 7, a
well-formed result the bond cannot carry (a gateway of the other family, a route attribute out
of the kernel's range, IPv6 on a link below 1280 bytes). Unknown keys are dropped, as Go drops
them, so nothing unchecked reaches the result printed or the kernel.
"""

from __future__ import annotations

from .errors import DECODE_FAILURE, INVALID_CONFIG, CniError
from .jsondoc import fields

TYPE_CHECKING = False  # typing costs ~12 ms CPU to import, on every pod start
if TYPE_CHECKING:
    from typing import Any

    Result = dict[str, Any]
else:
    Result = dict
IPV6_MIN_MTU = 1280  # the kernel turns IPv6 off on a smaller link (RFC 8200)
_U32 = 2**32 - 1
_INTERFACE_KEYS = {  # what each version's Interface holds
    "0": ("name", "mac", "sandbox"),
    "1.0": ("name", "mac", "sandbox"),
    "1.1": ("name", "mac", "mtu", "sandbox", "socketPath", "pciID"),
}
# Each object's keys as the spec spells them, by folded key, with the type each value takes.
_STR, _INT, _CIDR, _IP, _STRS = "a string", "an integer", "a CIDR", "an IP address", "strings"
_INTERFACE = {"name": ("name", _STR), "mac": ("mac", _STR), "mtu": ("mtu", _INT),
              "sandbox": ("sandbox", _STR), "socketpath": ("socketPath", _STR),
              "pciid": ("pciID", _STR)}
_IPCONF = {"address": ("address", _CIDR), "gateway": ("gateway", _IP),
           "interface": ("interface", _INT)}
_ROUTE = {"dst": ("dst", _CIDR), "gw": ("gw", _IP), "mtu": ("mtu", _INT),
          "advmss": ("advmss", _INT), "priority": ("priority", _INT), "table": ("table", _INT),
          "scope": ("scope", _INT)}
_DNS = {"nameservers": ("nameservers", _STRS), "domain": ("domain", _STR),
        "search": ("search", _STRS), "options": ("options", _STRS)}
# The route attributes' ranges, as the kernel takes them (RTA_TABLE 0 would mean "main").
_ROUTE_RANGES = {"mtu": (0, _U32), "advmss": (0, _U32), "priority": (0, _U32),
                 "table": (1, _U32), "scope": (0, 255)}


class _Bad(Exception):
    """The value at `path` is unusable; the caller names the document and picks the code."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


def _error(code: int, what: str, bad: _Bad) -> CniError:
    return CniError(code, f"{what}: {bad.path}: {bad.problem}" if bad.path
                    else f"{what}: {bad.problem}")


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: object) -> str:
    """The JSON type of a value, for messages (never the value: it may be huge or hostile)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _family(address: str) -> int:
    """4 or 6 for an IP address in text form; ValueError otherwise."""
    if "/" in address:
        raise ValueError(f"invalid IP address {address!r}")
    from ..links import parse_address  # only when a result is read

    return parse_address(address)[0]


def _cidr(text: str) -> tuple[int, bytes, int]:
    from ..links import parse_address

    if "/" not in text:
        raise ValueError("no prefix length")  # parse_address would take a bare one as /32
    return parse_address(text)


def _value(value: object, kind: str, path: str) -> object:
    """`value` if it is of `kind`, else _Bad."""
    if kind == _INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == _STRS:
        if isinstance(value, list):
            for n, item in enumerate(value):
                if not isinstance(item, str):
                    raise _Bad(f"{path}[{n}]", f"expected a string, got {_kind(item)}")
            return list(value)
        raise _Bad(path, f"expected a list of strings, got {_kind(value)}")
    elif isinstance(value, str):
        if kind == _STR:
            return value
        try:
            _cidr(value) if kind == _CIDR else _family(value)
        except ValueError:
            if kind == _IP:
                raise _Bad(path, f"{value[:64]!r} is not {kind}") from None
            lacks = "lacks its prefix length" if "/" not in value else "is not a CIDR"
            raise _Bad(path, f"{value[:64]!r} {lacks} (like 10.1.2.3/24 or 2001:db8::3/64)"
                       ) from None
        return value
    raise _Bad(path, f"expected {kind}, got {_kind(value)}")


def _object(raw: object, path: str, keys: dict[str, tuple[str, str]],
            required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object's known keys, each value checked, under the spec's spelling; null, and "" for
    an IP (Go reads it as none), count as absent."""
    if not isinstance(raw, dict):
        raise _Bad(path, f"expected an object, got {_kind(raw)}")
    out: dict[str, Any] = {}
    for key, value in fields(raw).items():
        known = keys.get(key)
        if known is None or value is None or (value == "" and known[1] == _IP):
            continue
        name, kind = known
        out[name] = _value(value, kind, _at(path, name))
    for name in required:
        if name not in out:
            raise _Bad(_at(path, name), "required")
    return out


def _list(raw: object, path: str, keys: dict[str, tuple[str, str]],
          required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _Bad(path, f"expected a list, got {_kind(raw)}")
    return [_object(item, f"{path}[{n}]", keys, required) for n, item in enumerate(raw)]


def normalize(raw: object, what: str = "result", *, indexed: bool = True) -> Result:
    """A result of any supported version in the internal shape (a new object), or CniError
    code 6 "WHAT: PATH: problem". `indexed=False` skips the check that each ip's `interface`
    points into `interfaces` (an IPAM result: the bond's index replaces it)."""
    try:
        if not isinstance(raw, dict):
            raise _Bad("", f"expected a JSON object, got {_kind(raw)}")
        top = fields(raw)
        out: Result = {
            "interfaces": _list(top.get("interfaces"), "interfaces", _INTERFACE, ("name",)),
            "ips": _list(top.get("ips"), "ips", _IPCONF, ("address",)),
            "routes": _list(top.get("routes"), "routes", _ROUTE, ("dst",)),
            "dns": _dns(top.get("dns"), "dns"),
        }
        for n, ip in enumerate(out["ips"]):
            index = ip.get("interface")
            if index is not None and (index < 0 or (indexed and index >= len(out["interfaces"]))):
                raise _Bad(f"ips[{n}].interface", f"{index} is not the index of one of the "
                           f"{len(out['interfaces'])} interfaces")
    except _Bad as bad:
        raise _error(DECODE_FAILURE, what, bad) from None
    return out


def _dns(raw: object, path: str) -> dict[str, Any]:
    return {} if raw is None else _object(raw, path, _DNS)


def read_dns(raw: object, what: str, code: int) -> dict[str, Any]:
    """A DNS object (nameservers, domain, search, options) checked, as CniError `code`."""
    try:
        return _dns(raw, "")
    except _Bad as bad:
        raise _error(code, what, bad) from None


def check_for_kernel(result: Result, mtu: int | None, what: str = "ipam result") -> None:
    """Refuse, with code 7, what the kernel would refuse of a normalized result put on a link
    of `mtu` bytes (None: unknown): run it before the first address is configured."""
    try:
        for n, ip in enumerate(result["ips"]):
            family = _cidr(ip["address"])[0]
            _ipv6_fits(family, mtu, f"ips[{n}].address")
            _same_family(ip.get("gateway"), family, f"ips[{n}].gateway", "address")
        for n, route in enumerate(result["routes"]):
            _check_route(route, mtu, f"routes[{n}]")
    except _Bad as bad:
        raise _error(INVALID_CONFIG, what, bad) from None


def _check_route(route: dict[str, Any], mtu: int | None, path: str) -> None:
    family, raw, prefix = _cidr(route["dst"])
    _ipv6_fits(family, mtu, f"{path}.dst")
    if family == 4 and int.from_bytes(raw, "big") & ((1 << (32 - prefix)) - 1):
        network = int.from_bytes(raw, "big") & ~((1 << (32 - prefix)) - 1)
        raise _Bad(f"{path}.dst", f"{route['dst']} has host bits set (the network is "
                   f"{'.'.join(map(str, network.to_bytes(4, 'big')))}/{prefix})")
    _same_family(route.get("gw"), family, f"{path}.gw", "dst")
    for key, (low, high) in _ROUTE_RANGES.items():
        value = route.get(key)
        if value is not None and not low <= value <= high:
            raise _Bad(f"{path}.{key}", f"{value} is out of range ({low} to {high})")


def _ipv6_fits(family: int, mtu: int | None, path: str) -> None:
    if family == 6 and mtu is not None and mtu < IPV6_MIN_MTU:
        raise _Bad(path, f"IPv6 needs an MTU of at least {IPV6_MIN_MTU}; the bond's is {mtu}")


def _same_family(gateway: str | None, family: int, path: str, of: str) -> None:
    if gateway and _family(gateway) != family:
        raise _Bad(path, f"{gateway} is not an IPv{family} address like the {of}")


def _version_family(version: str) -> str:
    if version.startswith("0."):
        return "0"
    return "1.1" if version == "1.1.0" else "1.0"


def render(result: Result, version: str) -> Result:
    """The internal result as the runtime's cniVersion lays it out."""
    family = _version_family(version)
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
