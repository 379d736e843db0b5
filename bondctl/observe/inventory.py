"""Every bond attachment on the node: the CNI's state records joined with what the kernel says
inside each pod's namespace, and one health verdict per attachment.

A record names its namespace by path and by identity (st_dev, st_ino of the nsfs inode); a path
that is gone, or now leads to another namespace, makes the record "gone" (a DEL or GC that
never came). A record that cannot be trusted, one whose ADD never finished, or one whose bond is
no longer in a namespace that still exists is "stale". Otherwise the bond is read with the
netlink backend's own decoder and judged: "down", "degraded" or "ok", with the reason. Bonds in
the node's own namespace are listed too, as host bonds (no record describes them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bondctl import netlink as rtnl
from bondctl.backends.netlink import BOND_KIND, to_bond  # type: ignore[import-not-found]
from bondctl.errors import ValidationError
from bondctl.health import NO_PARTNER, health
from bondctl.model import BondState
from bondctl.netns import Netns
from bondctl.options import needs_active_slave

from .speed import speed_mbps

# The bond is decoded by the netlink backend's to_bond, the one reader of a bond (mypy does
# not map the installed bondctl.backends to backends/, hence the ignore above).
DEFAULT_STATE_DIR = "/var/lib/cni/bond"
VERDICTS = ("ok", "degraded", "down", "stale", "gone")
HOST_NETNS = "/proc/self/ns/net"


@dataclass(frozen=True)
class Attachment:
    """Who a bond belongs to: from a state record, or the host itself."""

    interface: str
    network: str = ""
    container_id: str = ""
    netns: str | None = None  # the path ADD was given; None: the node's own namespace
    netns_id: tuple[int, int] | None = None
    bond_index: int | None = None
    configured: tuple[str, ...] = ()  # the slaves ADD put in the bond
    pod_name: str = ""
    pod_namespace: str = ""
    key: str = ""  # the record's name in the state directory
    host: bool = False
    phase: str = "added"

    @property
    def ident(self) -> str:
        """Unique on the node: one attachment, one row, one set of series."""
        return f"host:{self.interface}" if self.host else f"{self.key}"

    def labels(self) -> dict[str, str]:
        return {"network": self.network,
                "netns_inode": str(self.netns_id[1]) if self.netns_id else "",
                "container_id": self.container_id, "interface": self.interface,
                "pod": self.pod_name, "pod_namespace": self.pod_namespace}


@dataclass(frozen=True)
class PodBond:
    """One row of `bondctl pods`: the attachment, its bond as read, and the verdict."""

    attachment: Attachment
    health: str  # one of VERDICTS
    reason: str
    state: BondState | None = None
    speeds: Mapping[str, int | None] = field(default_factory=dict)  # Mb/s per slave
    failovers: int | None = None  # counted by the monitor from link events; None one-shot
    partner_changes: int | None = None  # likewise: LACP partner lost or changed

    @property
    def slaves_up(self) -> int:
        return sum(1 for s in self.state.slaves if s.mii_status == "up") if self.state else 0

    @property
    def slaves_configured(self) -> int:
        if self.attachment.host:
            return len(self.state.slaves) if self.state else 0
        return len(self.attachment.configured)

    def to_json(self) -> dict[str, Any]:
        att, state = self.attachment, self.state
        ad = dict(state.ad_info) if state and state.ad_info else None
        return {
            "host": att.host, "network": att.network or None,
            "container_id": att.container_id or None,
            "pod": ({"name": att.pod_name, "namespace": att.pod_namespace}
                    if att.pod_name else None),
            "netns": att.netns, "netns_inode": att.netns_id[1] if att.netns_id else None,
            "interface": att.interface, "record": att.key or None,
            "health": self.health, "reason": self.reason,
            "mode": state.mode if state else None,
            "up": state.up if state else None,
            "active_slave": state.active_slave if state else None,
            "slaves_configured": self.slaves_configured, "slaves_up": self.slaves_up,
            "slaves": [{"name": s.name, "state": s.state, "mii_status": s.mii_status,
                        "link_failure_count": s.link_failure_count,
                        "ad_aggregator_id": s.ad_aggregator_id,
                        "speed_mbps": self.speeds.get(s.name)}
                       for s in (state.slaves if state else ())],
            "ad": ({"aggregator": ad.get("aggregator"), "num_ports": ad.get("num_ports"),
                    "partner_mac": ad.get("partner_mac")} if ad else None),
            "failovers": self.failovers, "partner_changes": self.partner_changes,
        }


# -- records ------------------------------------------------------------------------------------
def from_record(key: str, record: Mapping[str, Any]) -> Attachment:
    pod = record.get("pod") or {}
    dev, ino = record["netnsId"]
    return Attachment(
        interface=record["ifname"], network=record["network"],
        container_id=record["containerID"], netns=record["netns"], netns_id=(dev, ino),
        bond_index=record.get("bondIndex"),
        configured=tuple(link["name"] for link in record["links"]),
        pod_name=pod.get("name", ""), pod_namespace=pod.get("namespace", ""), key=key,
        phase=record["phase"])


def read_records(state_dir: str) -> tuple[list[Attachment], list[PodBond]]:
    """The attachments the records describe, and a stale row for each record that cannot be
    trusted. A state directory that does not exist holds no records (a node without pods)."""
    from bondctl.cni.errors import CniError
    from bondctl.cni.state import BadRecord, StateDir

    if not os.path.isabs(state_dir):
        raise ValidationError(f"--state-dir {state_dir!r} must be an absolute path")
    if not os.path.isdir(state_dir):
        return [], []
    try:
        store = StateDir(state_dir)
    except CniError as exc:
        raise ValidationError(f"--state-dir: {exc.msg}") from None
    found: list[Attachment] = []
    bad: list[PodBond] = []
    try:
        for key in store.records():
            try:
                record = store.read(key)
            except BadRecord as exc:
                bad.append(PodBond(Attachment(interface="", key=key), "stale", exc.msg))
                continue
            if record is not None:  # removed by a DEL since the listing
                found.append(from_record(key, record))
    finally:
        store.close()
    return found, bad


# -- the kernel's side --------------------------------------------------------------------------
def find_bond(att: Attachment, links: Iterable[rtnl.LinkMessage]) -> rtnl.LinkMessage | None:
    """The bond ADD made: by its ifindex in the pod (a name can be reused; an index is not,
    while the namespace lives); a host bond by name."""
    for link in links:
        if link.kind != BOND_KIND:
            continue
        if att.host and link.name == att.interface:
            return link
        if not att.host and att.bond_index is not None and link.index == att.bond_index:
            return link
    return None


def read_bond(att: Attachment, links: list[rtnl.LinkMessage]) -> BondState | None:
    link = find_bond(att, links)
    if link is None:
        return None
    names = {found.index: found.name for found in links}
    state: BondState = to_bond(link, links, names, Netns(att.netns, None))
    return state


def judge(att: Attachment, state: BondState | None) -> tuple[str, str]:
    """(verdict, reason) for a bond read in a namespace that exists."""
    if att.phase != "added":
        return "stale", "ADD never finished (phase adding): a DEL or GC will clean up"
    if state is None:
        where = f"ifindex {att.bond_index}" if att.bond_index else "no ifindex recorded"
        return "stale", f"the namespace has no bond {att.interface} ({where}) any more"
    missing = [name for name in att.configured if name not in state.slave_names]
    texts = [f"slave {name} is no longer in the bond" for name in missing]
    texts += [p.text for p in health(state)]
    up = sum(1 for s in state.slaves if s.mii_status == "up")
    if (not state.up or state.operstate not in ("UP", "UNKNOWN") or up == 0
            or (needs_active_slave(state.mode) and not state.active_slave)):
        return "down", "; ".join(texts) or f"{state.name} is down"
    if texts:
        return "degraded", "; ".join(texts)
    partner = (state.ad_info or {}).get("partner_mac")
    with_partner = f", LACP partner {partner}" if partner and partner != NO_PARTNER else ""
    return "ok", f"{up}/{len(state.slaves)} slaves up{with_partner}"


def slave_speeds(fd: int, state: BondState | None) -> dict[str, int | None]:
    return {s.name: speed_mbps(fd, s.name) for s in (state.slaves if state else ())}


def look(att: Attachment) -> PodBond:
    """One attachment, read now (what `bondctl pods` shows)."""
    from bondctl.cni.pods import pin_recorded, unpin

    if att.host:
        return _look_in(att, None)
    netns = pin_recorded(att.netns or "", list(att.netns_id or ()))
    if netns is None:
        return PodBond(att, "gone", f"namespace {att.netns} no longer exists (or is another "
                       "one now): the record outlived its pod, a DEL or GC removes it")
    try:
        return _look_in(att, netns.path)
    finally:
        unpin(netns)


def _look_in(att: Attachment, path: str | None) -> PodBond:
    try:
        with rtnl.Rtnl.open(path) as sock:
            links = sock.list_links()
            state = read_bond(att, links)
            verdict, reason = judge(att, state)
            return PodBond(att, verdict, reason, state, slave_speeds(sock.fileno(), state))
    except OSError as exc:
        return PodBond(att, "stale", f"cannot read the namespace: {exc.strerror or exc}")


def host_attachments(links: Iterable[rtnl.LinkMessage]) -> list[Attachment]:
    ident = os.stat(HOST_NETNS)
    return [Attachment(interface=link.name, netns_id=(ident.st_dev, ident.st_ino), host=True,
                       bond_index=link.index)
            for link in links if link.kind == BOND_KIND]


def host_bonds() -> list[Attachment]:
    with rtnl.Rtnl.open() as sock:
        return host_attachments(sock.list_links())


def survey(state_dir: str, *, host: bool = True) -> list[PodBond]:
    """Every attachment of the node, read now: the records' first (sorted by pod, then
    network), then the host's bonds."""
    found, bad = read_records(state_dir)
    rows = [look(att) for att in sorted(found, key=sort_key)] + bad
    if host:
        rows += [look(att) for att in host_bonds()]
    return rows


def sort_key(att: Attachment) -> tuple[str, ...]:
    return (str(att.host), att.pod_namespace, att.pod_name, att.network, att.container_id,
            att.interface)
