"""The CNI commands, each read top to bottom as containernetworking/plugins' own: parse,
validate, act (with each effect's undo registered beside it), result.

The kernel is reached only through the operations layer: ops.Bonds for the bond, links.Links
for the links, addresses and routes, both over the backend the configuration selects. Links
are known by ifindex, kind and permanent MAC, never by name alone: a pod can rename its links
and make new ones, but cannot forge a kind or a NIC's permanent address.
"""

from __future__ import annotations

import os
import time

from ..backend import keep_sockets
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
from .state import (
    STATE_ROOT_ENV,
    BadRecord,
    LinkRecord,
    StateDir,
    StateRecord,
    attachment_key,
    link_lock_name,
)

TYPE_CHECKING = False  # typing (and signal's enum) cost milliseconds on every pod start
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from ..backend import Backend, LinkContract
    from ..links import Link, Links
    from ..model import BondSpec
    from ..ops import Bonds

# The ADD steps, in order: BONDCTL_FAULT=<step> fails right after one, BONDCTL_FAULT_KILL=<step>
# kills the plugin there (tests of rollback and of DEL after a crash).
ADD_STEPS = ("record", "move", "bond", "ipam", "addresses", "result")
RECORD_VERSION = 2
LOCK_WAIT = 10.0  # seconds DEL and GC wait for an attachment or a link held by another run


def reached(step: str) -> None:
    """An ADD step is done (looked up at each call: the agent wraps it to mark the time)."""
    log.debug(f"step {step} done")


class Undo:
    """`with Undo(environ) as undo:` — push(what, action) beside each effect; should the block
    raise, the actions run newest first (one failing does not stop the others) and their
    failures join the error's details; once it completes they are dropped. step(name) marks an
    ADD step done: BONDCTL_FAULT=<name> fails there, BONDCTL_FAULT_KILL=<name> dies there."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.actions: list[tuple[str, Callable[[], object]]] = []
        self.fault = environ.get("BONDCTL_FAULT")
        self.kill = environ.get("BONDCTL_FAULT_KILL")

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.actions.clear()
            return
        failures = self.run()
        if failures and isinstance(exc, BondctlError):
            exc.details = "; ".join(filter(None, [exc.details, "rollback: " + "; ".join(
                failures)]))

    def push(self, what: str, action: Callable[[], object]) -> None:
        self.actions.append((what, action))

    def step(self, name: str) -> None:
        reached(name)
        if self.fault == name:
            raise CniError(PLUGIN_FAILURE, f"injected fault after step {name}")
        if self.kill == name:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

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


class Kernel:
    """The operations layer over the configuration's backend, chosen only when the bond is
    made (pluggy and the backends load only when a change is due). Links are reached through
    that backend once it is chosen, and through the contract's own implementation before (the
    checks) or without it (DEL and GC: undoing must not depend on the configured backend being
    usable now)."""

    def __init__(self, conf: NetConf) -> None:
        self.conf = conf
        self._backend: Backend | None = None
        self._contract: LinkContract | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from ..registry import Registry

            self._backend = Registry().select(self.conf.backend)
            log.debug(f"backend {self._backend.name}")
        return self._backend

    def contract(self) -> LinkContract:
        if self._backend is not None:
            return self._backend
        if self._contract is None:
            from ..backend import LinkContract

            self._contract = LinkContract()
        return self._contract

    def links(self, netns: Netns) -> Links:
        from ..links import Links

        return Links(self.contract, netns)

    def bonds(self, netns: Netns) -> Bonds:
        from ..ops import Bonds

        return Bonds(self.backend, netns)


def open_store(env: CniEnv, conf: NetConf) -> StateDir:
    return StateDir(conf.state_dir, root=env.environ.get(STATE_ROOT_ENV))


def ipam_of(env: CniEnv, conf: NetConf, environ: Mapping[str, str] | None = None) -> Any:
    from .ipam import Ipam

    return Ipam(conf, env.path, env.environ if environ is None else environ)


def kernel_failure(exc: OSError, what: str) -> CniError:
    from .errors import kernel_error

    return kernel_error(exc, what)


# -- ADD ------------------------------------------------------------------------------------------
def cmd_add(env: CniEnv, conf: NetConf) -> dict[str, Any]:
    spec = bond_spec(conf, env.ifname)
    for _, why in ineffective(spec.mode, spec.options):
        log.warning(why)  # applied all the same: the catalogue's rule, as in the CLI
    if conf.prev_result is not None:
        results.normalize(conf.prev_result, "prevResult")
    pod, pod_id = pods.pin(env.netns)
    store, key = open_store(env, conf), attachment_key(env.container_id, env.ifname)
    store.lock_or_busy(key, wait=LOCK_WAIT, what=f"attachment {env.container_id}/{env.ifname}")
    if present(store, key):
        raise CniError(INVALID_CONFIG, f"attachment {env.container_id}/{env.ifname} already "
                       "exists (a state record is present); DEL it first")
    for name in [] if conf.links_in_container else sorted(spec.slave_names):
        store.lock_or_busy(link_lock_name(name), wait=0, what=f"link {name}")
    kernel = Kernel(conf)
    in_pod, in_host = kernel.links(pod), kernel.links(CURRENT)
    links = check_links(spec, conf, in_pod, in_host, store)
    record = new_record(env, conf, spec, pod_id, links)
    with Undo(env.environ) as undo:
        undo.push("state record", lambda: store.remove(key))
        store.save(key, record)
        undo.step("record")

        undo.push("links", lambda: raise_failures(teardown(kernel, record, pod)))
        move_in(record.links, in_host, in_pod, pod)
        store.save(key, record)  # the links' indexes in the pod: what DEL will know them by
        undo.step("move")

        unique_macs(in_pod, spec)
        kernel.bonds(pod).create(spec)
        record.bond_index = existing(in_pod, spec.name).index
        store.save(key, record)
        log.info(f"bond {spec.name} created in {env.netns}: mode {spec.mode}, "
                 f"slaves {', '.join(spec.slave_names)}")
        undo.step("bond")

        ipam_result = None
        if conf.ipam_type:
            ipam = ipam_of(env, conf)
            undo.push(f"ipam {ipam.kind}", ipam.delete)  # SPEC: a failed ADD is followed by DEL
            ipam_result = ipam.add()
            undo.step("ipam")
            configure_addresses(in_pod, spec, ipam_result)
            undo.step("addresses")

        out = build_result(env, conf, in_pod, spec, ipam_result)
        record.phase = "added"
        store.save(key, record)
        undo.step("result")
    return out


def present(store: StateDir, key: str) -> bool:
    try:
        return store.read(key) is not None
    except BadRecord:
        return True


def new_record(env: CniEnv, conf: NetConf, spec: BondSpec, pod_id: list[int],
               links: list[LinkRecord]) -> StateRecord:
    return StateRecord(links, version=RECORD_VERSION, network=conf.name,
                  container_id=env.container_id, ifname=env.ifname, netns=env.netns,
                  netns_id=pod_id, bond=spec.name, bond_index=None,
                  links_in_container=conf.links_in_container, phase="adding",
                  created=time.time(), pod=pod_labels(env))


def pod_labels(env: CniEnv) -> dict[str, str] | None:
    """The Kubernetes pod the runtime named in CNI_ARGS, kept for `bondctl pods` and metrics."""
    name, namespace = env.args.get("K8S_POD_NAME"), env.args.get("K8S_POD_NAMESPACE")
    if name and namespace and len(name) <= 253 and len(namespace) <= 253:
        return {"name": name, "namespace": namespace}
    return None


def check_links(spec: BondSpec, conf: NetConf, in_pod: Links, in_host: Links,
                store: StateDir) -> list[LinkRecord]:
    """Every link exists where it should, is free and can carry the bond's MTU; returns what
    the state record keeps of each (its identity and how it was), before anything changes."""
    pod_links = {link.name: link for link in in_pod.all()}
    host_all = [] if conf.links_in_container else in_host.all()
    if spec.name in pod_links:
        raise CniError(INVALID_CONFIG, f"CNI_IFNAME {spec.name} already exists in the pod")
    where = "the pod" if conf.links_in_container else "the host network namespace"
    found = pod_links if conf.links_in_container else {link.name: link for link in host_all}
    out = []
    for name in spec.slave_names:
        link = found.get(name)
        if link is None:
            raise missing_link(name, where, store, conf)
        if link.master_index:
            raise CniError(LINK_IN_USE, f"link {name} is already enslaved (master index "
                           f"{link.master_index}) in {where}")
        if link.kind == "bond" or link.loopback:
            raise CniError(INVALID_CONFIG, f"links: {name} is a {link.kind or 'loopback'} "
                           "device and cannot be a bond slave")
        if not conf.links_in_container and name in pod_links:
            raise CniError(INVALID_CONFIG, f"links: the pod already has a link named {name}")
        if spec.mtu and link.mtu and link.mtu < spec.mtu:
            raise CniError(INVALID_CONFIG, f"mtu: {spec.mtu} is above the MTU of link {name} "
                           f"({link.mtu}); a slave must carry the bond's MTU")
        entry = LinkRecord(name=name, host=not conf.links_in_container, index=link.index,
                           pod_index=link.index if conf.links_in_container else None,
                           kind=record_kind(link), mtu=link.mtu, mac=link.mac or None,
                           perm_mac=link.perm_mac, up=link.up)
        if not conf.links_in_container:
            survey_host_link(entry, in_host, host_all, conf)
        out.append(entry)
    return out


def missing_link(name: str, where: str, store: StateDir, conf: NetConf) -> CniError:
    if not conf.links_in_container:
        for key in store.records():
            try:
                record = store.load(key)
            except BadRecord:
                continue
            if record and any(link.name == name and link.host for link in record.links):
                return CniError(LINK_IN_USE, f"link {name} is in use by attachment "
                                f"{record.attachment} of network {record.network}")
    return CniError(INVALID_CONFIG, f"links: {name} does not exist in {where}")


def survey_host_link(entry: LinkRecord, in_host: Links, host_all: list[Link],
                     conf: NetConf) -> None:
    """What the host would lose with the link (addresses, routes, sysctls, uppers' state);
    a link that carries the node's addresses or routes is refused unless the config allows."""
    from . import hostlinks

    found = in_host.survey(entry.index, host_all)
    hostlinks.refuse_unsafe(entry.name, found, allow=conf.allow_addressed_links)
    entry.addresses, entry.routes = found["addresses"], found["routes"]
    entry.sysctls, entry.uppers = found["sysctls"], found["uppers"]


def move_in(links: list[LinkRecord], in_host: Links, in_pod: Links, pod: Netns) -> None:
    """Host links into the pod by ifindex, each then known by its index there."""
    moving = [link for link in links if link.host]
    for link in moving:
        try:
            in_host.move(link.index, pod)
        except OSError as exc:
            raise kernel_failure(exc, f"moving link {link.name} into the pod") from None
        log.debug(f"moved {link.name} into the pod")
    for link in moving:
        here = in_pod.get_link(link.name)
        if here is None or not same_link(here, link):
            raise CniError(IO_FAILURE, f"link {link.name} is not in the pod after the move")
        link.pod_index = here.index


def existing(in_pod: Links, name: str) -> Link:
    link = in_pod.get_link(name)
    if link is None:
        raise CniError(IO_FAILURE, f"bond {name} vanished from the pod")
    return link


def unique_macs(in_pod: Links, spec: BondSpec) -> None:
    """balance-tlb and -alb refuse a slave whose MAC another slave has (EFAULT: "the slave hw
    address is in use by the bond"); SR-IOV VFs often share one. Such slaves get a random
    locally administered MAC here; DEL puts the recorded one back."""
    from ..options import needs_distinct_slave_macs

    if not needs_distinct_slave_macs(spec.mode):
        return
    seen: set[str | None] = set()
    for name in spec.slave_names:
        link = in_pod.get_link(name)
        mac = (link.mac or None) if link is not None else None
        if link is not None and mac in seen:
            raw = bytearray(os.urandom(6))
            raw[0] = (raw[0] & 0xFC) | 0x02  # unicast, locally administered
            mac = raw.hex(":")
            try:
                in_pod.set_link(link.index, up=False)
                in_pod.set_link(link.index, mac=mac)
            except OSError as exc:
                raise kernel_failure(exc, f"a MAC address of its own for {name}") from None
            log.info(f"{name} shares MAC {link.mac} with another slave; using {mac}")
        seen.add(mac)


def configure_addresses(in_pod: Links, spec: BondSpec, ipam: dict[str, Any]) -> None:
    """IPAM's addresses and routes on the bond, as the reference plugins' ConfigureIface."""
    gateways: dict[bool, str] = {}
    bond = existing(in_pod, spec.name)
    results.check_for_kernel(ipam, bond.mtu)
    for ip in ipam["ips"]:
        try:
            in_pod.add_address(bond.index, ip["address"])
        except OSError as exc:
            raise kernel_failure(exc, f"ipam address {ip['address']}") from None
        if ip.get("gateway"):
            gateways.setdefault(":" in ip["gateway"], ip["gateway"])
    for route in ipam["routes"]:
        dst = route["dst"]
        gateway = route.get("gw") or gateways.get(":" in dst)
        try:
            in_pod.add_route(dst, gateway, bond.index, metric=route.get("priority"),
                             table=route.get("table"))
        except OSError as exc:
            raise kernel_failure(exc, f"ipam route to {dst}") from None
    log.debug(f"{spec.name}: addresses {', '.join(ip['address'] for ip in ipam['ips'])}")


def build_result(env: CniEnv, conf: NetConf, in_pod: Links, spec: BondSpec,
                 ipam: dict[str, Any] | None) -> dict[str, Any]:
    bond = existing(in_pod, spec.name)
    slaves = [in_pod.get_link(name) for name in spec.slave_names]
    interfaces = [results.interface(s.name, s.mac, env.netns)
                  for s in slaves if s is not None]
    out = results.add_result(conf.prev_result,
                             results.interface(bond.name, bond.mac, env.netns,
                                               bond.mtu), interfaces, ipam, conf.dns)
    return results.render(out, conf.cni_version)


# -- undo / DEL / GC share these: everything found by identity, never by name alone -----------
def same_link(here: Link, link: LinkRecord) -> bool:
    """Is `here` the link the record describes? Kind and permanent MAC must match."""
    return record_kind(here) == link.kind and (not link.perm_mac
                                               or here.perm_mac == link.perm_mac)


def record_kind(link: Link) -> str | None:
    """A link's kind as a state record keeps it: None for a plain device (the model's "")."""
    return link.kind or None


def find_in_pod(in_pod: dict[int, Link], link: LinkRecord, legacy: bool) -> Link | None:
    if legacy:  # a version 1 record knows links by name (and permanent MAC) only
        return next((x for x in in_pod.values() if x.name == link.name and (
            not link.perm_mac or x.perm_mac == link.perm_mac)), None)
    # Killed between the move and the record's update: a moved link keeps its index when the
    # pod has it free, which a fresh pod does.
    here = in_pod.get(link.pod_index or link.index)
    return here if here is not None and same_link(here, link) else None


def find_in_host(links: list[Link], link: LinkRecord, temp: str | None) -> Link | None:
    """A host link back home: by the temporary name we gave it; one we did not move back (its
    pod is gone) by permanent MAC, or by its recorded index and kind."""
    if temp is not None:
        return next((x for x in links if x.name == temp), None)
    if link.perm_mac:
        return next((x for x in links if x.perm_mac == link.perm_mac), None)
    # back at the index it had: a link keeps its index when that one is free
    return next((x for x in links if x.index == link.index and same_link(x, link)
                 and not x.master_index), None)


def recorded_bond(in_pod: dict[int, Link], record: StateRecord,
                  ours: list[Link | None]) -> Link | None:
    """The bond ADD made: by its recorded index; before that was recorded, the bond of the
    recorded name that is the master of one of our links."""
    if record.bond_index:
        bond = in_pod.get(record.bond_index)
        return bond if bond is not None and bond.kind == "bond" else None
    for here in ours:
        master = (in_pod.get(here.master_index) if here is not None and here.master_index
                  else None)
        if master is not None and master.kind == "bond" and master.name == record.bond:
            return master
    return None


def raise_failures(failures: list[str]) -> None:
    if failures:
        raise CniError(IO_FAILURE, "could not restore " + "; ".join(failures))


def teardown(kernel: Kernel, record: StateRecord, pod: Netns | None) -> list[str]:
    """Undo what the record says ADD did: delete our bond in the pod, give host links back to
    the host and pod links their old attributes. A link that is not (or no longer) the one
    recorded is left where it is and reported; returns what could not be done."""
    failures: list[str] = []
    home: list[tuple[LinkRecord, str | None]] = []  # host links: (record, name now)
    if pod is not None:
        failures += teardown_in_pod(kernel.links(pod), record, home)
    else:
        home = [(link, None) for link in record.links if link.host]
    if home:
        failures += restore_in_host(kernel.links(CURRENT), home)
    return failures


def teardown_in_pod(in_pod: Links, record: StateRecord,
                    home: list[tuple[LinkRecord, str | None]]) -> list[str]:
    failures = []
    found = {x.index: x for x in in_pod.all()}
    ours = [find_in_pod(found, link, record.legacy) for link in record.links]
    bond = recorded_bond(found, record, ours)
    if bond is not None:
        try:
            in_pod.delete(bond.index)
            log.info(f"bond {bond.name} deleted from the pod")
        except OSError as exc:
            failures.append(f"bond {bond.name}: {exc.strerror}")
    for link, here in zip(record.links, ours, strict=True):
        if here is None:
            log.warning(f"link {link.name} (index {link.pod_index}) is not in the pod as "
                        "recorded; left where it is")
            if link.host:
                home.append((link, None))  # it may have come home by itself
            continue
        try:
            if here.master_index and (bond is None or here.master_index != bond.index):
                in_pod.set_link(here.index, master=0)
            if link.host:
                # A name no pod can have chosen, so the host finds it unambiguously and no
                # host link's name can clash with it.
                temp = "bcni" + os.urandom(5).hex()
                in_pod.move(here.index, CURRENT, temp)
                log.debug(f"moved {link.name} back to the host")
                home.append((link, temp))
            else:
                restore_attributes(in_pod, in_pod.get_link(here.index), link)
        except OSError as exc:
            failures.append(f"{link.name}: {exc.strerror}")
    return failures


def restore_in_host(in_host: Links, home: list[tuple[LinkRecord, str | None]]) -> list[str]:
    """Host links as they were: name, MTU, MAC, admin state, and what the host lost with
    them (addresses, routes, sysctls, uppers' state)."""
    failures = []
    links = in_host.all()
    for link, temp in home:
        now = find_in_host(links, link, temp)
        if now is None:
            log.info(f"link {link.name} is gone; nothing to restore")
            continue
        try:
            restore_attributes(in_host, now, link)
        except OSError as exc:
            failures.append(f"{link.name}: {exc.strerror}")
            continue
        failures += in_host.restore(now.index, link.survey())
    return failures


def restore_attributes(links: Links, now: Link | None, link: LinkRecord) -> None:
    """Name, MTU, MAC and admin state as recorded (an `up` of None: leave it as it is)."""
    if now is not None:
        links.restore_attributes(now, link.name, mtu=link.mtu, mac=link.mac, up=link.up)
        log.debug(f"restored {link.name}")


def fallback_links(in_pod: Links, conf: NetConf, bond: str) -> StateRecord | None:
    """When the record is unreadable, the configuration is all there is: the bond named
    CNI_IFNAME in the pod, and the configured links that are its slaves (for host links)."""
    links = in_pod.all()
    master = next((x for x in links if x.name == bond and x.kind == "bond"), None)
    if master is None:
        return None
    wanted = {link.name for link in conf.links}
    return StateRecord([LinkRecord(name=x.name, host=not conf.links_in_container, index=x.index,
                              pod_index=x.index, kind=record_kind(x), perm_mac=x.perm_mac,
                              up=None if conf.links_in_container else False)
                   for x in links if x.master_index == master.index and x.name in wanted],
                  version=RECORD_VERSION, bond=bond, bond_index=master.index)


# -- DEL ------------------------------------------------------------------------------------------
def cmd_del(env: CniEnv, conf: NetConf) -> None:
    store, key = open_store(env, conf), attachment_key(env.container_id, env.ifname)
    store.lock_or_busy(key, wait=LOCK_WAIT, what=f"attachment {env.container_id}/{env.ifname}")
    try:
        record, bad = store.load(key), None
    except BadRecord as exc:
        record, bad = None, exc
    ipam_error = None
    if conf.ipam_type:
        try:
            ipam_of(env, conf).delete()
        except CniError as exc:
            ipam_error = exc  # reported after the links are home: they matter more
    kernel = Kernel(conf)
    pod = None  # nothing recorded: nothing of ours to undo (and no bond we did not make)
    if record is not None:
        pod = recorded_pod(env, record)
    elif bad is not None:
        log.warning(f"{bad.msg}; falling back to the configuration")
        pod = pin_if_alive(env.netns)
        record = None if pod is None else fallback_links(kernel.links(pod), conf, env.ifname)
    for name in sorted(link.name for link in (record.links if record else []) if link.host):
        store.lock_or_busy(link_lock_name(name), wait=LOCK_WAIT, what=f"link {name}")
    if record is not None:
        raise_failures(teardown(kernel, record, pod))
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


def recorded_pod(env: CniEnv, record: StateRecord) -> Netns | None:
    """The pod namespace ADD used, found from the record when the runtime names none. A
    CNI_NETNS that is another namespace is refused while the recorded one lives; once that one
    is gone, only the record is cleaned up."""
    given = pods.ident(env.netns) if env.netns else None
    recorded = pods.pin_recorded(env.netns if given == record.netns_id else record.netns,
                                 record.netns_id)
    if given is not None and given != record.netns_id:
        if recorded is not None:
            raise CniError(INVALID_ENV, f"CNI_NETNS {env.netns} is not the network namespace "
                           f"attachment {env.container_id}/{env.ifname} was made in")
        log.info(f"CNI_NETNS {env.netns} is not the recorded namespace, which is gone")
    elif recorded is None:
        log.info(f"pod network namespace {record.netns} is gone")
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

    kernel = Kernel(conf)
    try:
        state = kernel.bonds(pod).show(spec.name)
    except BondctlError as exc:
        raise CniError(STATE_DIFFERS, f"bond {spec.name}: {exc.msg}") from None
    drifts = diff(spec, state)
    if drifts:
        raise CniError(STATE_DIFFERS, f"{spec.name} differs from its configuration: "
                       + "; ".join(map(str, drifts)))
    in_pod = kernel.links(pod)
    check_slave_mtus(in_pod, spec.name)
    check_addresses(env, in_pod, spec.name, prev)
    if conf.ipam_type:
        ipam_of(env, conf).check()


def check_slave_mtus(in_pod: Links, bond: str) -> None:
    """A slave whose MTU fell below the bond's drops the bond's large frames on that path."""
    links = in_pod.all()
    master = next(x for x in links if x.name == bond)
    for slave in links:
        if slave.master_index == master.index and slave.mtu < master.mtu:
            raise CniError(STATE_DIFFERS, f"slave {slave.name} has MTU {slave.mtu}, below "
                           f"{bond}'s {master.mtu}")


def check_addresses(env: CniEnv, in_pod: Links, bond: str, prev: dict[str, Any]) -> None:
    ours = {i for i, iface in enumerate(prev["interfaces"])
            if iface.get("name") == bond and iface.get("sandbox") in (None, "", env.netns)}
    have = set(in_pod.addresses(existing(in_pod, bond).index))
    for ip in prev["ips"]:
        if ip.get("interface") in ours and ip["address"] not in have:
            raise CniError(STATE_DIFFERS, f"{bond} lacks address {ip['address']} "
                           f"(has: {', '.join(sorted(have)) or 'none'})")
    present = {(_route_dst(r.dst), r.gateway) for r, _ in in_pod.routes()}
    for route in prev["routes"]:
        dst, gw = _route_dst(route["dst"]), route.get("gw")
        if not any(d == dst and (gw is None or g == gw) for d, g in present):
            raise CniError(STATE_DIFFERS, f"route to {route['dst']}"
                           f"{' via ' + gw if gw else ''} is missing in the pod")


def _route_dst(dst: str) -> str:
    return "default" if dst in ("0.0.0.0/0", "::/0") else dst


# -- STATUS and GC --------------------------------------------------------------------------------
def cmd_status(env: CniEnv, conf: NetConf) -> None:
    from ..kernel import kernel_can_bond

    why = kernel_can_bond()
    if why:
        raise CniError(NOT_AVAILABLE, why)
    try:
        Kernel(conf).backend  # noqa: B018  (selecting it is the check)
    except BondctlError as exc:
        raise CniError(NOT_AVAILABLE, exc.msg) from None
    if conf.ipam_type:
        try:
            ipam_of(env, conf).forward("STATUS")
        except CniError as exc:
            code = exc.cni_code if exc.cni_code in (NOT_AVAILABLE, LIMITED_CONNECTIVITY) \
                else NOT_AVAILABLE
            raise CniError(code, exc.msg, details=exc.details) from None


def cmd_gc(env: CniEnv, conf: NetConf) -> None:
    valid = set(conf.valid_attachments or ())
    store = open_store(env, conf)
    kernel = Kernel(conf)
    failures, unreadable = [], []
    for key in store.records():
        try:
            record = store.load(key)
        except BadRecord as exc:
            unreadable.append(exc.msg)  # whose network it is cannot be told: left alone
            continue
        if record is None or record.network != conf.name:
            continue  # another network's attachment: its own GC decides
        if (record.container_id, record.ifname) in valid:
            continue
        if not store.lock(key, wait=0, what=f"attachment {key}"):
            continue  # an ADD or DEL is on it right now
        failures += [f"{key}: {why}" for why in collect(env, conf, kernel, store, key)]
    if unreadable:
        log.warning("GC left unreadable records alone: " + "; ".join(unreadable))
    if conf.ipam_type:
        ipam_of(env, conf).forward("GC")
    if failures:
        raise CniError(IO_FAILURE, "GC could not clean up " + "; ".join(failures),
                       details="; ".join(unreadable))


def collect(env: CniEnv, conf: NetConf, kernel: Kernel, store: StateDir, key: str
            ) -> list[str]:
    """One stale attachment undone as DEL would: its IPAM lease, its bond, its links."""
    try:
        record = store.load(key)
    except BadRecord as exc:
        return [exc.msg]
    if record is None:
        return []
    log.info(f"GC: removing stale attachment {record.attachment}")
    failures = []
    if conf.ipam_type:
        environ = {k: v for k, v in env.environ.items() if k != "CNI_NETNS"}
        environ.update(CNI_CONTAINERID=record.container_id, CNI_IFNAME=record.ifname)
        try:
            ipam_of(env, conf, environ).delete()
        except CniError as exc:
            failures.append(f"ipam: {exc.msg}")
    pod = pods.pin_recorded(record.netns, record.netns_id)
    try:
        failures += teardown(kernel, record, pod)
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
        with keep_sockets():  # one netlink socket per namespace for the whole command
            return COMMANDS[env.command](env, conf)
    finally:
        log.debug(f"{env.command} took {time.monotonic() - started:.3f} s")


__all__ = ["ADD_STEPS", "COMMANDS", "cni_code", "run"]
