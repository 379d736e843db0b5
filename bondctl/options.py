"""The option catalogue: every bonding option the kernel knows, and how each tool spells it.

One table, like the kernel's own bond_opts[] (drivers/net/bonding/bond_options.c), drives
validation, help text, docs, the CNI config keys and every backend's translation: the sysfs
file, the `ip link ... type bond` keyword, the IFLA_BOND_* attribute and its wire type, and the
key `ip -d -j link show` reports it under. Each of those defaults from the option's name, so a
row states only its exceptions; and every rule between options (a delay needs miimon, a value
names a slave, a request is not a setting, what the kernel leaves out of its report, which row
is the mode) is a field of the row. Nothing else in bondctl spells an option name or a mode
list to special-case it.

Values are kept in one canonical form: enums as their kernel name ("802.3ad"), on/off flags as
0/1, numbers as int, MACs lower-case, address lists as tuples of strings.
"""

from __future__ import annotations

# _socket, not socket: the wrapper module imports enum and selectors (~5 ms per pod start).
from _socket import AF_INET, AF_INET6, inet_ntop, inet_pton

from .errors import ValidationError
from .names import check_ifname
from .record import Record

TYPE_CHECKING = False  # typing costs milliseconds to import: every pod start reads this module
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Literal

    Kind = Literal["int", "enum", "flag", "ifname", "mac", "ipv4list", "ipv6list"]
    Wire = Literal["u8", "u16", "u32", "s32", "ifindex", "mac", "in_addr_list", "in6_addr_list"]

Value = int | str | tuple[str, ...]

# Mode numbers are the kernel's (BOND_MODE_*); a mode's name is MODES[number].
MODES: tuple[str, ...] = (
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
)
RR, AB, XOR, BCAST, LACP, TLB, ALB = range(7)
ALL_MODES = frozenset(range(7))
_ARP_MODES = ALL_MODES - {LACP, TLB, ALB}  # the ARP monitor is refused in 802.3ad, tlb and alb
_ACTIVE_MODES = frozenset({AB, TLB, ALB})  # modes with one "active" slave

INT_MAX = 2**31 - 1
MAX_ARP_TARGETS = 16  # BOND_MAX_ARP_TARGETS
MIN_MTU, MAX_MTU = 68, 65535


# How a value of each kind travels over netlink unless a row says otherwise.
_WIRE: dict[str, Wire] = {"int": "u32", "enum": "u8", "flag": "u8", "ifname": "ifindex",
                          "mac": "mac", "ipv4list": "in_addr_list", "ipv6list": "in6_addr_list"}
# What a reader records for an option the kernel leaves out of its report (ip -j and
# IFLA_INFO_DATA alike): nothing, except that an empty target list and an unset slave are
# left out rather than reported empty.
_WHEN_ABSENT: dict[str, Value | None] = {"ipv4list": (), "ipv6list": (), "ifname": ""}
SAME = ""  # for `ip` and `sysfs`: spelled as the kernel's name (the default)


def camel(name: str) -> str:
    """The CNI config's spelling of a kernel name: arp_interval -> arpInterval."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class Option:
    """One kernel bonding option (a row of bond_opts[]). Every key a tool spells the option by
    defaults from its name; a row states only where the kernel or a tool spells it otherwise,
    and every rule that ties it to other options is a flag here, not a name elsewhere."""

    __slots__ = (
        "aliases", "choices", "cni_key", "default", "doc", "down", "effective",
        "holds_bond_mac", "ifla", "ifla_name", "ifupdown2", "ip", "is_mode", "json_key", "kind",
        "maximum", "min_kernel", "min_up", "minimum", "modes", "name", "names_slave",
        "needs_arp", "needs_miimon", "netplan", "networkd", "networkd_with", "nm", "nmstate",
        "nmstate_words", "no_slaves", "sysfs", "takes_bond_mac", "transient", "unit",
        "when_absent", "wire",
    )

    def __init__(
        self,
        name: str,  # the kernel's name (bond_opts[].name): also the CLI's KEY in KEY=VALUE
        *,
        doc: str,
        ifla: int,  # IFLA_BOND_* attribute number
        kind: Kind | None = None,  # None: "ifname" if it names a slave, "enum" with choices
        default: Value | None = None,  # None: 0, or "" for an ifname, () for a list
        wire: Wire | None = None,  # how the attribute is encoded; None: by kind (_WIRE)
        json_key: str | None = None,  # key under linkinfo.info_data in `ip -d -j link show`
        cni_key: str | None = None,  # the CNI config key; None: camel(name)
        ip: str | None = SAME,  # keyword after `ip link add NAME type bond`; None: ip lacks it
        sysfs: str | None = SAME,  # file under /sys/class/net/BOND/bonding/; None: netlink only
        ifla_name: str | None = None,  # None: IFLA_BOND_<NAME>
        choices: tuple[str, ...] = (),  # enum names, indexed by the kernel's number
        minimum: int = 0,
        maximum: int = INT_MAX,
        modes: frozenset[int] = ALL_MODES,  # modes the kernel accepts it in (not unsuppmodes)
        effective: frozenset[int] = ALL_MODES,  # modes where it changes anything
        down: bool = False,  # BOND_OPTFLAG_IFDOWN: the bond must be down to change it
        no_slaves: bool = False,  # BOND_OPTFLAG_NOSLAVES: the bond must have no slaves
        is_mode: bool = False,  # the bonding policy itself: the bond's kind, not a setting
        names_slave: bool = False,  # the value is one of the bond's slaves: set once they are in
        transient: bool = False,  # a request, not a setting: the kernel moves it (failover)
        needs_miimon: bool = False,  # a delay counted in miimon ticks: needs miimon > 0
        needs_arp: bool = False,  # probed by the ARP monitor: needs arp_interval > 0
        # The value that gives the bond its active slave's MAC (where the option takes
        # effect): a MAC of the bond's own cannot be kept beside it.
        takes_bond_mac: str | None = None,
        # Any value but the default, where it takes effect, makes the kernel ignore a new MAC
        # for a live bond (bond_set_mac_address returns success and changes nothing).
        holds_bond_mac: bool = False,
        # The fewest slaves up for the bond to report carrier: a health check (health.py,
        # the CLI and the pods' monitor) holds the slaves up against it.
        min_up: bool = False,
        min_kernel: tuple[int, int] = (0, 0),
        aliases: tuple[str, ...] = (),  # other names people and tools use for it
        # Other tools' files (bondctl/formats): None/False where the tool cannot express it.
        networkd: str | None = None,  # systemd.netdev [Bond] key; a slave-naming option is the
        #                               slave's .network [Network] KEY=yes (PrimarySlave=)
        networkd_with: str | None = None,  # networkd sends the key only beside this option
        netplan: str | None = None,  # key under bonds.NAME.parameters
        ifupdown2: bool = True,  # interfaces(5) "bond-" + name with "-" (ifupdown2 addons/bond)
        nm: bool = True,  # NetworkManager 1.42 keyfile [bond] key: the kernel name
        nmstate: bool = True,  # nmstate link-aggregation.options key: the kernel name
        nmstate_words: tuple[str, ...] = (),  # nmstate's words for a flag's 0 and 1, if not bools
        unit: str = "",  # "ms" or "s" when the value is a duration (networkd time spans)
    ) -> None:
        self.name = name
        self.kind: Kind = kind or ("ifname" if names_slave else "enum" if choices else "int")
        self.default: Value = default if default is not None else (
            choices[0] if choices else _WHEN_ABSENT.get(self.kind, 0))  # type: ignore[assignment]
        self.doc = doc
        self.ifla = ifla
        self.wire: Wire = wire or _WIRE[self.kind]
        self.json_key = json_key or name
        self.cni_key = cni_key or camel(name)
        self.ip = name if ip == SAME else ip
        self.sysfs = name if sysfs == SAME else sysfs
        self.ifla_name = ifla_name or "IFLA_BOND_" + name.upper()
        self.choices = choices
        self.minimum = minimum
        self.maximum = maximum
        self.modes = modes
        self.effective = effective
        self.down = down
        self.no_slaves = no_slaves
        self.is_mode = is_mode
        self.names_slave = names_slave
        self.transient = transient
        self.needs_miimon = needs_miimon
        self.needs_arp = needs_arp
        self.takes_bond_mac = takes_bond_mac
        self.holds_bond_mac = holds_bond_mac
        self.min_up = min_up
        self.when_absent: Value | None = _WHEN_ABSENT.get(self.kind)
        self.min_kernel = min_kernel
        self.aliases = aliases
        self.networkd = networkd
        self.networkd_with = networkd_with
        self.netplan = netplan
        self.ifupdown2 = ifupdown2
        self.nm = nm
        self.nmstate = nmstate
        self.nmstate_words = nmstate_words
        self.unit = unit

    def __repr__(self) -> str:
        return f"Option({self.name!r})"

    @property
    def netlink_only(self) -> bool:
        return self.sysfs is None

    def allowed(self) -> str:
        """What values are allowed, in words, for help texts and error messages."""
        if self.kind == "enum":
            return ", ".join(f"{name} ({number})" for number, name in enumerate(self.choices))
        if self.kind == "flag":
            return "0/off or 1/on"
        if self.kind == "int":
            top = "2^31-1" if self.maximum == INT_MAX else str(self.maximum)
            return f"an integer from {self.minimum} to {top}"
        if self.kind == "ifname":
            return "the name of one of the bond's slaves"
        if self.kind == "mac":
            return "a unicast MAC address such as 02:00:00:00:00:01"
        family = "IPv4" if self.kind == "ipv4list" else "IPv6"
        return f"up to {MAX_ARP_TARGETS} {family} addresses, as a list or comma-separated"

    def mode_names(self, which: Iterable[int] | None = None) -> str:
        return ", ".join(MODES[m] for m in sorted(self.modes if which is None else which))

    def parse(self, raw: object) -> Value:
        """The canonical value of `raw` (str, int, bool or list), or a ValidationError."""
        try:
            return _PARSERS[self.kind](self, raw)
        except (ValueError, TypeError, OSError):
            shown = raw if isinstance(raw, str | int) else repr(raw)
            raise ValidationError(
                f"{self.name}: invalid value {shown!r}: expected {self.allowed()}"
            ) from None

    def render(self, value: Value) -> str:
        """The value as the kernel's text interfaces (sysfs, `ip`) take it."""
        if isinstance(value, tuple):
            return ",".join(value)
        return str(value)


def _parse_int(opt: Option, raw: object) -> int:
    if isinstance(raw, bool):
        raise TypeError
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw.isdigit():
            raise ValueError
    if not isinstance(raw, int | str):
        raise TypeError
    number = int(raw)
    if not opt.minimum <= number <= opt.maximum:
        raise ValueError
    return number


def _parse_enum(opt: Option, raw: object) -> str:
    if isinstance(raw, bool):
        raise TypeError
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in opt.choices:
            return text
        if not text.isdigit():
            raise ValueError
        raw = int(text)
    if not isinstance(raw, int) or not 0 <= raw < len(opt.choices):
        raise ValueError
    return opt.choices[raw]


_FLAG_WORDS = {"0": 0, "1": 1, "off": 0, "on": 1, "false": 0, "true": 1}


def _parse_flag(opt: Option, raw: object) -> int:
    if isinstance(raw, bool | int):
        if raw not in (0, 1):
            raise ValueError
        return int(raw)
    if isinstance(raw, str) and raw.strip().lower() in _FLAG_WORDS:
        return _FLAG_WORDS[raw.strip().lower()]
    raise ValueError


def _parse_ifname(opt: Option, raw: object) -> str:
    if raw in ("", None):
        return ""  # no primary / no forced active slave
    if not isinstance(raw, str):
        raise TypeError
    check_ifname(raw, opt.name)
    return raw


_HEX = frozenset("0123456789abcdef")


def parse_mac(raw: object) -> str:
    """A MAC address in canonical form; ValueError when it is not one."""
    if not isinstance(raw, str):
        raise TypeError
    mac = raw.strip().lower().replace("-", ":")
    octets = mac.split(":")
    if len(octets) != 6 or any(len(o) != 2 or not _HEX.issuperset(o) for o in octets):
        raise ValueError
    return mac


def is_multicast_mac(mac: str) -> bool:
    return bool(int(mac[:2], 16) & 1)


def _parse_mac_option(opt: Option, raw: object) -> str:
    mac = parse_mac(raw)
    if is_multicast_mac(mac):
        # The kernel refuses a multicast actor system (bond_option_ad_actor_system_set).
        raise ValueError
    return mac


def _parse_addresses(family: int, raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        items: list[object] = [part for part in raw.replace(" ", ",").split(",") if part]
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        raise TypeError
    if len(items) > MAX_ARP_TARGETS:
        raise ValueError
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError
        address = inet_ntop(family, inet_pton(family, item.strip()))
        if address not in out:
            out.append(address)
    return tuple(out)


_PARSERS: dict[str, Callable[[Option, object], Value]] = {
    "int": _parse_int,
    "enum": _parse_enum,
    "flag": _parse_flag,
    "ifname": _parse_ifname,
    "mac": _parse_mac_option,
    "ipv4list": lambda opt, raw: _parse_addresses(AF_INET, raw),
    "ipv6list": lambda opt, raw: _parse_addresses(AF_INET6, raw),
}

# The catalogue. Sources: bond_options.c (values, unsuppmodes, flags), bond_netlink.c and
# include/uapi/linux/if_link.h (IFLA_BOND_*), iproute2 ip/iplink_bond.c (keywords, JSON keys),
# Documentation/networking/bonding.rst (meaning and defaults).
_OPTIONS: tuple[Option, ...] = (
    Option(
        "mode", doc="Bonding policy.", ifla=1, choices=MODES, is_mode=True, down=True,
        no_slaves=True, networkd="Mode", netplan="mode",
    ),
    Option(
        "active_slave", doc="The slave that carries traffic now (active-backup, tlb, alb).",
        ifla=2, names_slave=True, transient=True, modes=_ACTIVE_MODES, effective=_ACTIVE_MODES,
        networkd="ActiveSlave", ifupdown2=False, nmstate=False,
    ),
    Option(
        "miimon", doc="MII link monitoring interval in ms; 0 turns it off (802.3ad, tlb and alb "
        "force 100 when neither monitor is set).", ifla=3,
        networkd="MIIMonitorSec", netplan="mii-monitor-interval", unit="ms",
    ),
    Option(
        "updelay", doc="Delay in ms before enabling a slave after link up; a multiple of "
        "miimon.", ifla=4, needs_miimon=True,
        networkd="UpDelaySec", netplan="up-delay", unit="ms",
    ),
    Option(
        "downdelay", doc="Delay in ms before disabling a slave after link failure; a multiple "
        "of miimon.", ifla=5, needs_miimon=True,
        networkd="DownDelaySec", netplan="down-delay", unit="ms",
    ),
    Option(
        "use_carrier", doc="Use the driver's carrier state (1) or MII/ethtool ioctls (0) for "
        "miimon.", ifla=6, kind="flag", default=1,
    ),
    Option(
        "arp_interval", doc="ARP link monitoring interval in ms; 0 turns it off.", ifla=7,
        modes=_ARP_MODES, effective=_ARP_MODES,
        networkd="ARPIntervalSec", netplan="arp-interval", ifupdown2=False, unit="ms",
    ),
    Option(
        "arp_ip_target", doc="IPv4 addresses the ARP monitor probes.", ifla=8, kind="ipv4list",
        cni_key="arpIpTargets", needs_arp=True, effective=_ARP_MODES,
        aliases=("arp_ip_targets",),
        networkd="ARPIPTargets", netplan="arp-ip-targets", ifupdown2=False,
    ),
    Option(
        "arp_validate", doc="Whether ARP probes and replies are validated.", ifla=9, wire="u32",
        choices=("none", "active", "backup", "all", "filter", "filter_active", "filter_backup"),
        modes=_ARP_MODES, effective=_ARP_MODES,
        networkd="ARPValidate", netplan="arp-validate", ifupdown2=False,
    ),
    Option(
        "arp_all_targets", doc="A slave is up when any or all ARP targets answer.", ifla=10,
        wire="u32", choices=("any", "all"), effective=_ARP_MODES,
        networkd="ARPAllTargets", netplan="arp-all-targets", ifupdown2=False,
    ),
    Option(
        "primary", doc="The preferred slave: active whenever it is up.", ifla=11,
        names_slave=True, modes=_ACTIVE_MODES, effective=_ACTIVE_MODES,
        networkd="PrimarySlave", netplan="primary",
    ),
    Option(
        "primary_reselect", doc="When the primary slave becomes active again.", ifla=12,
        choices=("always", "better", "failure"), effective=_ACTIVE_MODES,
        networkd="PrimaryReselectPolicy", netplan="primary-reselect-policy",
    ),
    Option(
        "fail_over_mac", doc="MAC policy on failover: none, active or follow.", ifla=13,
        choices=("none", "active", "follow"), effective=frozenset({AB}), no_slaves=True,
        takes_bond_mac="active", holds_bond_mac=True, networkd="FailOverMACPolicy",
        netplan="fail-over-mac-policy", ifupdown2=False,
    ),
    Option(
        "xmit_hash_policy", doc="Transmit hash for balance-xor, 802.3ad and tlb.", ifla=14,
        choices=("layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac"),
        effective=frozenset({XOR, LACP, TLB}),
        networkd="TransmitHashPolicy", netplan="transmit-hash-policy",
    ),
    Option(
        "resend_igmp", doc="IGMP membership reports sent after a failover.", ifla=15, default=1,
        maximum=255, networkd="ResendIGMP", netplan="resend-igmp", ifupdown2=False,
    ),
    Option(
        "num_grat_arp", doc="Peer notifications (gratuitous ARP, unsolicited NA) sent after a "
        "failover.", ifla=16, default=1, wire="u8", json_key="num_peer_notif",
        ifla_name="IFLA_BOND_NUM_PEER_NOTIF", maximum=255, effective=_ACTIVE_MODES,
        aliases=("num_unsol_na", "num_peer_notif"),
        networkd="GratuitousARP", netplan="gratuitous-arp",
    ),
    Option(
        "all_slaves_active", doc="Deliver duplicate frames received on inactive slaves.",
        ifla=17, kind="flag",
        networkd="AllSlavesActive", netplan="all-slaves-active", ifupdown2=False,
        nmstate_words=("dropped", "delivered"),
    ),
    Option(
        "min_links", doc="Minimum slaves up before the bond reports carrier.", ifla=18,
        min_up=True, effective=frozenset({LACP}), networkd="MinLinks", netplan="min-links",
    ),
    Option(
        "lp_interval", doc="Seconds between learning packets to each slave's switch.", ifla=19,
        default=1, minimum=1, effective=frozenset({TLB, ALB}),
        # systemd's bond.c nests LearnPacketIntervalSec= under ARPIntervalSec=.
        networkd="LearnPacketIntervalSec", networkd_with="arp_interval",
        netplan="learn-packet-interval", ifupdown2=False, unit="s",
    ),
    Option(
        "packets_per_slave", doc="Packets sent through a slave before moving on (balance-rr); "
        "0 picks slaves at random.", ifla=20, default=1, maximum=65535,
        modes=frozenset({RR}), effective=frozenset({RR}),
        networkd="PacketsPerSlave", netplan="packets-per-slave", ifupdown2=False,
    ),
    Option(
        "lacp_rate", doc="LACPDU rate asked of the 802.3ad partner: slow (30 s) or fast (1 s).",
        ifla=21, json_key="ad_lacp_rate", ifla_name="IFLA_BOND_AD_LACP_RATE",
        choices=("slow", "fast"), modes=frozenset({LACP}), effective=frozenset({LACP}),
        down=True, networkd="LACPTransmitRate", netplan="lacp-rate",
    ),
    Option(
        "ad_select", doc="802.3ad aggregator selection logic.", ifla=22,
        choices=("stable", "bandwidth", "count"), effective=frozenset({LACP}), down=True,
        networkd="AdSelect", netplan="ad-select", ifupdown2=False,
    ),
    Option(
        "ad_actor_sys_prio", doc="802.3ad system priority.", ifla=24, default=65535, wire="u16",
        minimum=1, maximum=65535, modes=frozenset({LACP}), effective=frozenset({LACP}),
        networkd="AdActorSystemPriority",
    ),
    Option(
        "ad_user_port_key", doc="802.3ad user part of the port key (upper 10 bits).", ifla=25,
        wire="u16", maximum=1023, modes=frozenset({LACP}), effective=frozenset({LACP}),
        down=True, networkd="AdUserPortKey", ifupdown2=False,
    ),
    Option(
        "ad_actor_system", doc="802.3ad system MAC in LACPDUs (not multicast).", ifla=26,
        kind="mac", default="00:00:00:00:00:00",
        modes=frozenset({LACP}), effective=frozenset({LACP}), networkd="AdActorSystem",
    ),
    Option(
        "tlb_dynamic_lb", doc="Shuffle flows between slaves by load (balance-tlb, "
        "balance-alb).", ifla=27, kind="flag", default=1,
        modes=frozenset({TLB, ALB}), effective=frozenset({TLB, ALB}), down=True,
        networkd="DynamicTransmitLoadBalancing", ifupdown2=False,
    ),
    Option(
        "peer_notif_delay", doc="Delay in ms between peer notifications; a multiple of "
        "miimon.", ifla=28, json_key="peer_notify_delay", ip="peer_notify_delay",
        needs_miimon=True, maximum=300000, effective=_ACTIVE_MODES,
        aliases=("peer_notify_delay",), ifupdown2=False, nmstate=False, unit="ms",
    ),
    Option(
        "lacp_active", doc="Send LACPDUs periodically (1) or only when spoken to (0).", ifla=29,
        kind="flag", default=1, json_key="ad_lacp_active", ifla_name="IFLA_BOND_AD_LACP_ACTIVE",
        modes=frozenset({LACP}), effective=frozenset({LACP}), down=True,
        ifupdown2=False, nm=False, nmstate=False,
    ),
    Option(
        "arp_missed_max", doc="Missed ARP intervals before a slave is down.", ifla=30,
        default=2, wire="u8", minimum=1, maximum=255, ifla_name="IFLA_BOND_MISSED_MAX",
        modes=_ARP_MODES, effective=_ARP_MODES, aliases=("missed_max",),
        ifupdown2=False, nm=False, nmstate=False,
    ),
    Option(
        "ns_ip6_target", doc="IPv6 addresses the ARP/NS monitor probes.", ifla=31,
        kind="ipv6list", cni_key="nsIp6Targets", sysfs=None, needs_arp=True,
        effective=_ARP_MODES, aliases=("ns_ip6_targets",),
        ifupdown2=False, nm=False, nmstate=False,
    ),
    Option(
        "coupled_control", doc="802.3ad coupled control of the collecting and distributing "
        "states.", ifla=32, kind="flag", default=1,
        # No ip keyword before iproute2 6.10 (Debian 12 has 6.1) and no sysfs file: netlink
        # only. Upstream since 6.9, backported by some distributions (Debian's 6.1 has it):
        # the read-back after every change, not this version, decides whether it took.
        ip=None, sysfs=None, modes=frozenset({LACP}), effective=frozenset({LACP}),
        down=True, min_kernel=(6, 9), ifupdown2=False, nm=False, nmstate=False,
    ),
)

OPTIONS: dict[str, Option] = {opt.name: opt for opt in _OPTIONS}
MODE = next(opt for opt in _OPTIONS if opt.is_mode)
# Everything a bond's `options` holds: the mode is the bond's kind, kept beside them.
SETTINGS: dict[str, Option] = {opt.name: opt for opt in _OPTIONS if not opt.is_mode}
# The slave the bond carries traffic on now: a request the kernel may move on failover.
ACTIVE = next(opt for opt in _OPTIONS if opt.transient)


class SlaveOption:
    """A per-slave option, set with `ip link set SLAVE type bond_slave KEY VALUE`. Keys default
    from the name as an Option's do. A slave moved out of its bond and back keeps every one."""

    __slots__ = (
        "cni_key", "default", "doc", "ifla", "ifla_name", "json_key", "maximum", "minimum",
        "modes", "name", "nm_port", "sysfs", "wire",
    )

    def __init__(
        self,
        name: str,
        *,
        doc: str,
        ifla: int,  # IFLA_BOND_SLAVE_*
        wire: Wire,
        minimum: int,
        maximum: int,
        default: int = 0,
        json_key: str | None = None,
        cni_key: str | None = None,
        sysfs: str | None = SAME,  # /sys/class/net/SLAVE/bonding_slave/ file; None: netlink only
        modes: frozenset[int] = ALL_MODES,
        nm_port: str | None = None,  # NetworkManager 1.42 keyfile [bond-port] key (formats)
    ) -> None:
        self.name = name
        self.default = default
        self.doc = doc
        self.ifla = ifla
        self.wire = wire
        self.json_key = json_key or name
        self.cni_key = cni_key or camel(name)
        self.sysfs = name if sysfs == SAME else sysfs
        self.ifla_name = "IFLA_BOND_SLAVE_" + name.upper()
        self.minimum = minimum
        self.maximum = maximum
        self.modes = modes
        self.nm_port = nm_port

    def __repr__(self) -> str:
        return f"SlaveOption({self.name!r})"

    def parse(self, raw: object) -> int:
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise TypeError
            number = int(raw.strip() if isinstance(raw, str) else raw)
            if not self.minimum <= number <= self.maximum:
                raise ValueError
        except (TypeError, ValueError):
            raise ValidationError(
                f"{self.name}: invalid value {raw!r}: expected an integer from "
                f"{self.minimum} to {self.maximum}"
            ) from None
        return number


SLAVE_OPTIONS: dict[str, SlaveOption] = {
    opt.name: opt
    for opt in (
        SlaveOption(
            "queue_id", doc="Transmit queue this slave is mapped to.", ifla=5, wire="u16",
            minimum=0, maximum=65535, nm_port="queue-id",
        ),
        SlaveOption(
            "prio", doc="Priority when a new active slave is chosen (higher wins).", ifla=9,
            wire="s32", sysfs=None, minimum=-(2**31), maximum=2**31 - 1, modes=_ACTIVE_MODES,
        ),
    )
}


class SlaveField(Record):
    """Per-slave state the kernel reports (read only); spelled by its name in ip -j and sysfs."""

    name: str
    ifla: int  # IFLA_BOND_SLAVE_*
    wire: str  # "u8", "u16", "u32", "mac", or "state"/"mii": an index into the names below

    @property
    def json_key(self) -> str:
        return self.name

    @property
    def sysfs(self) -> str:
        return self.name


SLAVE_FIELDS: tuple[SlaveField, ...] = (
    SlaveField("state", 1, "state"),
    SlaveField("mii_status", 2, "mii"),
    SlaveField("link_failure_count", 3, "u32"),
    SlaveField("perm_hwaddr", 4, "mac"),
    SlaveField("ad_aggregator_id", 6, "u16"),
    SlaveField("ad_actor_oper_port_state", 7, "u8"),
    SlaveField("ad_partner_oper_port_state", 8, "u16"),
)
SLAVE_STATES = ("active", "backup")  # IFLA_BOND_SLAVE_STATE 0/1
MII_STATES = ("up", "going_down", "down", "going_back")  # BOND_LINK_UP .. BOND_LINK_BACK

# IFLA_BOND_AD_INFO nested attributes: (name, attribute, wire), 802.3ad only.
AD_INFO_FIELDS: tuple[tuple[str, int, Wire], ...] = (
    ("aggregator", 1, "u16"),
    ("num_ports", 2, "u16"),
    ("actor_key", 3, "u16"),
    ("partner_key", 4, "u16"),
    ("partner_mac", 5, "mac"),
)
IFLA_BOND_AD_INFO = 23


def _index() -> dict[str, Option]:
    by_any: dict[str, Option] = {}
    for opt in _OPTIONS:
        for key in (opt.name, opt.cni_key, opt.json_key, opt.ip or opt.name, *opt.aliases):
            by_any.setdefault(key.lower(), opt)
        by_any.setdefault(opt.name.replace("_", "-"), opt)
    return by_any


_BY_ANY_NAME = _index()


def lookup(key: str) -> Option:
    """The option for any of its spellings: kernel name, CNI key, ip keyword, JSON key, CLI."""
    opt = _BY_ANY_NAME.get(key.strip().lower())
    if opt is None:
        suggestion = suggest(key)
        hint = f" (did you mean {suggestion}?)" if suggestion else ""
        raise ValidationError(f"unknown bonding option {key!r}{hint}")
    return opt


def suggest(key: str) -> str | None:
    """The closest option name to a misspelled key, for warnings and errors."""
    import difflib  # only on the error path

    names = [opt.name for opt in _OPTIONS] + [opt.cni_key for opt in _OPTIONS]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    return close[0] if close else None


def near_miss(key: str, known: Iterable[str]) -> str | None:
    """The known key that `key` is one slip away from: the same but for letter case, or one
    edit apart (a letter inserted, dropped, changed, or two neighbours swapped), compared
    without case. None when `key` is itself known, or nothing is that close.

    For config keys (CNI): a near miss is a typo to refuse with "did you mean", while a key
    far from every known one belongs to someone else and is ignored."""
    names = list(known)
    if key in names:
        return None
    folded = key.lower()
    for name in names:
        if name.lower() == folded:
            return name
    for name in names:
        if _one_edit(folded, name.lower()):
            return name
    return None


def _one_edit(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def ineffective(mode: str, options: Mapping[str, Value]) -> list[tuple[str, str]]:
    """(option, why) for each option of `options` (canonical, from parse_options) that the
    kernel accepts in `mode` but that changes nothing there (Option.effective), given with a
    value other than the kernel default.

    The rule, shared by the CLI and the CNI plugin (docs/cli.md, "Options without effect"):
    such an option is applied, never refused (the kernel takes and keeps it, it takes effect
    if the mode changes later, and configs written for bond-cni carry them), but never in
    silence either: each one is warned about, naming the modes where it would work. Options
    the kernel refuses in the mode (not in Option.modes) are errors: check_combination.
    """
    number = mode_number(mode)
    out = []
    for name, value in options.items():
        opt = OPTIONS.get(name)
        if opt is None or number in opt.effective or number not in opt.modes:
            continue
        if value == opt.default:
            continue  # nothing asked for, nothing lost
        out.append((name, f"{name} has no effect in mode {mode}; it takes effect in: "
                          f"{opt.mode_names(opt.effective)}"))
    return out


def mode_number(mode: str) -> int:
    return MODES.index(mode)


# What a mode is, beyond which options it takes: the rules health, the monitor and the CNI
# apply, stated once here.
_NEEDS_ACTIVE = frozenset({AB})  # with no active slave the bond carries no traffic
_AGGREGATES = frozenset({LACP})  # slaves form aggregators with an LACP partner
_DISTINCT_MACS = frozenset({TLB, ALB})  # the kernel refuses a slave whose MAC another has


def needs_active_slave(mode: str) -> bool:
    return mode_number(mode) in _NEEDS_ACTIVE


def aggregates(mode: str) -> bool:
    return mode_number(mode) in _AGGREGATES


def needs_distinct_slave_macs(mode: str) -> bool:
    return mode_number(mode) in _DISTINCT_MACS


def parse_options(raw: Mapping[str, object]) -> dict[str, Value]:
    """Canonical {kernel name: value} for options given under any spelling."""
    out: dict[str, Value] = {}
    for key, value in raw.items():
        opt = lookup(key)
        if opt.name in out:
            raise ValidationError(f"option {opt.name} is given twice (as {key!r})")
        out[opt.name] = opt.parse(value)
    return out


_NEEDS_MIIMON = tuple(opt.name for opt in _OPTIONS if opt.needs_miimon)
_NEEDS_ARP = tuple(opt.name for opt in _OPTIONS if opt.needs_arp)
_NAMES_SLAVE = tuple(opt.name for opt in _OPTIONS if opt.names_slave)
_TAKES_BOND_MAC = tuple(opt for opt in _OPTIONS if opt.takes_bond_mac)
_HOLDS_BOND_MAC = tuple(opt for opt in _OPTIONS if opt.holds_bond_mac)
_FORCED_MIIMON = 100  # BOND_DEFAULT_MIIMON, forced by modes that cannot use the ARP monitor


def effective_miimon(mode: str, options: Mapping[str, Value]) -> int:
    """The miimon the kernel ends up with (bond_option_mode_set forces 100 in 4, 5, 6)."""
    if "miimon" in options:
        return int(options["miimon"])  # type: ignore[arg-type]
    if int(options.get("arp_interval", 0)) > 0:  # type: ignore[arg-type]
        return 0
    if mode_number(mode) not in _ARP_MODES:
        return _FORCED_MIIMON
    return int(OPTIONS["miimon"].default)  # type: ignore[arg-type]


def after_change(current: Mapping[str, Value], changes: Mapping[str, Value]) -> dict[str, Value]:
    """The options as the kernel will hold them after a live change: turning one link monitor
    on turns the other off (bond_option_miimon_set, bond_option_arp_interval_set)."""
    merged = {**current, **changes}
    if int(changes.get("arp_interval", 0)) > 0 and "miimon" not in changes:  # type: ignore[arg-type]
        merged["miimon"] = 0
    if int(changes.get("miimon", 0)) > 0 and "arp_interval" not in changes:  # type: ignore[arg-type]
        merged["arp_interval"] = 0
    merged.pop(MODE.name, None)
    return merged


def mac_held_by(mode: str, options: Mapping[str, Value]) -> Option | None:
    """The option that makes the kernel ignore a new MAC for a live bond in this mode with
    these options, or None when a MAC change takes. A new bond is not held: it takes its
    MAC before any option."""
    number = mode_number(mode)
    for opt in _HOLDS_BOND_MAC:
        if number in opt.effective and options.get(opt.name, opt.default) != opt.default:
            return opt
    return None


def idle(options: Mapping[str, Value]) -> list[str]:
    """The options of `options` whose monitor is off: targets without the ARP monitor. The
    kernel keeps them, but asking for them (check_combination) is refused."""
    if int(options.get("arp_interval", 0)) > 0:  # type: ignore[arg-type]
        return []
    return [name for name in options if name in _NEEDS_ARP]


def check_combination(
    mode: str,
    options: Mapping[str, Value],
    slaves: Iterable[str] | None = None,
    changed: Iterable[str] | None = None,
    *,
    mac: str | None = None,
) -> None:
    """Refuse combinations the kernel would refuse or silently bend, naming what and why.

    `options` are canonical (from parse_options) and exclude the mode. For a live change,
    `options` is the merged view and `changed` the keys being set: only those must suit
    the mode (the kernel reports every option in every mode). `mac` is the bond's own MAC
    address, when one is asked for.
    """
    number = mode_number(mode)
    for name in options if changed is None else changed:
        opt = OPTIONS[name]
        if number not in opt.modes:
            raise ValidationError(
                f"{name} is not supported in mode {mode}; it applies to: {opt.mode_names()}"
            )
    miimon = int(options.get("miimon", 0))  # type: ignore[arg-type]
    arp_interval = int(options.get("arp_interval", 0))  # type: ignore[arg-type]
    if miimon > 0 and arp_interval > 0:
        raise ValidationError(
            f"miimon ({miimon}) and arp_interval ({arp_interval}) exclude each other: "
            "the bond uses either the MII or the ARP monitor"
        )
    effective = effective_miimon(mode, options)
    for name in _NEEDS_MIIMON:
        delay = int(options.get(name, 0))  # type: ignore[arg-type]
        if delay == 0:
            continue
        if effective == 0:
            raise ValidationError(f"{name} ({delay}) needs miimon > 0")
        if delay % effective:
            raise ValidationError(
                f"{name} ({delay}) must be a multiple of miimon ({effective}); "
                "the kernel would round it down"
            )
    for name in _NEEDS_ARP:
        if options.get(name) and arp_interval == 0:
            raise ValidationError(f"{name} needs arp_interval > 0 (the ARP monitor probes it)")
    for opt in _TAKES_BOND_MAC if mac is not None else ():
        taking = opt.takes_bond_mac
        if number in opt.effective and options.get(opt.name) == taking:
            # The kernel takes the MAC and, at the first active slave, replaces it with that
            # slave's: the bond would come out with another address than asked, every time.
            others = " or ".join(c for c in opt.choices if c != taking)
            raise ValidationError(
                f"mac {mac} cannot be kept with {opt.name} {taking} in mode {mode}: the bond "
                f"always takes its active slave's MAC (leave mac out, or use {opt.name} "
                f"{others})"
            )
    if slaves is not None:
        members = set(slaves)
        for name in _NAMES_SLAVE:
            value = options.get(name)
            if value and value not in members:
                raise ValidationError(
                    f"{name} {value!r} is not one of the bond's slaves "
                    f"({', '.join(sorted(members)) or 'none'})"
                )


def check_mtu(raw: object, what: str = "mtu") -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValidationError(f"{what}: expected an integer from {MIN_MTU} to {MAX_MTU}")
    try:
        mtu = int(raw)
    except ValueError:
        raise ValidationError(
            f"{what}: invalid value {raw!r}: expected an integer from {MIN_MTU} to {MAX_MTU}"
        ) from None
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise ValidationError(
            f"{what}: invalid value {mtu}: expected an integer from {MIN_MTU} to {MAX_MTU}"
        )
    return mtu


def check_mac(raw: object, what: str = "mac") -> str:
    try:
        mac = parse_mac(raw)
    except (TypeError, ValueError):
        raise ValidationError(f"{what}: invalid MAC address {raw!r}") from None
    if is_multicast_mac(mac) or mac == "00:00:00:00:00:00":
        raise ValidationError(f"{what}: {mac} is not a unicast MAC address")
    return mac
