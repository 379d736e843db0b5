"""Which pyroute2 attribute carries each catalogue option: derived from both tables, not copied.

bondctl's catalogue (bondctl.plugin.OPTIONS) gives every option its IFLA_BOND_* number, its
wire type and its kernel / `ip -j` names. pyroute2 names the same attributes in its own tables
(pyroute2.netlink.rtnl.ifinfmsg.plugins.bond and ifinfmsg.ifinfo.bond_slave_data), indexed by
number. An option is carried when pyroute2's entry at the option's number is named
IFLA_BOND_<NAME> after the option's kernel name or its `ip -j` key; that second check keeps a
shifted table in some future pyroute2 from sending a value under the wrong attribute.

Importing this module is cheap; the pyroute2 tables are loaded on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, Protocol

from bondctl.plugin import AD_INFO_FIELDS, MODE, SETTINGS, SLAVE_FIELDS, SLAVE_OPTIONS

BOND_PREFIX = "IFLA_BOND_"
SLAVE_PREFIX = "IFLA_BOND_SLAVE_"
AD_INFO_PREFIX = "IFLA_BOND_AD_INFO_"


class Numbered(Protocol):
    """A catalogue entry: a row of OPTIONS or SLAVE_OPTIONS, or a SLAVE_FIELDS entry."""

    @property
    def name(self) -> str: ...
    @property
    def ifla(self) -> int: ...
    @property
    def json_key(self) -> str: ...


def by_number(nla_map: Sequence[Sequence[Any]]) -> dict[int, str]:
    """pyroute2's nla_map as {attribute number: name}; entries are (name, type) by position,
    or (number, name, type)."""
    out: dict[int, str] = {}
    for position, entry in enumerate(nla_map):
        if isinstance(entry[0], int):
            out[entry[0]] = str(entry[1])
        else:
            out[position] = str(entry[0])
    return out


def match(entries: Iterable[Numbered], nla_map: Sequence[Sequence[Any]], prefix: str
          ) -> dict[str, str]:
    """{catalogue name: pyroute2 attribute name} for the entries pyroute2 knows."""
    known = by_number(nla_map)
    found: dict[str, str] = {}
    for entry in entries:
        name = known.get(entry.ifla)
        if name in {prefix + entry.name.upper(), prefix + entry.json_key.upper()}:
            found[entry.name] = name
    return found


def _bond_class() -> Any:
    from pyroute2.netlink.rtnl.ifinfmsg.plugins.bond import bond

    return bond


def _slave_class() -> Any:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    return ifinfmsg.ifinfo.bond_slave_data


@cache
def bond_attributes() -> dict[str, str]:
    """Bond options (without mode, which every version has) pyroute2 can encode."""
    return match(SETTINGS.values(), _bond_class().nla_map, BOND_PREFIX)


@cache
def mode_attribute() -> str:
    return match([MODE], _bond_class().nla_map, BOND_PREFIX)[MODE.name]


@cache
def slave_option_attributes() -> dict[str, str]:
    return match(SLAVE_OPTIONS.values(), _slave_class().nla_map, SLAVE_PREFIX)


@cache
def slave_field_attributes() -> dict[str, str]:
    return match(SLAVE_FIELDS, _slave_class().nla_map, SLAVE_PREFIX)


@cache
def ad_info_attributes() -> dict[str, str]:
    """{field: pyroute2 name} for IFLA_BOND_AD_INFO's nested attributes."""
    known = by_number(_bond_class().ad_info.nla_map)
    return {name: known[number] for name, number, _ in AD_INFO_FIELDS
            if known.get(number) == AD_INFO_PREFIX + name.upper()}
