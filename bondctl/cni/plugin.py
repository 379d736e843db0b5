"""The CNI commands. Each reads top to bottom: parse, validate, act, result; each change made
by ADD pushes its undo first, so a failure anywhere leaves the host as it was."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import BondctlError
from ..netns import CURRENT, Netns
from . import result as results
from .config import NetConf, bond_spec
from .env import CniEnv
from .errors import (
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENV,
    IO_FAILURE,
    LIMITED_CONNECTIVITY,
    LINK_IN_USE,
    NOT_AVAILABLE,
    PLUGIN_FAILURE,
    UNKNOWN_CONTAINER,
    CniError,
    cni_code,
)
from .log import log
from .state import StateDir, attachment_key, link_lock_name

if TYPE_CHECKING:
    from ..backend import Backend
    from ..rtnl import Link as RtLink
    from ..rtnl import Rtnl

# The ADD steps, in order: BONDCTL_FAULT=<step> fails right after one, BONDCTL_FAULT_KILL=<step>
# kills the plugin there (tests of rollback and of DEL after a crash).
ADD_STEPS = ("record", "move", "bond", "ipam", "addresses", "result")
RECORD_VERSION = 1
LOCK_WAIT = 10.0  # seconds DEL and GC wait for an attachment or a link held by another run
_IFF_LOOPBACK = 0x8


def reached(step: str) -> None:
    log.debug(f"step {step} done")
    if os.environ.get("BONDCTL_FAULT") == step:
        raise CniError(PLUGIN_FAILURE, f"injected fault after step {step}")
    if os.environ.get("BONDCTL_FAULT_KILL") == step:
        os.kill(os.getpid(), signal.SIGKILL)


def select_backend(conf: NetConf) -> Backend:
    from ..registry import Registry  # pluggy and the backends load only when a change is due

    backend = Registry().select(conf.backend)
    log.debug(f"backend {backend.name}")
    return backend


def rtnl_open(netns: Netns) -> Rtnl:
    from ..rtnl import Rtnl

    return Rtnl.open(netns.path)


def open_pod(path: str) -> Netns:
    """The pod's namespace for ADD and CHECK: it must exist and be a network namespace."""
    from ..netns import resolve

    if not os.path.exists(path):
        raise CniError(UNKNOWN_CONTAINER, f"CNI_NETNS {path} does not exist")
    try:
        return resolve(path)
    except BondctlError as exc:
        raise CniError(INVALID_ENV, f"CNI_NETNS: {exc.msg}") from None


def alive_pod(path: str, ident: list[int] | None = None) -> Netns | None:
    """The pod's namespace if it still exists (and is the one recorded, when `ident` is)."""
    if not path:
        return None
    try:
        netns = open_pod(path)
        st = os.stat(path)
    except (CniError, OSError):
        return None
    if ident and [st.st_dev, st.st_ino] != ident:
        return None  # a reused /proc/PID path: not our pod any more
    return netns


def netns_ident(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_dev, st.st_ino]


class Undo:
    """Undo actions of the steps done so far, run newest first; one failing does not stop
    the others."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, action: Callable[[], object]) -> None:
        self.actions.append((what, action))

    def run(self) -> list[str]:
        failures = []
        for what, action in reversed(self.actions):
            try:
                action()
                log.info(f"undone: {what}")
            except Exception as exc:  # every undo must get its chance
                failures.append(f"{what}: {exc}")
                log.error(f"undo {what} failed: {exc}")
        self.actions.clear()
        return failures


# -- ADD ------------------------------------------------------------------------------------------
def cmd_add(env: CniEnv, conf: NetConf) -> dict[str, Any]:
    spec = bond_spec(conf, env.ifname)
    if conf.prev_result is not None:
        results.normalize(conf.prev_result, "prevResult")
    pod = open_pod(env.netns)
    store = StateDir(conf.state_dir)
    key = attachment_key(env.container_id, env.ifname)
    store.lock_or_busy(key, wait=LOCK_WAIT, what=f"attachment {env.container_id}/{env.ifname}")
    if store.read(key) is not None:
        raise CniError(INVALID_CONFIG, f"attachment {env.container_id}/{env.ifname} already "
                       "exists (a state record is present); DEL it first")
    host_names = [] if conf.links_in_container else sorted(spec.slave_names)
    for name in host_names:
        store.lock_or_busy(link_lock_name(name), wait=0, what=f"link {name}")
    links = check_links(spec, conf, pod, store)
    undo = Undo()
    try:
        return add(env, conf, spec, pod, store, key, links, undo)
    except BaseException as exc:
        failures = undo.run()
        if failures and isinstance(exc, BondctlError):
            exc.details = "; ".join(filter(None, [exc.details, "rollback: " + "; ".join(
                failures)]))
        raise


def add(env: CniEnv, conf: NetConf, spec: Any, pod: Netns, store: StateDir, key: str,
        links: list[dict[str, Any]], undo: Undo) -> dict[str, Any]:
    record = {"version": RECORD_VERSION, "network": conf.name, "containerID": env.container_id,
              "ifname": env.ifname, "netns": env.netns, "netnsId": netns_ident(env.netns),
              "bond": spec.name, "linksInContainer": conf.links_in_container, "links": links,
              "phase": "adding", "created": time.time()}
    undo.push("state record", lambda: store.remove(key))
    store.write(key, record)
    reached("record")

    backend = select_backend(conf)
    undo.push("links", lambda: restore_links(backend, links, pod, spec.name))
    move_in(backend, [link["name"] for link in links if link["host"]], pod)
    reached("move")

    unique_macs(backend, spec, pod)
    from ..ops import Bonds

    Bonds(backend, pod).create(spec)
    undo.push(f"bond {spec.name}", lambda: delete_bond(backend, pod, spec.name))
    log.info(f"bond {spec.name} created in {pod.label}: mode {spec.mode}, "
             f"slaves {', '.join(spec.slave_names)}")
    reached("bond")

    ipam_result = None
    if conf.ipam_type:
        from .ipam import Ipam

        ipam = Ipam(conf, env.path)
        undo.push(f"ipam {ipam.kind}", ipam.delete)  # SPEC: a failed ADD is followed by DEL
        ipam_result = ipam.add()
        reached("ipam")
        configure_addresses(pod, spec.name, ipam_result)
        reached("addresses")

    out = build_result(env, conf, pod, spec, ipam_result)
    record["phase"] = "added"
    store.write(key, record)
    reached("result")
    return out


def check_links(spec: Any, conf: NetConf, pod: Netns, store: StateDir) -> list[dict[str, Any]]:
    """Every link exists where it should, is free and can carry the bond's MTU; returns what
    the state record keeps of each, before anything changes."""
    with rtnl_open(pod) as sock:
        in_pod = {link.name: link for link in sock.list_links()}
    in_host: dict[str, RtLink] = {}
    if not conf.links_in_container:
        with rtnl_open(CURRENT) as sock:
            in_host = {link.name: link for link in sock.list_links()}
    if spec.name in in_pod:
        raise CniError(INVALID_CONFIG, f"CNI_IFNAME {spec.name} already exists in {pod.label}")
    where = "the pod" if conf.links_in_container else "the host network namespace"
    found = in_pod if conf.links_in_container else in_host
    out = []
    for name in spec.slave_names:
        link = found.get(name)
        if link is None:
            raise missing_link(name, where, store, conf)
        if link.master:
            raise CniError(LINK_IN_USE, f"link {name} is already enslaved (master index "
                           f"{link.master}) in {where}")
        if link.kind == "bond" or link.flags & _IFF_LOOPBACK:
            raise CniError(INVALID_CONFIG, f"links: {name} is a {link.kind or 'loopback'} "
                           "device and cannot be a bond slave")
        if not conf.links_in_container and name in in_pod:
            raise CniError(INVALID_CONFIG, f"links: the pod already has a link named {name}")
        if spec.mtu and link.mtu is not None and link.mtu < spec.mtu:
            raise CniError(INVALID_CONFIG, f"mtu: {spec.mtu} is above the MTU of link {name} "
                           f"({link.mtu}); a slave must carry the bond's MTU")
        out.append({"name": name, "host": not conf.links_in_container, "index": link.index,
                    "mtu": link.mtu, "mac": link.address, "permMac": link.perm_address,
                    "up": link.up})
    return out


def missing_link(name: str, where: str, store: StateDir, conf: NetConf) -> CniError:
    if not conf.links_in_container:
        for key in store.records():
            record = store.read(key) or {}
            if any(link.get("name") == name and link.get("host") for link in
                   record.get("links", [])):
                return CniError(LINK_IN_USE, f"link {name} is in use by attachment "
                                f"{record.get('containerID')}/{record.get('ifname')} of "
                                f"network {record.get('network')}")
    return CniError(INVALID_CONFIG, f"links: {name} does not exist in {where}")


def move_in(backend: Backend, names: list[str], pod: Netns) -> None:
    from ..steps import MoveLink

    for name in names:
        backend.execute([MoveLink(name, pod)], CURRENT)
        log.debug(f"moved {name} into {pod.label}")


def unique_macs(backend: Backend, spec: Any, pod: Netns) -> None:
    """balance-tlb and -alb refuse a slave whose MAC another slave has (EFAULT: "the slave hw
    address is in use by the bond"); SR-IOV VFs often share one. Such slaves get a random
    locally administered MAC here; DEL puts the recorded one back."""
    from ..options import ALB, TLB, mode_number
    from ..steps import SetLink

    if mode_number(spec.mode) not in (TLB, ALB):
        return
    with rtnl_open(pod) as sock:
        macs = {name: (sock.get_link(name) or _NO_LINK).address for name in spec.slave_names}
    seen: set[str | None] = set()
    for name, mac in macs.items():
        if mac in seen:
            raw = bytearray(os.urandom(6))
            raw[0] = (raw[0] & 0xFC) | 0x02  # unicast, locally administered
            new = raw.hex(":")
            backend.execute([SetLink(name, up=False), SetLink(name, mac=new)], pod)
            log.info(f"{name} shares MAC {mac} with another slave; using {new}")
            mac = new
        seen.add(mac)


class _NoLink:
    address = None


_NO_LINK = _NoLink()


def configure_addresses(pod: Netns, bond: str, ipam: dict[str, Any]) -> None:
    """IPAM's addresses and routes on the bond, as the reference plugins' ConfigureIface."""
    gateways: dict[bool, str] = {}
    with rtnl_open(pod) as sock:
        index = sock.index_of(bond)
        for ip in ipam["ips"]:
            sock.add_address(index, ip["address"])
            if ip.get("gateway"):
                gateways.setdefault(":" in ip["gateway"], ip["gateway"])
        for route in ipam["routes"]:
            dst = route["dst"]
            gateway = route.get("gw") or gateways.get(":" in dst)
            sock.add_route(dst, gateway, index, metric=route.get("priority"),
                           table=route.get("table"))
    log.debug(f"{bond}: addresses {', '.join(ip['address'] for ip in ipam['ips'])}")


def build_result(env: CniEnv, conf: NetConf, pod: Netns, spec: Any,
                 ipam: dict[str, Any] | None) -> dict[str, Any]:
    with rtnl_open(pod) as sock:
        bond = sock.get_link(spec.name)
        slaves = [sock.get_link(name) for name in spec.slave_names]
    assert bond is not None
    interfaces = [results.interface(s.name, s.address or "", env.netns)
                  for s in slaves if s is not None]
    out = results.add_result(conf.prev_result,
                             results.interface(bond.name, bond.address or "", env.netns,
                                               bond.mtu), interfaces, ipam, conf.dns)
    return results.render(out, conf.cni_version)


# -- undo / DEL / GC share these ------------------------------------------------------------------
def delete_bond(backend: Backend, pod: Netns, name: str) -> bool:
    """Release the slaves and delete the bond, if a bond of that name is there."""
    with rtnl_open(pod) as sock:
        link = sock.get_link(name)
    if link is None or link.kind != "bond":
        return False
    from ..ops import Bonds

    Bonds(backend, pod).delete(name, slaves_up=False)
    log.info(f"bond {name} deleted from {pod.label}")
    return True


def restore_links(backend: Backend, links: list[dict[str, Any]], pod: Netns | None,
                  bond: str) -> None:
    """Every link back where it came from, as it was; a vanished one does not stop the rest."""
    from ..steps import MoveLink, SetLink

    failures = []
    for link in links:
        name = link["name"]
        try:
            if pod is not None:
                with rtnl_open(pod) as sock:
                    here = sock.get_link(name)
                if here is not None and here.master:
                    backend.execute([SetLink(name, master="")], pod)
                if here is not None and link["host"]:
                    backend.execute([MoveLink(name, CURRENT)], pod)
                    log.debug(f"moved {name} back to the host")
                elif here is not None:
                    restore_attributes(backend, link, pod)
                    continue
            if link["host"]:
                restore_attributes(backend, link, CURRENT)
        except BondctlError as exc:
            failures.append(f"{name}: {exc.msg}")
    if failures:
        raise CniError(IO_FAILURE, "could not restore " + "; ".join(failures))


def restore_attributes(backend: Backend, link: dict[str, Any], where: Netns) -> None:
    """Name, MTU, MAC and admin state as recorded; a link found only by its permanent MAC
    (renamed when its namespace died) gets its name back."""
    from ..steps import SetLink

    with rtnl_open(where) as sock:
        links = sock.list_links()
    now = next((x for x in links if x.name == link["name"]), None)
    if now is None and link.get("permMac"):
        now = next((x for x in links if x.perm_address == link["permMac"]), None)
    if now is None:
        log.info(f"link {link['name']} is gone from {where.label}; nothing to restore")
        return
    mtu = link.get("mtu") if link.get("mtu") not in (None, now.mtu) else None
    mac = link.get("mac") if link.get("mac") not in (None, now.address) else None
    new_name = link["name"] if now.name != link["name"] else None
    steps = []
    if now.up and (mac or new_name):
        steps.append(SetLink(now.name, up=False))  # many drivers refuse a new MAC while up
    if mtu or mac or new_name:
        steps.append(SetLink(now.name, mtu=mtu, mac=mac, new_name=new_name))
    want_up = link.get("up")  # None: not recorded, leave it
    if want_up is None and (mac or new_name):
        want_up = now.up
    if want_up is not None and (want_up != now.up or (want_up and (mac or new_name))):
        steps.append(SetLink(link["name"], up=bool(want_up)))
    if steps:
        backend.execute(steps, where)
        log.debug(f"restored {link['name']} in {where.label}")


def teardown(backend: Backend, record: dict[str, Any] | None, conf: NetConf,
             pod: Netns | None, bond: str) -> None:
    """Everything a finished or half-done ADD made, undone from its record (or, without one,
    from the configuration: what bond-cni would do)."""
    failures = []
    if record is not None:
        links = list(record.get("links", []))
    else:
        links = adoptable_links(conf, pod, bond) if pod is not None else []
    if pod is not None:
        try:
            delete_bond(backend, pod, bond)
        except BondctlError as exc:
            failures.append(f"bond {bond}: {exc.msg}")
    try:
        restore_links(backend, links, pod, bond)
    except BondctlError as exc:
        failures.append(exc.msg)
    if failures:
        raise CniError(IO_FAILURE, "; ".join(failures))


def adoptable_links(conf: NetConf, pod: Netns, bond: str) -> list[dict[str, Any]]:
    """Without a record (state lost, or an attachment bond-cni made), only the configured links
    that are slaves of the bond are surely ours: those go back, their attributes unknown."""
    if conf.links_in_container:
        return []
    with rtnl_open(pod) as sock:
        links = sock.list_links()
    master = next((x.index for x in links if x.name == bond and x.kind == "bond"), None)
    wanted = {link.name for link in conf.links}
    return [{"name": x.name, "host": True, "up": None} for x in links
            if master is not None and x.master == master and x.name in wanted]


# -- DEL ------------------------------------------------------------------------------------------
def cmd_del(env: CniEnv, conf: NetConf) -> None:
    store = StateDir(conf.state_dir)
    key = attachment_key(env.container_id, env.ifname)
    store.lock_or_busy(key, wait=LOCK_WAIT, what=f"attachment {env.container_id}/{env.ifname}")
    record = store.read(key)
    ipam_error = None
    if conf.ipam_type:
        try:
            from .ipam import Ipam

            Ipam(conf, env.path).delete()
        except CniError as exc:
            ipam_error = exc  # reported after the links are home: they matter more
    pod = alive_pod(env.netns)
    if pod is None:
        log.info(f"pod network namespace {env.netns or '(none given)'} is gone")
    hosts = [link["name"] for link in (record or {}).get("links", []) if link.get("host")]
    for name in sorted(hosts):
        store.lock_or_busy(link_lock_name(name), wait=LOCK_WAIT, what=f"link {name}")
    if record is not None or pod is not None:
        teardown(select_backend(conf), record, conf, pod, env.ifname)
    store.remove(key)
    if ipam_error is not None:
        raise ipam_error


# -- CHECK ----------------------------------------------------------------------------------------
def cmd_check(env: CniEnv, conf: NetConf) -> None:
    if conf.cni_version.startswith(("0.1.", "0.2.", "0.3.")):
        raise CniError(INCOMPATIBLE_VERSION, f"CHECK needs cniVersion 0.4.0 or later, "
                       f"not {conf.cni_version}")
    spec = bond_spec(conf, env.ifname)
    if conf.prev_result is None:
        raise CniError(INVALID_CONFIG, "prevResult: CHECK needs the result of ADD")
    prev = results.normalize(conf.prev_result, "prevResult")
    pod = open_pod(env.netns)
    from ..model import diff
    from ..ops import Bonds

    try:
        state = Bonds(select_backend(conf), pod).show(spec.name)
    except BondctlError as exc:
        raise CniError(PLUGIN_FAILURE, f"bond {spec.name}: {exc.msg}") from None
    drifts = diff(spec, state)
    if drifts:
        raise CniError(PLUGIN_FAILURE, f"{spec.name} differs from its configuration: "
                       + "; ".join(map(str, drifts)))
    check_addresses(env, pod, spec.name, prev)
    if conf.ipam_type:
        from .ipam import Ipam

        Ipam(conf, env.path).check()


def check_addresses(env: CniEnv, pod: Netns, bond: str, prev: dict[str, Any]) -> None:
    from ..rtnl import AF_INET, AF_INET6

    ours = {i for i, iface in enumerate(prev["interfaces"])
            if iface.get("name") == bond and iface.get("sandbox") in (None, "", env.netns)}
    with rtnl_open(pod) as sock:
        index = sock.index_of(bond)
        have = {a for _, _, a in sock.list_addresses(index)}
        routes = sock.list_routes(AF_INET) + sock.list_routes(AF_INET6)
    for ip in prev["ips"]:
        if ip.get("interface") in ours and ip["address"] not in have:
            raise CniError(PLUGIN_FAILURE, f"{bond} lacks address {ip['address']} "
                           f"(has: {', '.join(sorted(have)) or 'none'})")
    present = {(_route_dst(r.dst), r.gateway) for r in routes}
    for route in prev["routes"]:
        dst, gw = _route_dst(route["dst"]), route.get("gw")
        if not any(d == dst and (gw is None or g == gw) for d, g in present):
            raise CniError(PLUGIN_FAILURE, f"route to {route['dst']}"
                           f"{' via ' + gw if gw else ''} is missing in the pod")


def _route_dst(dst: str) -> str:
    return "default" if dst in ("0.0.0.0/0", "::/0") else dst


# -- STATUS and GC --------------------------------------------------------------------------------
def bonding_available() -> str | None:
    """None when the kernel can make bonds; otherwise why not."""
    if os.path.exists("/sys/module/bonding"):
        return None
    import shutil
    import subprocess

    modprobe = shutil.which("modprobe")
    if modprobe and subprocess.run([modprobe, "-n", "-q", "bonding"], capture_output=True,
                                   check=False).returncode == 0:
        return None
    return "the bonding driver is not loaded and cannot be loaded"


def cmd_status(env: CniEnv, conf: NetConf) -> None:
    why = bonding_available()
    if why:
        raise CniError(NOT_AVAILABLE, why)
    try:
        select_backend(conf)
    except BondctlError as exc:
        raise CniError(NOT_AVAILABLE, exc.msg) from None
    if conf.ipam_type:
        from .ipam import Ipam

        try:
            Ipam(conf, env.path).forward("STATUS")
        except CniError as exc:
            code = exc.cni_code if exc.cni_code in (NOT_AVAILABLE, LIMITED_CONNECTIVITY) \
                else NOT_AVAILABLE
            raise CniError(code, exc.msg, details=exc.details) from None


def cmd_gc(env: CniEnv, conf: NetConf) -> None:
    valid = set(conf.valid_attachments or ())
    store = StateDir(conf.state_dir)
    failures = []
    backend: Backend | None = None
    for key in store.records():
        record = store.read(key) or {}
        if record.get("network") != conf.name:
            continue  # another network's attachment: its own GC decides
        if (record.get("containerID"), record.get("ifname")) in valid:
            continue
        if not store.lock(key, wait=0, what=f"attachment {key}"):
            continue  # an ADD or DEL is on it right now
        fresh = store.read(key)
        if fresh is None:
            continue
        record = fresh
        log.info(f"GC: removing stale attachment {record.get('containerID')}/"
                 f"{record.get('ifname')}")
        pod = alive_pod(str(record.get("netns", "")), record.get("netnsId"))
        backend = backend or select_backend(conf)
        try:
            teardown(backend, record, conf, pod, str(record.get("bond", "")))
        except BondctlError as exc:
            failures.append(f"{key}: {exc.msg}")
            continue
        store.remove(key)
    if conf.ipam_type:
        from .ipam import Ipam

        Ipam(conf, env.path).forward("GC")
    if failures:
        raise CniError(IO_FAILURE, "GC could not clean up " + "; ".join(failures))


COMMANDS: dict[str, Callable[[CniEnv, NetConf], Any]] = {
    "ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status, "GC": cmd_gc,
}


def run(env: CniEnv, conf: NetConf) -> Any:
    log.debug(f"{env.command} network {conf.name} container {env.container_id or '-'} "
              f"ifname {env.ifname or '-'} netns {env.netns or '-'}")
    started = time.monotonic()
    try:
        return COMMANDS[env.command](env, conf)
    finally:
        log.debug(f"{env.command} took {time.monotonic() - started:.3f} s")


__all__ = ["ADD_STEPS", "COMMANDS", "cni_code", "run"]
