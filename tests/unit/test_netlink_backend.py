"""The netlink backend without a kernel: each option's encoding, --dry-run lines, step errors,
and decoding of RTM_NEWLINK messages into the model.

Messages are taken apart again with rtnl's own parser, so a test fails when an attribute lands
under the wrong number, with the wrong width or in the wrong nest.
"""

from __future__ import annotations

import errno
import struct
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from bondctl import netlink as rtnl
from bondctl.backend import StepError
from bondctl.backends import netlink
from bondctl.backends.netlink import NetlinkBackend
from bondctl.errors import ValidationError
from bondctl.model import BondSpec
from bondctl.netns import CURRENT, Netns
from bondctl.ops import plan_create
from bondctl.options import (
    AD_INFO_FIELDS,
    IFLA_BOND_AD_INFO,
    MODES,
    OPTIONS,
    SLAVE_OPTIONS,
    Option,
)
from bondctl.registry import Registry
from bondctl.steps import CreateBond, DeleteLink, MoveLink, SetBond, SetLink, SetSlave, Step

REPO = Path(__file__).resolve().parents[2]
INDEXES = {"bond0": 10, "eth0": 11, "eth1": 12, "eth2": 13}
_WIDTHS = {"u8": 1, "u16": 2, "u32": 4, "s32": 4, "ifindex": 4, "mac": 6}


# --- helpers -----------------------------------------------------------------------------------
def payload(step: Step, fds: Iterable[int] = (77,)) -> bytes:
    fd = iter(fds)
    msg = netlink.message(step)
    return netlink._payload(msg, INDEXES.__getitem__, lambda ns: next(fd))


def header(data: bytes) -> tuple[int, int, int]:
    """(ifi_index, ifi_flags, ifi_change)."""
    _family, _type, index, flags, change = struct.unpack_from("=BxHiII", data)
    return index, flags, change


def attrs(data: bytes) -> list[tuple[int, bytes]]:
    return list(rtnl.iter_attrs(data, rtnl.IFINFOMSG_LEN))


def nested(raw: bytes) -> list[tuple[int, bytes]]:
    return list(rtnl.iter_attrs(raw))


def info_data(data: bytes) -> list[tuple[int, bytes]]:
    """The IFLA_BOND_* attributes of a bond message, in the order they were sent."""
    linkinfo = dict(attrs(data))[rtnl.IFLA_LINKINFO]
    info = dict(nested(linkinfo))
    assert rtnl.decode("string", info[rtnl.IFLA_INFO_KIND]) == "bond"
    return nested(info[rtnl.IFLA_INFO_DATA])


def sample(opt: Option) -> tuple[object, object]:
    """A value that differs from the default, and what it must read as on the wire."""
    if opt.kind == "enum":
        value = opt.choices[-1]
        return value, len(opt.choices) - 1
    if opt.kind == "flag":
        return 1 - int(opt.default), 1 - int(opt.default)
    if opt.kind == "ifname":
        return "eth1", INDEXES["eth1"]
    if opt.kind == "mac":
        return "02:00:00:00:00:42", "02:00:00:00:00:42"
    if opt.kind == "ipv4list":
        return ("192.0.2.1", "192.0.2.2"), ["192.0.2.1", "192.0.2.2"]
    if opt.kind == "ipv6list":
        return ("2001:db8::1", "2001:db8::2"), ["2001:db8::1", "2001:db8::2"]
    return opt.maximum if opt.maximum < 2**31 - 1 else 12345, None


# --- encoding of every option ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_is_encoded_by_the_catalogue(name: str) -> None:
    opt = OPTIONS[name]
    value, wire_value = sample(opt)
    if wire_value is None:
        wire_value = value
    [(number, raw)] = info_data(payload(SetBond("bond0", {name: value})))
    assert number == opt.ifla
    if opt.wire in _WIDTHS:
        assert len(raw) == _WIDTHS[opt.wire]
    assert rtnl.decode(opt.wire, raw) == wire_value


def test_integer_widths_are_the_kernels() -> None:
    cases = {"mode": ("802.3ad", b"\x04"), "lacp_rate": ("fast", b"\x01"),
             "ad_actor_sys_prio": (65535, b"\xff\xff"), "miimon": (100, struct.pack("=I", 100)),
             "ad_actor_system": ("02:aa:bb:cc:dd:ee", bytes.fromhex("02aabbccddee")),
             "arp_missed_max": (255, b"\xff"), "xmit_hash_policy": ("layer3+4", b"\x01")}
    for name, (value, raw) in cases.items():
        [(number, sent)] = info_data(payload(SetBond("bond0", {name: value})))
        assert (number, sent) == (OPTIONS[name].ifla, raw), name


@pytest.mark.parametrize("name", ["primary", "active_slave"])
def test_an_empty_slave_reference_clears_it_with_index_zero(name: str) -> None:
    [(number, raw)] = info_data(payload(SetBond("bond0", {name: ""})))
    assert (number, raw) == (OPTIONS[name].ifla, struct.pack("=I", 0))


def test_target_lists_are_nests_numbered_from_zero() -> None:
    data = payload(SetBond("bond0", {"arp_ip_target": ("192.0.2.1", "192.0.2.9")}))
    [(number, raw)] = info_data(data)
    assert number == OPTIONS["arp_ip_target"].ifla
    assert [i for i, _ in nested(raw)] == [0, 1]
    data = payload(SetBond("bond0", {"ns_ip6_target": ()}))
    assert info_data(data) == [(OPTIONS["ns_ip6_target"].ifla, b"")]  # empty: clears them


def test_options_go_in_catalogue_order_with_mode_first() -> None:
    step = SetBond("bond0", {"lacp_rate": "fast", "miimon": 100, "mode": "802.3ad"})
    numbers = [number for number, _ in info_data(payload(step))]
    assert numbers == [OPTIONS["mode"].ifla, OPTIONS["miimon"].ifla, OPTIONS["lacp_rate"].ifla]


def test_create_is_one_exclusive_request_with_link_attributes() -> None:
    step = CreateBond("bond0", "active-backup", {"miimon": 100}, mtu=9000,
                      mac="02:00:00:00:00:01")
    msg = netlink.message(step)
    assert (msg.type, msg.flags) == (rtnl.RTM_NEWLINK, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL)
    data = payload(step)
    top = dict(attrs(data))
    assert header(data) == (0, 0, 0)
    assert rtnl.decode("string", top[rtnl.IFLA_IFNAME]) == "bond0"
    assert rtnl.decode("u32", top[rtnl.IFLA_MTU]) == 9000
    assert rtnl.decode("mac", top[rtnl.IFLA_ADDRESS]) == "02:00:00:00:00:01"
    assert info_data(data) == [(1, bytes([MODES.index("active-backup")])),
                               (3, struct.pack("=I", 100))]


@pytest.mark.parametrize(("options", "expected"), [
    ({"queue_id": 3}, [(5, struct.pack("=H", 3))]),
    ({"prio": -7}, [(9, struct.pack("=i", -7))]),
    ({"prio": 7, "queue_id": 65535}, [(5, b"\xff\xff"), (9, struct.pack("=i", 7))]),
])
def test_slave_options_go_in_slave_data(options: dict[str, int], expected: list) -> None:
    data = payload(SetSlave("eth0", options))
    info = dict(nested(dict(attrs(data))[rtnl.IFLA_LINKINFO]))
    assert rtnl.IFLA_INFO_KIND not in info
    assert rtnl.decode("string", info[rtnl.IFLA_INFO_SLAVE_KIND]) == "bond"
    assert nested(info[rtnl.IFLA_INFO_SLAVE_DATA]) == expected
    assert {SLAVE_OPTIONS[n].ifla for n in options} == {number for number, _ in expected}


def test_enslave_release_and_flags() -> None:
    enslave = dict(attrs(payload(SetLink("eth0", master="bond0"))))
    assert rtnl.decode("u32", enslave[rtnl.IFLA_MASTER]) == INDEXES["bond0"]
    release = payload(SetLink("eth0", master=""))
    assert rtnl.decode("u32", dict(attrs(release))[rtnl.IFLA_MASTER]) == 0
    assert header(payload(SetLink("eth0", up=True))) == (0, rtnl.IFF_UP, rtnl.IFF_UP)
    assert header(payload(SetLink("eth0", up=False))) == (0, 0, rtnl.IFF_UP)
    assert header(payload(SetLink("eth0", mtu=1400))) == (0, 0, 0)


def test_rename_names_the_link_by_index() -> None:
    data = payload(SetLink("eth0", new_name="uplink0"))
    assert header(data)[0] == INDEXES["eth0"]
    assert [(n, rtnl.decode("string", raw)) for n, raw in attrs(data)] == [
        (rtnl.IFLA_IFNAME, "uplink0")]


def test_move_sends_the_target_namespace_fd_and_the_new_name() -> None:
    data = payload(MoveLink("eth0", Netns("/run/netns/pod", "pod"), "net1"), fds=[42])
    assert header(data)[0] == INDEXES["eth0"]
    assert attrs(data) == [(rtnl.IFLA_NET_NS_FD, struct.pack("=I", 42)),
                           (rtnl.IFLA_IFNAME, b"net1\0")]
    plain = payload(MoveLink("eth0", CURRENT), fds=[5])
    assert attrs(plain) == [(rtnl.IFLA_IFNAME, b"eth0\0"),
                            (rtnl.IFLA_NET_NS_FD, struct.pack("=I", 5))]


def test_delete() -> None:
    msg = netlink.message(DeleteLink("bond0"))
    assert msg.type == rtnl.RTM_DELLINK
    assert attrs(payload(DeleteLink("bond0"))) == [(rtnl.IFLA_IFNAME, b"bond0\0")]


@pytest.mark.parametrize("step", [
    SetLink("eth0/../x", up=True),
    SetLink("eth0", master="a b"),
    SetLink("eth0", new_name="x" * 16),
    CreateBond("bond0", "802.3ad", {"lacp_rate": "medium"}),
    CreateBond("bond0", "nonsense", {}),
    SetBond("bond0", {"no_such_option": 1}),
    SetBond("bond0", {"primary": "eth:0"}),
    SetBond("bond0", {"miimon": -1}),
    SetSlave("eth0", {"queue_id": 70000}),
    SetSlave("eth0", {"weight": 1}),
    SetLink("eth0", mtu=10),
    SetLink("eth0", mac="01:00:5e:00:00:01"),
    MoveLink("eth0", CURRENT, "bad/name"),
])
def test_bad_names_and_values_are_refused_before_sending(step: Step) -> None:
    with pytest.raises(ValidationError):
        netlink.message(step)


# --- execute, on a fake socket -----------------------------------------------------------------
class FakeRtnl:
    """Stands in for an open rtnl.Rtnl: records requests, fails the one at `fail_at`."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sent: list[tuple[int, int, bytes]] = []
        self.fail_at = fail_at
        self.closed = False

    def __enter__(self) -> FakeRtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def index_of(self, name: str) -> int:
        if name not in INDEXES:
            raise rtnl.NetlinkError(errno.ENODEV, f"No such device: {name}")
        return INDEXES[name]

    def request(self, msg_type: int, flags: int, data: bytes) -> list[rtnl.NlMsg]:
        if len(self.sent) == self.fail_at:
            raise rtnl.NetlinkError.from_kernel(errno.EPERM, "Device can not be enslaved while up")
        self.sent.append((msg_type, flags, data))
        return []


class Opener:
    """Replaces rtnl.Rtnl.open: every socket opened, and where the next one fails."""

    def __init__(self) -> None:
        self.opened: list[FakeRtnl] = []
        self.netns: list[str | None] = []
        self.fail_at: int | None = None

    def __call__(self, netns: str | None = None) -> FakeRtnl:
        sock = FakeRtnl(self.fail_at)
        self.opened.append(sock)
        self.netns.append(netns)
        return sock


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Opener:
    opener = Opener()
    monkeypatch.setattr(rtnl.Rtnl, "open", staticmethod(opener))
    return opener


def test_execute_sends_each_step_in_order_on_one_socket(fake: Opener) -> None:
    spec = BondSpec.build("bond0", "balance-xor", {}, ["eth0", "eth1"])
    steps = plan_create(spec)
    NetlinkBackend().execute(steps, Netns("/run/netns/t", "t"))
    [sock] = fake.opened
    assert fake.netns == ["/run/netns/t"] and sock.closed
    assert [data for _, _, data in sock.sent] == [payload(step) for step in steps]


def test_first_failure_stops_and_reports_kernel_text(fake: Opener) -> None:
    fake.fail_at = 2
    steps = plan_create(BondSpec.build("bond0", "balance-xor", {}, ["eth0"]))
    with pytest.raises(StepError) as caught:
        NetlinkBackend().execute(steps, CURRENT)
    assert caught.value.done == 2 and caught.value.step == steps[2]
    assert "Device can not be enslaved while up" in str(caught.value)
    assert "enslave eth0 to bond0" in str(caught.value)
    assert len(fake.opened[0].sent) == 2


def test_unknown_link_fails_its_step(fake: Opener) -> None:
    steps = [SetLink("eth0", up=False), SetLink("eth0", master="ghost0")]
    with pytest.raises(StepError, match="No such device: ghost0") as caught:
        NetlinkBackend().execute(steps, CURRENT)
    assert caught.value.done == 1


def test_invalid_step_sends_nothing(fake: Opener) -> None:
    with pytest.raises(ValidationError):
        NetlinkBackend().execute([SetLink("eth0", up=False), SetLink("bad name")], CURRENT)
    assert fake.opened == []


# --- render ------------------------------------------------------------------------------------
def test_render_one_line_per_message() -> None:
    spec = BondSpec.build("bond0", "802.3ad", {"lacp_rate": "fast", "miimon": 100},
                          ["eth0"], slave_options={"eth0": {"queue_id": 2}})
    lines = NetlinkBackend().render(plan_create(spec), CURRENT)
    assert lines == [
        "RTM_NEWLINK (NLM_F_CREATE|NLM_F_EXCL) ifname=bond0 linkinfo={kind=bond, "
        "data={IFLA_BOND_MODE=4, IFLA_BOND_MIIMON=100, IFLA_BOND_AD_LACP_RATE=1}}",
        "RTM_NEWLINK flags=0 change=IFF_UP ifname=eth0",
        "RTM_NEWLINK ifname=eth0 master=ifindex(bond0)",
        "RTM_NEWLINK ifname=eth0 linkinfo={slave_kind=bond, "
        "slave_data={IFLA_BOND_SLAVE_QUEUE_ID=2}}",
        "RTM_NEWLINK flags=IFF_UP change=IFF_UP ifname=eth0",
        "RTM_NEWLINK flags=IFF_UP change=IFF_UP ifname=bond0",
    ]


def test_render_other_steps_and_namespace() -> None:
    ns = Netns("/run/netns/pod", "pod")
    steps: list[Step] = [
        SetBond("bond0", {"primary": "eth1", "arp_ip_target": ("192.0.2.1", "192.0.2.2"),
                          "active_slave": ""}),
        MoveLink("eth0", CURRENT, "net1"),
        MoveLink("eth0", Netns("/proc/1/ns/net", None)),
        SetLink("eth0", mtu=1400, mac="02:00:00:00:00:09", new_name="e0"),
        DeleteLink("bond0"),
    ]
    assert NetlinkBackend().render(steps, ns) == [
        "[netns pod] RTM_NEWLINK ifname=bond0 linkinfo={kind=bond, data={"
        "IFLA_BOND_ACTIVE_SLAVE=0, IFLA_BOND_ARP_IP_TARGET=[192.0.2.1, 192.0.2.2], "
        "IFLA_BOND_PRIMARY=ifindex(eth1)}}",
        "[netns pod] RTM_NEWLINK index=ifindex(eth0) "
        "net_ns_fd=fd(/proc/thread-self/ns/net) ifname=net1",
        "[netns pod] RTM_NEWLINK ifname=eth0 net_ns_fd=fd(/proc/1/ns/net)",
        "[netns pod] RTM_NEWLINK index=ifindex(eth0) mtu=1400 address=02:00:00:00:00:09 "
        "ifname=e0",
        "[netns pod] RTM_DELLINK ifname=bond0",
    ]


def test_render_names_attributes_after_the_catalogue() -> None:
    step = SetBond("bond0", {name: sample(opt)[0] for name, opt in OPTIONS.items()})
    [line] = NetlinkBackend().render([step], CURRENT)
    for opt in OPTIONS.values():
        assert f"{opt.ifla_name}=" in line


# --- decoding ----------------------------------------------------------------------------------
def link_msg(index: int, name: str, *extra: bytes, flags: int = rtnl.IFF_UP) -> rtnl.LinkMessage:
    data = rtnl.ifinfomsg(index, flags) + rtnl.nla_string(rtnl.IFLA_IFNAME, name)
    data += rtnl.nla_u32(rtnl.IFLA_MTU, 1500) + b"".join(extra)
    [msg] = rtnl.parse_messages(rtnl.nlmsg(rtnl.RTM_NEWLINK, 0, 0, data))
    return rtnl.decode_link(msg)


def bond_attr(name: str, value: object) -> bytes:
    opt = OPTIONS[name]
    return rtnl.encode(opt.ifla, opt.wire, value)


def test_decoded_bond_has_canonical_values() -> None:
    data = [bond_attr("mode", 1), bond_attr("miimon", 100), bond_attr("primary", 12),
            bond_attr("active_slave", 11), bond_attr("arp_validate", 0),
            bond_attr("arp_ip_target", ["192.0.2.7"]), bond_attr("lacp_active", 1),
            bond_attr("ad_actor_system", "02:00:00:00:00:01")]
    bond = link_msg(10, "bond0", rtnl.nla_mac(rtnl.IFLA_ADDRESS, "02:00:00:00:00:10"),
                    rtnl.linkinfo("bond", data))
    slave_data = [rtnl.nla_u8(1, 1), rtnl.nla_u8(2, 2), rtnl.nla_u32(3, 4),
                  rtnl.nla_mac(4, "02:00:00:00:00:0c"), rtnl.nla_u16(5, 3),
                  rtnl.nla_s32(9, -2)]
    slaves = [link_msg(12, "eth1", rtnl.nla_u32(rtnl.IFLA_MASTER, 10),
                       rtnl.linkinfo(None, None, "bond", slave_data), flags=0),
              link_msg(11, "eth0", rtnl.nla_u32(rtnl.IFLA_MASTER, 10),
                       rtnl.linkinfo(None, None, "bond", [rtnl.nla_u8(1, 0)]))]
    found = [bond, *slaves, link_msg(13, "eth2")]
    [state] = [netlink.to_bond(link, found, netlink._names(found), Netns("/run/netns/a", "a"))
               for link in found if link.kind == "bond"]
    assert (state.name, state.mode, state.index, state.netns) == ("bond0", "active-backup", 10, "a")
    assert state.mac == "02:00:00:00:00:10" and state.ad_info is None
    assert state.options["primary"] == "eth1" and state.active_slave == "eth0"
    assert state.options["arp_validate"] == "none"
    assert state.options["arp_ip_target"] == ("192.0.2.7",)
    assert state.options["ns_ip6_target"] == ()  # left out by the kernel: none
    assert state.options["lacp_active"] == 1
    assert "lacp_rate" not in state.options  # left out by the kernel: not seen
    assert [s.name for s in state.slaves] == ["eth0", "eth1"]  # by ifindex
    eth0, eth1 = state.slaves
    assert (eth0.state, eth0.mii_status, eth0.prio, eth0.queue_id) == ("active", "", None, 0)
    assert (eth1.state, eth1.mii_status, eth1.link_failure_count) == ("backup", "down", 4)
    assert (eth1.perm_hwaddr, eth1.queue_id, eth1.prio, eth1.up) == (
        "02:00:00:00:00:0c", 3, -2, False)


def test_unset_slave_reference_and_ad_info() -> None:
    info = rtnl.nla_nested(IFLA_BOND_AD_INFO, [
        rtnl.encode(number, wire, value)
        for (_, number, wire), value in zip(AD_INFO_FIELDS, [1, 2, 3, 4, "02:00:00:00:00:99"],
                                            strict=True)])
    data = [bond_attr("mode", 4), bond_attr("active_slave", 0), info]
    bond = link_msg(10, "bond0", rtnl.linkinfo("bond", data))
    state = netlink.to_bond(bond, [bond], {10: "bond0"}, CURRENT)
    assert state.mode == "802.3ad" and state.netns is None
    assert state.options["active_slave"] == "" and state.options["primary"] == ""
    assert state.ad_info == {"aggregator": 1, "num_ports": 2, "actor_key": 3,
                             "partner_key": 4, "partner_mac": "02:00:00:00:00:99"}


def test_link_master_and_perm_address_as_ip_shows_them() -> None:
    same = link_msg(3, "eth0", rtnl.nla_mac(rtnl.IFLA_ADDRESS, "02:00:00:00:00:01"),
                    rtnl.nla_mac(rtnl.IFLA_PERM_ADDRESS, "02:00:00:00:00:01"),
                    rtnl.nla_u32(rtnl.IFLA_MASTER, 9))
    other = link_msg(4, "eth1", rtnl.nla_mac(rtnl.IFLA_ADDRESS, "02:00:00:00:00:02"),
                     rtnl.nla_mac(rtnl.IFLA_PERM_ADDRESS, "02:00:00:00:00:03"))
    a = netlink.to_link(same, {})
    b = netlink.to_link(other, {})
    assert (a.master, a.perm_mac, a.kind, a.up) == ("if9", None, "", True)
    assert (b.master, b.perm_mac) == (None, "02:00:00:00:00:03")


# --- registration and imports ------------------------------------------------------------------
def test_registered_as_the_preferred_backend() -> None:
    info = Registry().get("netlink")
    assert info.cls is NetlinkBackend and info.cls.priority == 30
    assert all(other.cls.priority < 30 for name, other in Registry().backends().items()
               if name != "netlink")
    assert NetlinkBackend.options == set(OPTIONS) - {"mode"}
    assert NetlinkBackend.slave_options == {"queue_id", "prio"}


def test_import_spawns_nothing_and_stays_light() -> None:
    # Modules the import adds (site's own imports, e.g. the editable finder's, do not count).
    code = ("import sys; before = set(sys.modules); import bondctl.backends.netlink; "
            "heavy = {'subprocess', 'sh', 'pluggy', 'pyroute2', 'dataclasses', 'socket', 'json',"
            " 'inspect', 'ctypes', 'enum'}; "
            "print(sorted(heavy & (set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_availability_reads_module_lists(tmp_path: Path) -> None:
    assert isinstance(NetlinkBackend.availability().ok, bool)
    from bondctl.kernel import bonding_listed

    assert bonding_listed("no-such-release") is False
