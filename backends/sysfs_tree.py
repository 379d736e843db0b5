"""/sys/class/net as plain data, and that data as the model (Link, BondState).

`read_links` runs where /sys shows the namespace (see sysfs_netns) and returns only strings,
lists and dicts, so the result crosses the pipe as JSON. Everything that interprets the text
(`to_link`, `to_bonds`) runs in the caller and is pure.

What the files hold: numbers as decimal text, `flags` in hex, enum options as "name number"
("802.3ad 4"), flags as "on 1" or "1", address lists space-separated, primary / active_slave
as a name or nothing, the 802.3ad files (ad_*) empty outside 802.3ad; a slave's
bonding_slave/mii_status as "going down", its ad_aggregator_id as "N/A" outside 802.3ad.
Options without a file (ns_ip6_target, coupled_control) and a slave's prio are not seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from bondctl.model import BondState, Link, SlaveState
from bondctl.netlink.constants import IFF_UP
from bondctl.netns import Netns
from bondctl.options import (
    AD_INFO_FIELDS,
    MODE,
    SETTINGS,
    SLAVE_FIELDS,
    SLAVE_OPTIONS,
    Option,
    Value,
)

ROOT = "/sys/class/net"
_LINK_FILES = ("ifindex", "mtu", "address", "operstate", "flags")
_STATISTICS = ("rx_bytes", "tx_bytes")

Raw = dict[str, Any]


# -- in the namespace: files to strings ------------------------------------------------------
def read_text(path: str) -> str | None:
    """A sysfs file's text without the trailing newline; None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read().strip()
    except OSError:
        return None  # gone meanwhile, or a file this device does not implement (EOPNOTSUPP)


def _read_dir(path: str) -> dict[str, str]:
    try:
        names = os.listdir(path)
    except OSError:
        return {}
    files = {}
    for name in names:
        text = read_text(os.path.join(path, name))
        if text is not None:
            files[name] = text
    return files


def _uevent(text: str | None) -> dict[str, str]:
    pairs = (line.partition("=") for line in (text or "").splitlines())
    return {key: value for key, _, value in pairs}


def read_link(root: str, name: str, detail: bool) -> Raw | None:
    """One link's files; None if it vanished while being read."""
    base = os.path.join(root, name)
    raw: Raw = {"name": name}
    for file in _LINK_FILES:
        raw[file] = read_text(os.path.join(base, file))
    if raw["ifindex"] is None:
        return None
    try:
        raw["master"] = os.path.basename(os.readlink(os.path.join(base, "master")))
    except OSError:
        raw["master"] = None
    raw["devtype"] = _uevent(read_text(os.path.join(base, "uevent"))).get("DEVTYPE", "")
    for file in _STATISTICS:
        raw[file] = read_text(os.path.join(base, "statistics", file))
    if os.path.isdir(os.path.join(base, "bonding")) and detail:
        raw["bonding"] = _read_dir(os.path.join(base, "bonding"))
    if raw["master"] and os.path.isdir(os.path.join(base, "bonding_slave")):
        if detail:
            raw["bonding_slave"] = _read_dir(os.path.join(base, "bonding_slave"))
        else:
            perm = read_text(os.path.join(base, "bonding_slave", "perm_hwaddr"))
            raw["bonding_slave"] = {} if perm is None else {"perm_hwaddr": perm}
    return raw


def read_links(root: str = ROOT, detail: bool = False) -> list[Raw]:
    """Every link under `root`; with `detail`, every bonding file of bonds and slaves."""
    links = []
    for name in sorted(os.listdir(root)):
        if not os.path.isdir(os.path.join(root, name)):
            continue  # bonding_masters
        raw = read_link(root, name, detail)
        if raw is not None:
            links.append(raw)
    return links


# -- in the caller: strings to the model -----------------------------------------------------
def parse_option(opt: Option, text: str | None) -> Value | None:
    """The canonical value of a bonding/OPTION file; None when the file says nothing."""
    if text is None:
        return None
    text = text.strip()
    if opt.kind in ("ipv4list", "ipv6list", "ifname"):
        return opt.parse(text)  # empty means no targets, no primary, no active slave
    if not text:
        return None  # ad_* outside 802.3ad
    if opt.kind in ("enum", "flag"):
        text = text.split()[0]  # "802.3ad 4", "on 1": the name
    return opt.parse(text)


def bond_options(files: Mapping[str, str]) -> dict[str, Value]:
    """Every option the files report. Netlink-only options (no file) are not seen."""
    options: dict[str, Value] = {}
    for name, opt in SETTINGS.items():
        if opt.sysfs is None:
            continue
        value = parse_option(opt, files.get(opt.sysfs))
        if value is not None:
            options[name] = value
    return options


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text or "", 0)
    except ValueError:
        return default


def _flags(raw: Mapping[str, Any]) -> int:
    return _int(raw.get("flags"))


def _operstate(raw: Mapping[str, Any]) -> str:
    return str(raw.get("operstate") or "unknown").upper()


def to_link(raw: Mapping[str, Any]) -> Link:
    slave = raw.get("bonding_slave") or {}
    perm = slave.get("perm_hwaddr")
    return Link(
        name=raw["name"],
        index=_int(raw["ifindex"]),
        mtu=_int(raw.get("mtu")),
        mac=raw.get("address") or "",
        up=bool(_flags(raw) & IFF_UP),
        operstate=_operstate(raw),
        kind=raw.get("devtype") or "",
        master=raw.get("master"),
        perm_mac=perm if perm and perm != raw.get("address") else None,
        rx_bytes=_int(raw.get("rx_bytes")),
        tx_bytes=_int(raw.get("tx_bytes")),
    )


_SLAVE_SYSFS = {field.name: field.sysfs for field in SLAVE_FIELDS}


def to_slave(raw: Mapping[str, Any]) -> SlaveState:
    files: Mapping[str, str] = raw.get("bonding_slave") or {}

    def text(field: str) -> str:
        return files.get(_SLAVE_SYSFS[field], "")

    aggregator = text("ad_aggregator_id")
    # Per-slave options without a file (prio) read None: this reader cannot see them.
    options = {opt.name: _int(files.get(opt.sysfs)) if opt.sysfs else None
               for opt in SLAVE_OPTIONS.values()}
    return SlaveState(
        name=raw["name"],
        state=text("state").lower(),
        mii_status=text("mii_status").lower().replace(" ", "_"),  # "going down"
        link_failure_count=_int(text("link_failure_count")),
        perm_hwaddr=text("perm_hwaddr"),
        ad_aggregator_id=int(aggregator) if aggregator.isdigit() else None,  # or "N/A"
        up=bool(_flags(raw) & IFF_UP),
        operstate=_operstate(raw),
        mtu=_int(raw.get("mtu")),
        mac=raw.get("address") or "",
        **options,  # type: ignore[arg-type]
    )


def ad_info(files: Mapping[str, str]) -> dict[str, Value] | None:
    """The active aggregator (bonding/ad_*); None outside 802.3ad or without one."""
    info: dict[str, Value] = {}
    for name, _attr, wire in AD_INFO_FIELDS:
        text = files.get(f"ad_{name}", "")
        if not text:
            return None
        info[name] = text if wire == "mac" else _int(text)
    # Aggregator ids start at 1: the files say 0 when there is no active aggregator.
    return info if info.get("aggregator") else None


def to_bonds(links: Iterable[Mapping[str, Any]], netns: Netns) -> list[BondState]:
    links = list(links)
    by_master: dict[str, list[Mapping[str, Any]]] = {}
    for raw in links:
        if raw.get("master"):
            by_master.setdefault(raw["master"], []).append(raw)
    bonds = []
    for raw in links:
        files = raw.get("bonding")
        if files is None:
            continue
        slaves = sorted(by_master.get(raw["name"], []), key=lambda s: _int(s["ifindex"]))
        mode = parse_option(MODE, files.get(MODE.sysfs or MODE.name))
        bonds.append(BondState(
            name=raw["name"],
            mode=str(mode or MODE.default),
            options=bond_options(files),
            slaves=tuple(to_slave(s) for s in slaves),
            up=bool(_flags(raw) & IFF_UP),
            operstate=_operstate(raw),
            mtu=_int(raw.get("mtu")),
            mac=raw.get("address") or "",
            index=_int(raw["ifindex"]),
            ad_info=ad_info(files),
            netns=netns.name or netns.path,
        ))
    return bonds
