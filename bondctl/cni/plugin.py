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
from ..options import ineffective
from . import pods
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
    STATE_DIFFERS,
    CniError,
    cni_code,
)
from .log import log
from .state import BadRecord, StateDir, attachment_key, link_lock_name

if TYPE_CHECKING:
    from ..backend import Backend
    from ..netlink import Link as RtLink
    from ..netlink import Rtnl

# The ADD steps, in order: BONDCTL_FAULT=<step> fails right after one, BONDCTL_FAULT_KILL=<step>
# kills the plugin there (tests of rollback and of DEL after a crash).
ADD_STEPS = ("record", "move", "bond", "ipam", "addresses", "result")
RECORD_VERSION = 2
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
    from ..netlink import Rtnl

    return Rtnl.open(netns.path)


def ns_fd(netns: Netns) -> int:
    """An fd on `netns` for IFLA_NET_NS_FD; the caller closes it."""
    from ..netlink import open_netns

    return open_netns(netns.path or "/proc/self/ns/net")


def kernel_failure(exc: OSError, what: str) -> CniError:
    from .errors import kernel_error

    return kernel_error(exc, what)


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
                failures.append(f"{what}: {getattr(exc, 'msg', exc)}")
                log.error(f"undo {what} failed: {getattr(exc, 'msg', exc)}")
        self.actions.clear()
        return failures


# -- ADD ------------------------------------------------------------------------------------------
def cmd_add(env: CniEnv, conf: NetConf) -> dict[str, Any]:
    spec = bond_spec(conf, env.ifname)
    for _, why in ineffective(spec.mode, spec.options):
        log.warning(why)  # applied all the same: the catalogue's rule, as in the CLI
    if conf.prev_result is not None:
        results.normalize(conf.prev_result, "prevResult")
    pod, pod_id = pods.pin(env.netns)
    store = StateDir(conf.state_dir)
    key = attachment_key(env.container_id, env.ifname)
    store.lock_or_busy(key, wait=LOCK_WAIT, what=f"attachment {env.container_id}/{env.ifname}")
    if present(store, key):
        raise CniError(INVALID_CONFIG, f"attachment {env.container_id}/{env.ifname} already "
                       "exists (a state record is present); DEL it first")
    host_names = [] if conf.links_in_container else sorted(spec.slave_names)
    for name in host_names:
        store.lock_or_busy(link_lock_name(name), wait=0, what=f"link {name}")
    links = check_links(spec, conf, pod, store)
    record = {"version": RECORD_VERSION, "network": conf.name, "containerID": env.container_id,
              "ifname": env.ifname, "netns": env.netns, "netnsId": pod_id, "bond": spec.name,
              "bondIndex": None, "linksInContainer": conf.links_in_container, "links": links,
              "phase": "adding", "created": time.time(), **pod_labels(env)}
    undo = Undo()
    try:
        return add(env, conf, spec, pod, store, key, record, undo)
    except BaseException as exc:
        failures = undo.run()
        if failures and isinstance(exc, BondctlError):
            exc.details = "; ".join(filter(None, [exc.details, "rollback: " + "; ".join(
                failures)]))
        raise


def add(env: CniEnv, conf: NetConf, spec: Any, pod: Netns, store: StateDir, key: str,
        record: dict[str, Any], undo: Undo) -> dict[str, Any]:
    undo.push("state record", lambda: store.remove(key))
    store.write(key, record)
    reached("record")

    undo.push("links", lambda: raise_failures(teardown(record, pod)))
    move_in(record["links"], pod)
    store.write(key, record)  # the links' indexes in the pod: what DEL will know them by
    reached("move")

    backend = select_backend(conf)
    unique_macs(backend, spec, pod)
    from ..ops import Bonds

    Bonds(backend, pod).create(spec)
    with rtnl_open(pod) as sock:
        record["bondIndex"] = sock.index_of(spec.name)
    store.write(key, record)
    log.info(f"bond {spec.name} created in {env.netns}: mode {spec.mode}, "
             f"slaves {', '.join(spec.slave_names)}")
    reached("bond")

    ipam_result = None
    if conf.ipam_type:
        from .ipam import Ipam

        ipam = Ipam(conf, env.path)
        undo.push(f"ipam {ipam.kind}", ipam.delete)  # SPEC: a failed ADD is followed by DEL
        ipam_result = ipam.add()
        reached("ipam")
        configure_addresses(pod, spec, ipam_result)
        reached("addresses")

    out = build_result(env, conf, pod, spec, ipam_result)
    record["phase"] = "added"
    store.write(key, record)
    reached("result")
    return out


def present(store: StateDir, key: str) -> bool:
    try:
        return store.read(key) is not None
    except BadRecord:
        return True


def pod_labels(env: CniEnv) -> dict[str, Any]:
    """The Kubernetes pod the runtime named in CNI_ARGS, kept for `bondctl pods` and metrics."""
    name, namespace = env.args.get("K8S_POD_NAME"), env.args.get("K8S_POD_NAMESPACE")
    if name and namespace and len(name) <= 253 and len(namespace) <= 253:
        return {"pod": {"name": name, "namespace": namespace}}
    return {}


def check_links(spec: Any, conf: NetConf, pod: Netns, store: StateDir
                ) -> list[dict[str, Any]]:
    """Every link exists where it should, is free and can carry the bond's MTU; returns what
    the state record keeps of each (its identity and how it was), before anything changes."""
    with rtnl_open(pod) as sock:
        in_pod = {link.name: link for link in sock.list_links()}
    in_host: dict[str, RtLink] = {}
    host_all: list[RtLink] = []
    if not conf.links_in_container:
        with rtnl_open(CURRENT) as sock:
            host_all = sock.list_links()
        in_host = {link.name: link for link in host_all}
    if spec.name in in_pod:
        raise CniError(INVALID_CONFIG, f"CNI_IFNAME {spec.name} already exists in the pod")
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
        entry = {"name": name, "host": not conf.links_in_container, "index": link.index,
                 "podIndex": link.index if conf.links_in_container else None,
                 "kind": link.kind, "mtu": link.mtu, "mac": link.address,
                 "permMac": link.perm_address, "up": link.up}
        if not conf.links_in_container:
            entry.update(survey_host_link(link, host_all, conf))
        out.append(entry)
    return out


def missing_link(name: str, where: str, store: StateDir, conf: NetConf) -> CniError:
    if not conf.links_in_container:
        for key in store.records():
            try:
                record = store.read(key)
            except BadRecord:
                continue
            if record and any(link["name"] == name and link["host"]
                              for link in record["links"]):
                return CniError(LINK_IN_USE, f"link {name} is in use by attachment "
                                f"{record['containerID']}/{record['ifname']} of "
                                f"network {record['network']}")
    return CniError(INVALID_CONFIG, f"links: {name} does not exist in {where}")


def survey_host_link(link: RtLink, links: list[RtLink], conf: NetConf) -> dict[str, Any]:
    """What the host would lose with the link (addresses, routes, sysctls, uppers' state);
    a link that carries the node's addresses or routes is refused unless the config allows."""
    from . import hostlinks

    with rtnl_open(CURRENT) as sock:
        found = hostlinks.survey(sock, link, links)
    hostlinks.refuse_unsafe(link.name, found, allow=conf.allow_addressed_links)
    return found


def move_in(links: list[dict[str, Any]], pod: Netns) -> None:
    """Host links into the pod by ifindex, each then known by its index there."""
    host = [link for link in links if link["host"]]
    if not host:
        return
    fd = ns_fd(pod)
    try:
        with rtnl_open(CURRENT) as sock:
            for link in host:
                try:
                    sock.set_link(link["index"], up=False, netns_fd=fd)
                except OSError as exc:
                    raise kernel_failure(exc, f"moving link {link['name']} into the pod"
                                         ) from None
                log.debug(f"moved {link['name']} into the pod")
    finally:
        os.close(fd)
    with rtnl_open(pod) as sock:
        for link in host:
            here = sock.get_link(link["name"])
            if here is None or not same_link(here, link):
                raise CniError(IO_FAILURE, f"link {link['name']} is not in the pod after "
                               "the move")
            link["podIndex"] = here.index


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


def configure_addresses(pod: Netns, spec: Any, ipam: dict[str, Any]) -> None:
    """IPAM's addresses and routes on the bond, as the reference plugins' ConfigureIface."""
    gateways: dict[bool, str] = {}
    with rtnl_open(pod) as sock:
        bond = sock.get_link(spec.name)
        if bond is None:
            raise CniError(IO_FAILURE, f"bond {spec.name} vanished from the pod")
        results.check_for_kernel(ipam, bond.mtu)
        for ip in ipam["ips"]:
            try:
                sock.add_address(bond.index, ip["address"])
            except OSError as exc:
                raise kernel_failure(exc, f"ipam address {ip['address']}") from None
            if ip.get("gateway"):
                gateways.setdefault(":" in ip["gateway"], ip["gateway"])
        for route in ipam["routes"]:
            dst = route["dst"]
            gateway = route.get("gw") or gateways.get(":" in dst)
            try:
                sock.add_route(dst, gateway, bond.index, metric=route.get("priority"),
                               table=route.get("table"))
            except OSError as exc:
                raise kernel_failure(exc, f"ipam route to {dst}") from None
    log.debug(f"{spec.name}: addresses {', '.join(ip['address'] for ip in ipam['ips'])}")


def build_result(env: CniEnv, conf: NetConf, pod: Netns, spec: Any,
                 ipam: dict[str, Any] | None) -> dict[str, Any]:
    with rtnl_open(pod) as sock:
        bond = sock.get_link(spec.name)
        slaves = [sock.get_link(name) for name in spec.slave_names]
    if bond is None:
        raise CniError(IO_FAILURE, f"bond {spec.name} vanished from the pod")
    interfaces = [results.interface(s.name, s.address or "", env.netns)
                  for s in slaves if s is not None]
    out = results.add_result(conf.prev_result,
                             results.interface(bond.name, bond.address or "", env.netns,
                                               bond.mtu), interfaces, ipam, conf.dns)
    return results.render(out, conf.cni_version)


# -- undo / DEL / GC share these: everything found by identity, never by name alone -----------
def same_link(here: RtLink, link: dict[str, Any]) -> bool:
    """Is `here` the link the record describes? Kind and permanent MAC must match: a pod can
    rename links and make new ones, but not forge a kind or a NIC's permanent address."""
    return here.kind == link.get("kind") and (
        not link.get("permMac") or here.perm_address == link["permMac"])


def find_in_pod(in_pod: dict[int, RtLink], link: dict[str, Any],
                legacy: bool) -> RtLink | None:
    if legacy:  # a version 1 record knows links by name (and permanent MAC) only
        return next((x for x in in_pod.values() if x.name == link["name"] and (
            not link.get("permMac") or x.perm_address == link["permMac"])), None)
    # Killed between the move and the record's update: a moved link keeps its index when the
    # pod has it free, which a fresh pod does.
    here = in_pod.get(link.get("podIndex") or link["index"])
    return here if here is not None and same_link(here, link) else None


def recorded_bond(in_pod: dict[int, RtLink], record: dict[str, Any],
                  ours: list[RtLink | None]) -> RtLink | None:
    """The bond ADD made: by its recorded index; before that was recorded, the bond of the
    recorded name that is the master of one of our links."""
    index = record.get("bondIndex")
    if index:
        bond = in_pod.get(index)
        return bond if bond is not None and bond.kind == "bond" else None
    for here in ours:
        master = in_pod.get(here.master) if here is not None and here.master else None
        if master is not None and master.kind == "bond" and master.name == record["bond"]:
            return master
    return None


def raise_failures(failures: list[str]) -> None:
    if failures:
        raise CniError(IO_FAILURE, "could not restore " + "; ".join(failures))


def teardown(record: dict[str, Any], pod: Netns | None) -> list[str]:
    """Undo what the record says ADD did: delete our bond in the pod, give host links back to
    the host and pod links their old attributes. A link that is not (or no longer) the one
    recorded is left where it is and reported; returns what could not be done."""
    failures: list[str] = []
    home: list[tuple[dict[str, Any], str | None]] = []  # host links: (record, name now)
    if pod is not None:
        failures += teardown_in_pod(record, pod, home)
    else:
        home = [(link, None) for link in record["links"] if link["host"]]
    if home:
        failures += restore_in_host(home)
    return failures


def teardown_in_pod(record: dict[str, Any], pod: Netns,
                    home: list[tuple[dict[str, Any], str | None]]) -> list[str]:
    failures = []
    legacy = record.get("version") == 1
    with rtnl_open(pod) as sock:
        in_pod = {x.index: x for x in sock.list_links()}
        ours = [find_in_pod(in_pod, link, legacy) for link in record["links"]]
        bond = recorded_bond(in_pod, record, ours)
        if bond is not None:
            try:
                sock.del_link(bond.index)
                log.info(f"bond {bond.name} deleted from the pod")
            except OSError as exc:
                failures.append(f"bond {bond.name}: {exc.strerror}")
        fd = ns_fd(CURRENT) if any(link["host"] for link in record["links"]) else -1
        try:
            for link, here in zip(record["links"], ours, strict=True):
                if here is None:
                    log.warning(f"link {link['name']} (index {link.get('podIndex')}) is not in "
                                "the pod as recorded; left where it is")
                    if link["host"]:
                        home.append((link, None))  # it may have come home by itself
                    continue
                try:
                    if here.master and (bond is None or here.master != bond.index):
                        sock.set_link(here.index, master=0)
                    if link["host"]:
                        # A name no pod can have chosen, so the host finds it unambiguously
                        # and no host link's name can clash with it.
                        temp = "bcni" + os.urandom(5).hex()
                        sock.set_link(here.index, up=False, netns_fd=fd, ifname=temp)
                        log.debug(f"moved {link['name']} back to the host")
                        home.append((link, temp))
                    else:
                        restore_attributes(sock, sock.get_link(here.index), link)
                except OSError as exc:
                    failures.append(f"{link['name']}: {exc.strerror}")
        finally:
            if fd >= 0:
                os.close(fd)
    return failures


def restore_in_host(home: list[tuple[dict[str, Any], str | None]]) -> list[str]:
    """Host links as they were: name, MTU, MAC, admin state, and what the host lost with
    them (addresses, routes, sysctls, uppers' state). A link we did not move back (its pod is
    gone) is looked for by permanent MAC, or by its recorded index and kind."""
    from . import hostlinks

    failures = []
    with rtnl_open(CURRENT) as sock:
        links = sock.list_links()
        for link, temp in home:
            if temp is not None:
                now = next((x for x in links if x.name == temp), None)
            elif link.get("permMac"):
                now = next((x for x in links if x.perm_address == link["permMac"]), None)
            else:  # back at the index it had: a link keeps its index when that one is free
                now = next((x for x in links if x.index == link["index"]
                            and same_link(x, link) and not x.master), None)
            if now is None:
                log.info(f"link {link['name']} is gone; nothing to restore")
                continue
            try:
                restore_attributes(sock, now, link)
            except OSError as exc:
                failures.append(f"{link['name']}: {exc.strerror}")
                continue
            failures += hostlinks.restore(sock, now.index, link)
    return failures


def restore_attributes(sock: Rtnl, now: RtLink | None, link: dict[str, Any]) -> None:
    """Name, MTU, MAC and admin state as recorded."""
    if now is None:
        return
    mtu = link.get("mtu") if link.get("mtu") not in (None, now.mtu) else None
    mac = link.get("mac") if link.get("mac") not in (None, now.address) else None
    new_name = link["name"] if now.name != link["name"] else None
    down = now.up and bool(mac or new_name)
    if down:  # many drivers refuse a new MAC while up
        sock.set_link(now.index, up=False)
    if mtu or mac or new_name:
        sock.set_link(now.index, mtu=mtu, address=mac, ifname=new_name)
    want_up = link.get("up")  # None: not recorded, leave it as it was
    if want_up is None:
        want_up = now.up
    if bool(want_up) != (now.up and not down):
        sock.set_link(now.index, up=bool(want_up))
    log.debug(f"restored {link['name']}")


def fallback_links(conf: NetConf, pod: Netns, bond: str) -> dict[str, Any] | None:
    """When the record is unreadable, the configuration is all there is: the bond named
    CNI_IFNAME in the pod, and the configured links that are its slaves (for host links)."""
    with rtnl_open(pod) as sock:
        links = sock.list_links()
    master = next((x for x in links if x.name == bond and x.kind == "bond"), None)
    if master is None:
        return None
    slaves = [x for x in links if x.master == master.index]
    wanted = {link.name for link in conf.links}
    return {"version": RECORD_VERSION, "bond": bond, "bondIndex": master.index,
            "links": [{"name": x.name, "host": not conf.links_in_container, "index": x.index,
                       "podIndex": x.index, "kind": x.kind, "permMac": x.perm_address,
                       "mtu": None, "mac": None, "up": None if conf.links_in_container else False}
                      for x in slaves if x.name in wanted]}


# -- DEL ------------------------------------------------------------------------------------------
def cmd_del(env: CniEnv, conf: NetConf) -> None:
    store = StateDir(conf.state_dir)
    key = attachment_key(env.container_id, env.ifname)
    store.lock_or_busy(key, wait=LOCK_WAIT, what=f"attachment {env.container_id}/{env.ifname}")
    try:
        record, bad = store.read(key), None
    except BadRecord as exc:
        record, bad = None, exc
    ipam_error = None
    if conf.ipam_type:
        try:
            from .ipam import Ipam

            Ipam(conf, env.path).delete()
        except CniError as exc:
            ipam_error = exc  # reported after the links are home: they matter more
    if record is not None:
        pod = recorded_pod(env, record)
    elif bad is not None:
        log.warning(f"{bad.msg}; falling back to the configuration")
        pod = pin_if_alive(env.netns)
        record = fallback_links(conf, pod, env.ifname) if pod is not None else None
    else:
        pod = None  # nothing recorded: nothing of ours to undo (and no bond we did not make)
    hosts = [link["name"] for link in (record or {}).get("links", []) if link.get("host")]
    for name in sorted(hosts):
        store.lock_or_busy(link_lock_name(name), wait=LOCK_WAIT, what=f"link {name}")
    if record is not None:
        raise_failures(teardown(record, pod))
    try:
        store.remove(key)
    except CniError as exc:
        if bad is None:
            raise
        log.warning(exc.msg)  # a planted directory: what it stood for is undone all the same
    if ipam_error is not None:
        raise ipam_error


def pin_if_alive(path: str) -> Netns | None:
    try:
        return pods.pin(path)[0] if path else None
    except CniError:
        return None


def recorded_pod(env: CniEnv, record: dict[str, Any]) -> Netns | None:
    """The pod namespace ADD used, found from the record when the runtime names none. A
    CNI_NETNS that is another namespace is refused while the recorded one lives; once that one
    is gone, only the record is cleaned up."""
    given = pods.ident(env.netns) if env.netns else None
    recorded = pods.pin_recorded(env.netns if given == record["netnsId"] else record["netns"],
                                 record["netnsId"])
    if given is not None and given != record["netnsId"]:
        if recorded is not None:
            raise CniError(INVALID_ENV, f"CNI_NETNS {env.netns} is not the network namespace "
                           f"attachment {env.container_id}/{env.ifname} was made in")
        log.info(f"CNI_NETNS {env.netns} is not the recorded namespace, which is gone")
    elif recorded is None:
        log.info(f"pod network namespace {record['netns']} is gone")
    return recorded


# -- CHECK ----------------------------------------------------------------------------------------
def cmd_check(env: CniEnv, conf: NetConf) -> None:
    if conf.cni_version.startswith(("0.1.", "0.2.", "0.3.")):
        raise CniError(INCOMPATIBLE_VERSION, f"CHECK needs cniVersion 0.4.0 or later, "
                       f"not {conf.cni_version}")
    spec = bond_spec(conf, env.ifname)
    if conf.prev_result is None:
        raise CniError(INVALID_CONFIG, "prevResult: CHECK needs the result of ADD")
    prev = results.normalize(conf.prev_result, "prevResult")
    pod, _ = pods.pin(env.netns)
    from ..model import diff
    from ..ops import Bonds

    try:
        state = Bonds(select_backend(conf), pod).show(spec.name)
    except BondctlError as exc:
        raise CniError(STATE_DIFFERS, f"bond {spec.name}: {exc.msg}") from None
    drifts = diff(spec, state)
    if drifts:
        raise CniError(STATE_DIFFERS, f"{spec.name} differs from its configuration: "
                       + "; ".join(map(str, drifts)))
    check_slave_mtus(pod, spec.name)
    check_addresses(env, pod, spec.name, prev)
    if conf.ipam_type:
        from .ipam import Ipam

        Ipam(conf, env.path).check()


def check_slave_mtus(pod: Netns, bond: str) -> None:
    """A slave whose MTU fell below the bond's drops the bond's large frames on that path."""
    with rtnl_open(pod) as sock:
        links = sock.list_links()
    master = next(x for x in links if x.name == bond)
    for slave in links:
        if slave.master == master.index and (slave.mtu or 0) < (master.mtu or 0):
            raise CniError(STATE_DIFFERS, f"slave {slave.name} has MTU {slave.mtu}, below "
                           f"{bond}'s {master.mtu}")


def check_addresses(env: CniEnv, pod: Netns, bond: str, prev: dict[str, Any]) -> None:
    from ..netlink import AF_INET, AF_INET6

    ours = {i for i, iface in enumerate(prev["interfaces"])
            if iface.get("name") == bond and iface.get("sandbox") in (None, "", env.netns)}
    with rtnl_open(pod) as sock:
        index = sock.index_of(bond)
        have = {a for _, _, a in sock.list_addresses(index)}
        routes = sock.list_routes(AF_INET) + sock.list_routes(AF_INET6)
    for ip in prev["ips"]:
        if ip.get("interface") in ours and ip["address"] not in have:
            raise CniError(STATE_DIFFERS, f"{bond} lacks address {ip['address']} "
                           f"(has: {', '.join(sorted(have)) or 'none'})")
    present = {(_route_dst(r.dst), r.gateway) for r in routes}
    for route in prev["routes"]:
        dst, gw = _route_dst(route["dst"]), route.get("gw")
        if not any(d == dst and (gw is None or g == gw) for d, g in present):
            raise CniError(STATE_DIFFERS, f"route to {route['dst']}"
                           f"{' via ' + gw if gw else ''} is missing in the pod")


def _route_dst(dst: str) -> str:
    return "default" if dst in ("0.0.0.0/0", "::/0") else dst


# -- STATUS and GC --------------------------------------------------------------------------------
def bonding_available() -> str | None:
    """None when the kernel can make bonds; otherwise why not."""
    from ..kernel import kernel_can_bond

    return kernel_can_bond()


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
    failures, unreadable = [], []
    for key in store.records():
        try:
            record = store.read(key)
        except BadRecord as exc:
            unreadable.append(exc.msg)  # whose network it is cannot be told: left alone
            continue
        if record is None or record["network"] != conf.name:
            continue  # another network's attachment: its own GC decides
        if (record["containerID"], record["ifname"]) in valid:
            continue
        if not store.lock(key, wait=0, what=f"attachment {key}"):
            continue  # an ADD or DEL is on it right now
        failures += [f"{key}: {why}" for why in collect(env, conf, store, key)]
    if unreadable:
        log.warning("GC left unreadable records alone: " + "; ".join(unreadable))
    if conf.ipam_type:
        from .ipam import Ipam

        Ipam(conf, env.path).forward("GC")
    if failures:
        raise CniError(IO_FAILURE, "GC could not clean up " + "; ".join(failures),
                       details="; ".join(unreadable))


def collect(env: CniEnv, conf: NetConf, store: StateDir, key: str) -> list[str]:
    """One stale attachment undone as DEL would: its IPAM lease, its bond, its links."""
    try:
        record = store.read(key)
    except BadRecord as exc:
        return [exc.msg]
    if record is None:
        return []
    log.info(f"GC: removing stale attachment {record['containerID']}/{record['ifname']}")
    failures = []
    if conf.ipam_type:
        from .ipam import Ipam

        environ = {k: v for k, v in os.environ.items() if k != "CNI_NETNS"}
        environ.update(CNI_CONTAINERID=record["containerID"], CNI_IFNAME=record["ifname"])
        try:
            Ipam(conf, env.path, environ).delete()
        except CniError as exc:
            failures.append(f"ipam: {exc.msg}")
    pod = pods.pin_recorded(record["netns"], record["netnsId"])
    try:
        failures += teardown(record, pod)
    finally:
        pods.unpin(pod)
    if not failures:
        store.remove(key)
    return failures


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
