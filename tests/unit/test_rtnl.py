"""bondctl.netlink: wire encoding, error and dump handling on a fake socket, and the real kernel.

The real-kernel tests need root, iproute2 and veth (no bonding driver): each works in
throwaway network namespaces made with `ip netns add` and deleted afterwards.
"""

from __future__ import annotations

import _socket
import errno
import itertools
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bondctl import netlink as rtnl
from bondctl.netlink import (
    AF_INET,
    AF_INET6,
    NLA_F_NESTED,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_GETLINK,
    RTM_NEWLINK,
    NetlinkError,
    Rtnl,
)

REPO = Path(__file__).resolve().parents[2]


# --- encoding ----------------------------------------------------------------------------------
def test_attribute_is_padded_to_four_bytes() -> None:
    assert rtnl.nla(7, b"ab") == b"\x06\x00\x07\x00ab\x00\x00"
    assert rtnl.nla(7, b"abcd") == b"\x08\x00\x07\x00abcd"
    assert rtnl.nla(7, b"") == b"\x04\x00\x07\x00"


def test_string_is_nul_terminated_and_rejects_nul() -> None:
    assert rtnl.nla_string(3, "eth0") == b"\x09\x00\x03\x00eth0\x00\x00\x00\x00"
    with pytest.raises(ValueError):
        rtnl.nla_string(3, "a\0b")


@pytest.mark.parametrize(
    ("wire_type", "value", "payload"),
    [
        ("u8", 4, b"\x04"),
        ("u16", 65535, b"\xff\xff"),
        ("u32", 100, struct.pack("=I", 100)),
        ("s32", -1, b"\xff\xff\xff\xff"),
        ("ifindex", 7, struct.pack("=I", 7)),
        ("string", "layer3+4", b"layer3+4\0"),
        ("mac", "02:00:00:aa:bb:cc", b"\x02\x00\x00\xaa\xbb\xcc"),
    ],
)
def test_scalar_wire_types_round_trip(wire_type: str, value: object, payload: bytes) -> None:
    encoded = rtnl.encode(9, wire_type, value)
    [(attr_type, raw)] = rtnl.iter_attrs(encoded)
    assert (attr_type, raw) == (9, payload)
    assert len(encoded) % 4 == 0
    assert rtnl.decode(wire_type, raw) == value


def test_ipv4_target_list_is_a_flagged_nest_indexed_from_zero() -> None:
    encoded = rtnl.encode(8, "in_addr_list", ["192.0.2.1", "198.51.100.7"])
    _, outer_type = struct.unpack_from("=HH", encoded)
    assert outer_type == 8 | NLA_F_NESTED
    [(attr_type, nest)] = rtnl.iter_attrs(encoded)
    assert attr_type == 8
    assert list(rtnl.iter_attrs(nest)) == [(0, b"\xc0\x00\x02\x01"), (1, b"\xc6\x33\x64\x07")]
    assert rtnl.decode("in_addr_list", nest) == ["192.0.2.1", "198.51.100.7"]


def test_ipv6_target_list_round_trips() -> None:
    targets = ["2001:db8::1", "fe80::2"]
    [(_, nest)] = rtnl.iter_attrs(rtnl.encode(31, "in6_addr_list", targets))
    assert [len(raw) for _, raw in rtnl.iter_attrs(nest)] == [16, 16]
    assert rtnl.decode("in6_addr_list", nest) == targets
    assert rtnl.decode("in6_addr_list", b"") == []


@pytest.mark.parametrize(
    ("wire_type", "value", "error"),
    [
        ("u8", 256, ValueError),
        ("u16", -1, ValueError),
        ("u32", True, TypeError),
        ("u32", "1", TypeError),
        ("string", 1, TypeError),
        ("mac", "02:00:00:aa:bb", None),  # any octet count is a valid address format
        ("mac", "02:00:00:aa:bb:c", ValueError),
        ("mac", "02:00:00:aa:bb:gg", ValueError),
        ("mac", "02-00-00-aa-bb-cc", ValueError),
        ("in_addr_list", "192.0.2.1", TypeError),
        ("in_addr_list", ["2001:db8::1"], ValueError),
        ("in6_addr_list", ["192.0.2.1"], ValueError),
        ("in_addr_list", ["192.0.2.300"], ValueError),
        ("u64", 1, ValueError),
    ],
)
def test_encode_rejects_bad_values(wire_type: str, value: object, error: type | None) -> None:
    if error is None:
        rtnl.encode(1, wire_type, value)
        return
    with pytest.raises(error):
        rtnl.encode(1, wire_type, value)


def test_every_wire_type_has_an_encoder_and_a_decoder() -> None:
    samples: dict[str, object] = {
        "string": "x",
        "mac": "02:00:00:00:00:01",
        "in_addr_list": ["192.0.2.1"],
        "in6_addr_list": ["2001:db8::1"],
    }
    for wire_type in rtnl.WIRE_TYPES:
        value = samples.get(wire_type, 1)
        [(_, raw)] = rtnl.iter_attrs(rtnl.encode(1, wire_type, value))
        assert rtnl.decode(wire_type, raw) == value


def test_linkinfo_nests_kind_data_and_slave_data() -> None:
    info = rtnl.linkinfo("bond", [rtnl.nla_u8(1, 4)], "bond", [rtnl.nla_u16(5, 3)])
    [(attr_type, nest)] = rtnl.iter_attrs(info)
    assert attr_type == rtnl.IFLA_LINKINFO
    raw_types = [t for _, t in _raw_attr_types(nest)]
    assert raw_types == [
        rtnl.IFLA_INFO_KIND,
        rtnl.IFLA_INFO_DATA | NLA_F_NESTED,
        rtnl.IFLA_INFO_SLAVE_KIND,
        rtnl.IFLA_INFO_SLAVE_DATA | NLA_F_NESTED,
    ]
    parts = rtnl.parse_attrs(nest)
    assert rtnl.decode("string", parts[rtnl.IFLA_INFO_KIND]) == "bond"
    assert rtnl.parse_attrs(parts[rtnl.IFLA_INFO_DATA]) == {1: b"\x04"}
    with pytest.raises(ValueError):
        rtnl.linkinfo(None, [rtnl.nla_u8(1, 4)])
    with pytest.raises(ValueError):
        rtnl.linkinfo("bond", None, None, [])


def test_veth_peer_is_an_ifinfomsg_blob_not_a_nest() -> None:
    [(_, attr_type)] = _raw_attr_types(rtnl.veth_peer("vb"))
    assert attr_type == rtnl.VETH_INFO_PEER
    [(_, blob)] = rtnl.iter_attrs(rtnl.veth_peer("vb"))
    assert blob[: rtnl.IFINFOMSG_LEN] == rtnl.ifinfomsg()
    assert rtnl.parse_attrs(blob, rtnl.IFINFOMSG_LEN) == {rtnl.IFLA_IFNAME: b"vb\0"}


def _raw_attr_types(data: bytes) -> list[tuple[int, int]]:
    """(length, type with flags) of each attribute: iter_attrs() strips the flags."""
    out, offset = [], 0
    while offset < len(data):
        length, attr_type = struct.unpack_from("=HH", data, offset)
        out.append((length, attr_type))
        offset += rtnl.align(length)
    return out


def test_fixed_headers_have_the_kernel_sizes() -> None:
    assert len(rtnl.nlmsg(1, 0, 0, b"")) == rtnl.NLMSGHDR_LEN == 16
    assert len(rtnl.ifinfomsg()) == rtnl.IFINFOMSG_LEN == 16
    assert len(rtnl.ifaddrmsg(AF_INET, 24, 1)) == rtnl.IFADDRMSG_LEN == 8
    assert len(rtnl.rtmsg(AF_INET)) == rtnl.RTMSG_LEN == 12


@pytest.mark.parametrize(
    ("cidr", "expected"),
    [
        ("10.1.2.3/24", (AF_INET, bytes([10, 1, 2, 3]), 24)),
        ("10.1.2.3", (AF_INET, bytes([10, 1, 2, 3]), 32)),
        ("2001:db8::1/64", (AF_INET6, bytes.fromhex("20010db8" + "0" * 23 + "1"), 64)),
    ],
)
def test_parse_cidr(cidr: str, expected: tuple[int, bytes, int]) -> None:
    assert rtnl.parse_cidr(cidr) == expected


@pytest.mark.parametrize("cidr", ["10.1.2.3/33", "10.1.2.3/", "10.1.2/24", "::1/129", "x/1", "1/²"])
def test_parse_cidr_rejects(cidr: str) -> None:
    with pytest.raises(ValueError):
        rtnl.parse_cidr(cidr)


# --- decoding and errors -----------------------------------------------------------------------
def _link_msg(index: int, name: str, *attrs: bytes, seq: int = 0, flags: int = 0) -> bytes:
    payload = rtnl.ifinfomsg(index, rtnl.IFF_UP) + rtnl.nla_string(rtnl.IFLA_IFNAME, name)
    return rtnl.nlmsg(RTM_NEWLINK, flags, seq, payload + b"".join(attrs))


def test_decode_link_reads_linkinfo_and_stats() -> None:
    stats = struct.pack("=8Q", 1, 2, 3, 4, 5, 6, 7, 8) + bytes(8 * 16)
    data = _link_msg(
        5,
        "bond0",
        rtnl.nla_u32(rtnl.IFLA_MTU, 9000),
        rtnl.nla_mac(rtnl.IFLA_ADDRESS, "02:00:00:00:00:05"),
        rtnl.nla_u8(rtnl.IFLA_OPERSTATE, rtnl.IF_OPER_LOWERLAYERDOWN),
        rtnl.nla_u32(rtnl.IFLA_MASTER, 9),
        rtnl.linkinfo("bond", [rtnl.encode(8, "in_addr_list", ["192.0.2.1"])], "bond", []),
        rtnl.nla(rtnl.IFLA_STATS64, stats),
    )
    [msg] = rtnl.parse_messages(data)
    link = rtnl.decode_link(msg)
    assert (link.index, link.name, link.mtu, link.master) == (5, "bond0", 9000, 9)
    assert (link.address, link.operstate, link.up, link.lower_up) == (
        "02:00:00:00:00:05",
        "LOWERLAYERDOWN",
        True,
        False,
    )
    assert (link.kind, link.slave_kind, link.slave_data) == ("bond", "bond", {})
    assert rtnl.decode("in_addr_list", link.info_data[8]) == ["192.0.2.1"]
    assert link.stats is not None
    assert (link.stats.rx_packets, link.stats.tx_bytes, link.stats.tx_dropped) == (1, 4, 8)


def test_parse_messages_rejects_truncation() -> None:
    data = _link_msg(1, "lo")
    with pytest.raises(ValueError):
        rtnl.parse_messages(data[:-4])
    with pytest.raises(ValueError):
        list(rtnl.iter_attrs(b"\x08\x00\x01\x00ab"))


def _error_msg(code: int, request: bytes, seq: int, extack: str | None, capped: bool) -> bytes:
    flags = NLM_F_CAPPED if capped else 0
    payload = struct.pack("=i", code) + (request[: rtnl.NLMSGHDR_LEN] if capped else request)
    if extack is not None:
        flags |= NLM_F_ACK_TLVS
        payload += rtnl.nla_string(rtnl.NLMSGERR_ATTR_MSG, extack)
        payload += rtnl.nla_u32(rtnl.NLMSGERR_ATTR_OFFS, 20)
    return rtnl.nlmsg(NLMSG_ERROR, flags, seq, payload)


@pytest.mark.parametrize("capped", [True, False])
def test_error_carries_the_kernel_extack_text(capped: bool) -> None:
    request = rtnl.nlmsg(RTM_NEWLINK, 5, 42, rtnl.ifinfomsg() + rtnl.nla_string(3, "bond0"))
    data = _error_msg(-errno.EOPNOTSUPP, request, 42, "Unknown device type", capped)
    [msg] = rtnl.parse_messages(data)
    with pytest.raises(NetlinkError) as caught:
        rtnl.check_error(msg)
    assert caught.value.errno == errno.EOPNOTSUPP
    assert caught.value.extack == "Unknown device type"
    assert str(caught.value) == (
        f"[Errno {errno.EOPNOTSUPP}] {os.strerror(errno.EOPNOTSUPP)}: Unknown device type"
    )
    assert isinstance(caught.value, OSError)


def test_error_without_extack_and_ack() -> None:
    request = rtnl.nlmsg(RTM_NEWLINK, 5, 1, b"")
    [msg] = rtnl.parse_messages(_error_msg(-errno.ENODEV, request, 1, None, True))
    with pytest.raises(NetlinkError, match=r"No such device$"):
        rtnl.check_error(msg)
    [ack] = rtnl.parse_messages(_error_msg(0, request, 1, None, True))
    rtnl.check_error(ack)  # error 0 is an ack


# --- the socket, on a fake ---------------------------------------------------------------------
class FakeSocket:
    """Answers each sent request with datagrams from `respond(seq, attempt)`."""

    def __init__(self, respond: Callable[[int, int], list[bytes]]) -> None:
        self.respond = respond
        self.sent: list[bytes] = []
        self.queue: list[bytes] = []
        self.closed = False

    def send(self, data: bytes, flags: int = 0) -> int:
        self.sent.append(data)
        seq = struct.unpack_from("=IHHII", data)[3]
        self.queue.extend(self.respond(seq, len(self.sent)))
        return len(data)

    def recv_into(self, buffer: bytearray, nbytes: int = 0, flags: int = 0) -> int:
        if not self.queue:
            raise TimeoutError
        datagram = self.queue[0]
        size = min(len(datagram), nbytes or len(buffer))
        buffer[:size] = datagram[:size]
        if flags & _socket.MSG_PEEK:
            return len(datagram) if flags & _socket.MSG_TRUNC else size
        self.queue.pop(0)
        return size

    def settimeout(self, value: float | None) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _done(seq: int, flags: int = 0) -> bytes:
    return rtnl.nlmsg(NLMSG_DONE, NLM_F_MULTI | flags, seq, struct.pack("=i", 0))


def test_dump_is_retried_when_interrupted() -> None:
    def respond(seq: int, attempt: int) -> list[bytes]:
        intr = NLM_F_DUMP_INTR if attempt < 3 else 0
        links = _link_msg(1, "lo", seq=seq, flags=NLM_F_MULTI)
        links += _link_msg(2, f"try{attempt}", seq=seq, flags=NLM_F_MULTI | intr)
        return [links, _done(seq, intr)]

    fake = FakeSocket(respond)
    links = Rtnl(fake).list_links()
    assert [link.name for link in links] == ["lo", "try3"]
    assert len(fake.sent) == 3
    first = struct.unpack_from("=IHHII", fake.sent[0])
    assert first[1] == RTM_GETLINK
    assert first[2] & NLM_F_DUMP == NLM_F_DUMP


def test_dump_gives_up_after_a_few_interrupted_attempts() -> None:
    def respond(seq: int, attempt: int) -> list[bytes]:
        return [_link_msg(1, "lo", seq=seq, flags=NLM_F_MULTI), _done(seq, NLM_F_DUMP_INTR)]

    fake = FakeSocket(respond)
    with pytest.raises(NetlinkError) as caught:
        Rtnl(fake).list_links()
    assert caught.value.errno == errno.EINTR
    assert len(fake.sent) == Rtnl.dump_attempts


def test_dump_error_in_done_is_raised() -> None:
    def respond(seq: int, attempt: int) -> list[bytes]:
        payload = struct.pack("=i", -errno.EMSGSIZE) + rtnl.nla_string(1, "too big")
        return [rtnl.nlmsg(NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS, seq, payload)]

    with pytest.raises(NetlinkError, match="too big"):
        Rtnl(FakeSocket(respond)).list_links()


def test_request_skips_stale_replies_and_returns_before_the_ack() -> None:
    def respond(seq: int, attempt: int) -> list[bytes]:
        stale = _link_msg(9, "stale", seq=seq - 1)
        event = _link_msg(8, "event", seq=0)
        ack = _error_msg(0, rtnl.nlmsg(RTM_GETLINK, 5, seq, b""), seq, None, True)
        return [stale + event, _link_msg(1, "lo", seq=seq) + ack]

    fake = FakeSocket(respond)
    with Rtnl(fake) as sock:
        assert sock.get_link("lo") == rtnl.decode_link(rtnl.parse_messages(_link_msg(1, "lo"))[0])
    assert fake.closed


def test_large_datagram_grows_the_buffer() -> None:
    big = rtnl.nla(rtnl.IFLA_IFALIAS, b"x" * 60000)

    def respond(seq: int, attempt: int) -> list[bytes]:
        ack = _error_msg(0, rtnl.nlmsg(RTM_GETLINK, 5, seq, b""), seq, None, True)
        return [_link_msg(1, "big", big, seq=seq) + ack]

    assert Rtnl(FakeSocket(respond)).request(RTM_GETLINK, 0, rtnl.ifinfomsg(1))[0].seq == 1


def test_get_link_missing_is_none_and_other_errors_raise() -> None:
    def respond(code: int) -> Callable[[int, int], list[bytes]]:
        return lambda seq, attempt: [_error_msg(code, b"\0" * 16, seq, None, True)]

    assert Rtnl(FakeSocket(respond(-errno.ENODEV))).get_link("nope") is None
    with pytest.raises(NetlinkError):
        Rtnl(FakeSocket(respond(-errno.EPERM))).get_link("nope")


def test_link_events_end_after_the_timeout() -> None:
    fake = FakeSocket(lambda seq, attempt: [])
    fake.queue = [_link_msg(3, "veth0") + rtnl.nlmsg(rtnl.RTM_DELLINK, 0, 0, rtnl.ifinfomsg(4))]
    events = [(kind, link.index) for kind, link in Rtnl(fake).link_events(timeout=0.01)]
    assert events == [("new", 3), ("del", 4)]


# --- namespaces, without the kernel ------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "path"),
    [("pod1", "/run/netns/pod1"), ("/proc/1/ns/net", "/proc/1/ns/net"), ("a.b", "/run/netns/a.b")],
)
def test_netns_path(spec: str, path: str) -> None:
    assert rtnl.netns_path(spec) == path


@pytest.mark.parametrize("spec", ["", ".", "..", "a/b", "../x", "x\0", "n" * 256])
def test_netns_path_rejects_unsafe_names(spec: str) -> None:
    with pytest.raises(ValueError):
        rtnl.netns_path(spec)


# --- import cost and header constants ----------------------------------------------------------
def test_import_pulls_in_nothing_heavy() -> None:
    # -S: no site, so nothing is preloaded and every module rtnl pulls in shows up.
    code = (
        "import sys, bondctl.netlink; "
        "heavy = {'ctypes', 'socket', 'typing', 'dataclasses', 'enum', 'ipaddress', 'selectors'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


_HEADERS = (
    "sys/socket.h",
    "linux/netlink.h",
    "linux/rtnetlink.h",
    "linux/if_link.h",
    "linux/if.h",
    "linux/if_addr.h",
    "linux/veth.h",
    "linux/sched.h",
    "linux/nsfs.h",
)
# Python names whose C counterpart is an expression rather than the same name.
_C_EXPRESSIONS = {
    "NLA_TYPE_MASK": "(unsigned short)NLA_TYPE_MASK",
    "NLMSGHDR_LEN": "sizeof(struct nlmsghdr)",
    "IFINFOMSG_LEN": "sizeof(struct ifinfomsg)",
    "IFADDRMSG_LEN": "sizeof(struct ifaddrmsg)",
    "RTMSG_LEN": "sizeof(struct rtmsg)",
}


def test_constants_match_the_kernel_headers(tmp_path: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not Path("/usr/include/linux/if_link.h").exists():
        pytest.skip("needs a C compiler and the Linux uapi headers")
    names = [n for n in dir(rtnl) if n.isupper() and type(getattr(rtnl, n)) is int and n[0] != "_"]
    lines = [f"#include <{h}>" for h in _HEADERS] + ["#include <stdio.h>", "int main(void) {"]
    lines += [
        f'printf("%s %lld\\n", "{n}", (long long)({_C_EXPRESSIONS.get(n, n)}));' for n in names
    ]
    lines += ["return 0;", "}"]
    source = tmp_path / "consts.c"
    source.write_text("\n".join(lines))
    binary = tmp_path / "consts"
    subprocess.run([compiler, "-o", str(binary), str(source)], check=True, capture_output=True)
    out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    from_headers = {name: int(value) for name, value in (ln.split() for ln in out.splitlines())}
    assert from_headers == {n: getattr(rtnl, n) for n in names}
    assert len(names) > 100


# --- the real kernel ---------------------------------------------------------------------------
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
)
_counter = itertools.count()


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def _ip_json(*args: str) -> list[dict[str, object]]:
    result: list[dict[str, object]] = json.loads(_ip("-j", *args) or "[]")
    return result


@pytest.fixture
def make_scratch_netns() -> Iterator[Callable[[], str]]:
    created: list[str] = []

    def make() -> str:
        name = f"bondctl-rtnl-{os.getpid()}-{next(_counter)}"
        _ip("netns", "add", name)
        created.append(name)
        return name

    yield make
    for name in created:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture
def scratch_netns(make_scratch_netns: Callable[[], str]) -> str:
    return make_scratch_netns()


def _make_veth(sock: Rtnl, name: str = "va", peer: str = "vb") -> rtnl.LinkMessage:
    sock.new_link(name, "veth", [rtnl.veth_peer(peer)])
    link = sock.get_link(name)
    assert link is not None
    return link


@needs_root
def test_veth_created_changed_and_read_back(scratch_netns: str) -> None:
    with Rtnl.open(scratch_netns) as sock:
        link = _make_veth(sock)
        assert link.kind == "veth"
        sock.set_link("va", mtu=1400, address="02:00:00:00:00:0a", ifname="va1", up=True)
        sock.set_link("vb", up=True)
        changed = sock.get_link(link.index)
        peer = sock.get_link("vb")
    assert changed is not None and peer is not None
    link = changed
    assert (link.name, link.mtu, link.address, link.up) == ("va1", 1400, "02:00:00:00:00:0a", True)
    assert link.link == peer.index
    [shown] = _ip_json("-n", scratch_netns, "-d", "link", "show", "dev", "va1")
    assert shown["ifindex"] == link.index
    assert shown["ifname"] == link.name
    assert shown["mtu"] == link.mtu
    assert shown["address"] == link.address
    assert shown["operstate"] == link.operstate
    assert ("UP" in shown["flags"]) == link.up  # type: ignore[operator]
    assert ("LOWER_UP" in shown["flags"]) == link.lower_up  # type: ignore[operator]
    assert shown["linkinfo"]["info_kind"] == link.kind  # type: ignore[index]


@needs_root
def test_list_links_matches_ip(scratch_netns: str) -> None:
    with Rtnl.open(scratch_netns) as sock:
        _make_veth(sock)
        links = {link.index: link.name for link in sock.list_links()}
    shown = {
        entry["ifindex"]: entry["ifname"] for entry in _ip_json("-n", scratch_netns, "link", "show")
    }
    assert links == shown
    assert set(links.values()) == {"lo", "va", "vb"}


@needs_root
def test_link_moves_to_another_namespace_by_fd(make_scratch_netns: Callable[[], str]) -> None:
    first, second = make_scratch_netns(), make_scratch_netns()
    with Rtnl.open(first) as sock:
        _make_veth(sock)
        fd = rtnl.open_netns(second)
        try:
            sock.set_link("vb", netns_fd=fd)
        finally:
            os.close(fd)
        assert sock.get_link("vb") is None
    with Rtnl.open(f"/run/netns/{second}") as sock:
        moved = sock.get_link("vb")
    assert moved is not None
    assert [e["ifname"] for e in _ip_json("-n", second, "link", "show", "dev", "vb")] == ["vb"]


@needs_root
def test_addresses_and_routes(scratch_netns: str) -> None:
    with Rtnl.open(scratch_netns) as sock:
        link = _make_veth(sock)
        sock.set_link("vb", up=True)
        sock.set_link("va", up=True)
        sock.add_address(link.index, "10.1.2.3/24")
        sock.add_address(link.index, "2001:db8::3/64")
        with pytest.raises(NetlinkError) as caught:
            sock.add_address(link.index, "10.1.2.3/24")
        assert caught.value.errno == errno.EEXIST
        sock.add_route("10.9.0.0/16", "10.1.2.1", link.index, metric=50)
        sock.add_route("10.8.0.0/16", None, link.index)
        sock.add_route("default", "10.1.2.1", link.index)
        sock.add_route("2001:db8:9::/48", "2001:db8::1", link.index)
        addresses = sock.list_addresses(link.index)
        routes = {r.dst: r for r in sock.list_routes(AF_INET) if r.table == rtnl.RT_TABLE_MAIN}
        routes6 = {r.dst: r for r in sock.list_routes(AF_INET6)}

    assert (link.index, AF_INET, "10.1.2.3/24") in addresses
    assert (link.index, AF_INET6, "2001:db8::3/64") in addresses
    shown = _ip_json("-n", scratch_netns, "addr", "show", "dev", "va")[0]["addr_info"]
    # The link-local IPv6 address appears on its own schedule after the link goes up: leave it out.
    by_ip = {f"{a['local']}/{a['prefixlen']}" for a in shown}  # type: ignore[attr-defined]
    ours = {a for _, _, a in addresses}
    assert {a for a in by_ip if not a.startswith("fe80:")} == {
        a for a in ours if not a.startswith("fe80:")
    }

    gw = routes["10.9.0.0/16"]
    assert (gw.gateway, gw.oif, gw.metric, gw.protocol) == ("10.1.2.1", link.index, 50, 3)
    assert routes["10.8.0.0/16"].scope == rtnl.RT_SCOPE_LINK
    assert routes["default"].gateway == "10.1.2.1"
    assert routes6["2001:db8:9::/48"].gateway == "2001:db8::1"
    ip_routes = {r["dst"]: r for r in _ip_json("-n", scratch_netns, "route", "show")}
    assert ip_routes["10.9.0.0/16"]["gateway"] == "10.1.2.1"
    assert ip_routes["10.9.0.0/16"]["metric"] == 50
    assert ip_routes["10.8.0.0/16"]["scope"] == "link"
    assert ip_routes["default"]["dev"] == "va"

    with Rtnl.open(scratch_netns) as sock:
        sock.del_route("10.9.0.0/16", "10.1.2.1", link.index, metric=50)
        sock.del_address(link.index, "10.1.2.3/24")
        assert "10.9.0.0/16" not in {r.dst for r in sock.list_routes()}
        assert (link.index, AF_INET, "10.1.2.3/24") not in sock.list_addresses()


@needs_root
def test_kernel_error_text_reaches_the_exception(scratch_netns: str) -> None:
    with Rtnl.open(scratch_netns) as sock:
        with pytest.raises(NetlinkError) as unknown:
            sock.new_link("b0", "bondctl-nosuchkind")
        _make_veth(sock)
        with pytest.raises(NetlinkError) as too_big:
            sock.set_link("va", mtu=1 << 20)
        with pytest.raises(NetlinkError) as exists:
            _make_veth(sock)
    assert unknown.value.errno == errno.EOPNOTSUPP
    assert "Unknown device type" in str(unknown.value)
    assert too_big.value.errno == errno.EINVAL
    assert too_big.value.extack is not None and "mtu" in too_big.value.extack.lower()
    assert exists.value.errno == errno.EEXIST


@needs_root
def test_get_and_delete_link(scratch_netns: str) -> None:
    with Rtnl.open(scratch_netns) as sock:
        assert sock.get_link("nonexistent") is None
        link = _make_veth(sock)
        sock.del_link(link.index)
        assert sock.get_link("va") is None
        assert sock.get_link("vb") is None  # a veth pair dies together


@needs_root
def test_enter_netns_switches_this_thread_and_back(scratch_netns: str) -> None:
    home = os.stat("/proc/thread-self/ns/net").st_ino
    target = os.stat(f"/run/netns/{scratch_netns}").st_ino
    with rtnl.enter_netns(scratch_netns):
        assert os.stat("/proc/thread-self/ns/net").st_ino == target
    assert os.stat("/proc/thread-self/ns/net").st_ino == home


@needs_root
def test_not_a_namespace_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(OSError, match="not a network namespace") as caught:
        Rtnl.open(str(plain))
    assert caught.value.errno == errno.EINVAL
    with pytest.raises(OSError, match="not a network namespace"):
        rtnl.open_netns("/proc/self/ns/mnt")
    with pytest.raises(FileNotFoundError):
        Rtnl.open("bondctl-no-such-netns")


@needs_root
def test_link_events(scratch_netns: str) -> None:
    with (
        Rtnl.open(scratch_netns, groups=[rtnl.RTNLGRP_LINK]) as events,
        Rtnl.open(scratch_netns) as sock,
    ):
        link = _make_veth(sock)
        sock.del_link(link.index)
        seen = [(kind, ev.name) for kind, ev in events.link_events(timeout=0.5)]
    assert ("new", "va") in seen
    assert ("del", "va") in seen
