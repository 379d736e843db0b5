"""A fixed corpus of hostile inputs for the real `bond` executable, and the checks every case
must pass: spec error JSON on stdout with the expected code, a non-zero exit, no traceback on
stderr, and (for code 7) a message that starts with the key at fault. No tests here.

The cases are built around two link names and a state dir, so the same corpus runs natively in
tests/unit (link names that exist nowhere) and in User-Mode Linux in tests/reliability (links
that exist, in namespaces snapshotted before and after: a case the plugin wrongly accepted
would move them).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any

from bondctl.cni.config import VALID_ATTACHMENTS
from bondctl.cni.errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENV,
)
from bondctl.options import OPTIONS, SLAVE_OPTIONS

TEN_MB = 10 * 1024 * 1024
MAX_MSG = 4096  # an error message a runtime logs; echoing 10 MB of input back is a defect

# Everything an error message may start with: the config's own keys and every option key.
FIELDS = frozenset({
    "cniversion", "name", "type", "mode", "links", "links.name", "linksincontainer", "mtu",
    "ipam", "ipam.type", "dns", "backend", "logfile", "loglevel", "statedir", "prevresult",
    VALID_ATTACHMENTS,
    *(opt.cni_key.lower() for opt in OPTIONS.values()), *OPTIONS,
    *(opt.cni_key.lower() for opt in SLAVE_OPTIONS.values()), *SLAVE_OPTIONS,
})


def field_of(msg: str) -> str:
    """The key an error message starts with: "links[1].name: ..." -> "links.name"."""
    token = re.split(r"[: ]", msg, maxsplit=1)[0]
    return re.sub(r"\[\d*\]", "", token).lower()


@dataclass(frozen=True)
class Case:
    name: str
    code: int
    stdin: bytes
    env: dict[str, str] = field(default_factory=dict)  # "" removes the variable


def _conf(names: list[str], state_dir: str, **keys: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "hostile", "type": "bond",
                            "mode": "active-backup", "miimon": "100",
                            "links": [{"name": n} for n in names], "stateDir": state_dir}
    conf.update(keys)
    return {k: v for k, v in conf.items() if v is not _DROP}


_DROP = object()


def cases(links: list[str], state_dir: str) -> list[Case]:
    """The corpus, for two existing (or harmless) link names and a state dir."""

    def config(title: str, code: int = INVALID_CONFIG, /, **keys: Any) -> Case:
        return Case(title, code, json.dumps(_conf(links, state_dir, **keys)).encode())

    def raw(name: str, text: str, code: int = INVALID_CONFIG) -> Case:
        """Hand-written JSON for values json.dumps would not write (NaN, huge numbers)."""
        good = json.dumps(_conf(links, state_dir))
        return Case(name, code, (good[:-1] + ", " + text + "}").encode())

    def env(title: str, code: int = INVALID_ENV, /, **variables: str) -> Case:
        return Case(title, code, json.dumps(_conf(links, state_dir)).encode(), variables)

    def link_name(name: str, bad: str) -> Case:
        return config(f"link name {name}", links=[{"name": bad}, {"name": links[1]}])

    good = json.dumps(_conf(links, state_dir)).encode()
    out = [
        # -- not JSON, or not an object: code 6
        Case("empty stdin", DECODE_FAILURE, b""),
        Case("not JSON", DECODE_FAILURE, b"{mode: active-backup"),
        Case("truncated", DECODE_FAILURE, good[: len(good) // 2]),
        Case("trailing garbage", DECODE_FAILURE, good + b" }"),
        Case("JSON array", DECODE_FAILURE, b"[]"),
        Case("JSON string", DECODE_FAILURE, b'"bond"'),
        Case("JSON null", DECODE_FAILURE, b"null"),
        Case("invalid UTF-8", DECODE_FAILURE, b'{"name": "\xff\xfe"}'),
        Case("NUL bytes", DECODE_FAILURE, b"\0" * 64),
        Case("nested 100000 deep (list)", DECODE_FAILURE, b"[" * 100_000 + b"]" * 100_000),
        Case("nested 100000 deep (object)", DECODE_FAILURE, b'{"a":' * 100_000 + b"1"
             + b"}" * 100_000),
        Case("10 MB of garbage", DECODE_FAILURE, b"x" * TEN_MB),
        Case("10 MB of whitespace", DECODE_FAILURE, b" " * TEN_MB),
        config("10 MB mode", mode="x" * TEN_MB),
        link_name("of 10 MB", "x" * TEN_MB),
        raw("number of 5000 digits", '"mtu": ' + "9" * 5000, DECODE_FAILURE),
        # -- versions: code 1
        config("cniVersion 0.2.0", INCOMPATIBLE_VERSION, cniVersion="0.2.0"),
        config("cniVersion 9.9.9", INCOMPATIBLE_VERSION, cniVersion="9.9.9"),
        config("cniVersion a number", INCOMPATIBLE_VERSION, cniVersion=1),
        config("cniVersion missing", INCOMPATIBLE_VERSION, cniVersion=_DROP),
        # -- wrong types: code 7
        config("name a number", name=5),
        config("name missing", name=_DROP),
        config("links a string", links=links[0]),
        config("links an object", links={"name": links[0]}),
        config("links of numbers", links=[1, 2]),
        config("link name a number", links=[{"name": 5}, {"name": links[1]}]),
        config("link without name", links=[{"ifname": links[0]}, {"name": links[1]}]),
        config("links missing", links=_DROP),
        config("one link", links=[{"name": links[0]}]),
        config("linksInContainer a string", linksInContainer="yes"),
        config("ipam a string", ipam="host-local"),
        config("ipam type a number", ipam={"type": 5}),
        config("ipam type a path", ipam={"type": "../../bin/sh"}),
        config("ipam type bond", ipam={"type": "bond"}),
        config("dns a list", dns=[]),
        config("prevResult a string", prevResult="ok"),
        config("logLevel a number", logLevel=5),
        config("logLevel unknown", logLevel="loud"),
        config("stateDir relative", stateDir="var/lib/cni/bond"),
        config("logFile relative", logFile="bond.log"),
        config("backend a list", backend=["netlink"]),
        config("mtu a string", mtu="big"),
        config("mtu true", mtu=True),
        config("mtu a float", mtu=1500.5),
        config("miimon true", miimon=True),
        config("miimon a list", miimon=[100]),
        config("miimon an object", miimon={"ms": 100}),
        config("primary a number", primary=1),
        config("arpIpTargets a number", arpInterval=100, miimon=_DROP, arpIpTargets=5),
        # -- modes: code 7
        config("mode missing", mode=_DROP),
        config("mode empty", mode=""),
        config("mode unknown name", mode="balance-foo"),
        config("mode 7", mode=7),
        config("mode -1", mode=-1),
        config("mode 1.5", mode=1.5),
        config("mode true", mode=True),
        config("mode a list", mode=["active-backup"]),
        config("mode with NUL", mode="active-backup\0"),
        # -- numbers: code 7 (or 6 where Python's decoder refuses)
        config("miimon -1", miimon=-1),
        config("miimon 2^31", miimon=2**31),
        config("miimon 2^64", miimon=2**64),
        config("miimon 10^30", miimon=10**30),
        config("miimon 1e308", miimon=1e308),
        config("miimon 1.5", miimon=1.5),
        config("miimon 'abc'", miimon="abc"),
        config("miimon ''", miimon=" "),
        config("miimon '0x10'", miimon="0x10"),
        config("miimon '1e3'", miimon="1e3"),
        config("miimon '-100'", miimon="-100"),
        raw("miimon NaN", '"miimon": NaN'),
        raw("miimon Infinity", '"miimon": Infinity'),
        raw("miimon -Infinity", '"miimon": -Infinity'),
        config("mtu -1", mtu=-1),
        config("mtu 67", mtu=67),
        config("mtu 65536", mtu=65536),
        config("mtu 2^64", mtu=2**64),
        config("failOverMac 3", failOverMac=3),
        config("failOverMac -1", failOverMac=-1),
        config("failOverMac 'sometimes'", failOverMac="sometimes"),
        config("resendIgmp 256", resendIgmp=256),
        config("adActorSysPrio 0", mode="802.3ad", adActorSysPrio=0),
        config("adActorSystem multicast", mode="802.3ad", adActorSystem="01:00:5e:00:00:01"),
        config("packetsPerSlave 65536", mode="balance-rr", packetsPerSlave=65536),
        config("17 ARP targets", miimon=_DROP, arpInterval=100,
               arpIpTargets=[f"192.0.2.{i}" for i in range(1, 18)]),
        config("queueId -1", links=[{"name": links[0], "queueId": -1}, {"name": links[1]}]),
        config("queueId 65536", links=[{"name": links[0], "queueId": 65536},
                                       {"name": links[1]}]),
        config("prio 2^31", links=[{"name": links[0], "prio": 2**31}, {"name": links[1]}]),
        config("prio in balance-rr", mode="balance-rr",
               links=[{"name": links[0], "prio": 1}, {"name": links[1]}]),
        config("updelay not a multiple of miimon", miimon=100, updelay=150),
        config("miimon with arpInterval", miimon=100, arpInterval=100),
        config("primary not a slave", primary="other0"),
        config("lacpRate outside 802.3ad", lacpRate="fast"),
        # -- link names: code 7
        link_name("with /", "eth/0"),
        link_name("..", ".."),
        link_name(".", "."),
        link_name("with space", "eth 0"),
        link_name("with NUL", "eth\0"),
        link_name("with :", "eth0:1"),
        link_name("with %", "eth%d"),
        link_name("with newline", "eth0\n"),
        link_name("unicode", "éth0"),
        link_name("emoji", "bond\U0001f600"),
        link_name("lone surrogate", "\ud800"),
        link_name("16 bytes", "a" * 16),
        link_name("16 bytes of 8 characters", "é" * 8),
        link_name("empty", ""),
        config("duplicate links", links=[{"name": links[0]}, {"name": links[0]}]),
        # -- the environment: code 4
        env("CNI_IFNAME with /", CNI_IFNAME="bond/0"),
        env("CNI_IFNAME ..", CNI_IFNAME=".."),
        env("CNI_IFNAME .", CNI_IFNAME="."),
        env("CNI_IFNAME with space", CNI_IFNAME="bond 0"),
        env("CNI_IFNAME unicode", CNI_IFNAME="bönd0"),
        env("CNI_IFNAME invalid UTF-8", CNI_IFNAME="bond\udcff"),
        env("CNI_IFNAME 16 bytes", CNI_IFNAME="b" * 16),
        env("CNI_IFNAME with :", CNI_IFNAME="bond0:1"),
        env("CNI_IFNAME missing", CNI_IFNAME=""),
        env("CNI_CONTAINERID with /", CNI_CONTAINERID="../ctr"),
        env("CNI_CONTAINERID missing", CNI_CONTAINERID=""),
        env("CNI_NETNS missing", CNI_NETNS=""),
        env("CNI_NETNS relative", CNI_NETNS="run/netns/pod"),
        env("CNI_PATH missing", CNI_PATH=""),
        env("CNI_COMMAND unknown", CNI_COMMAND="ADDD"),
        env("CNI_COMMAND lower case", CNI_COMMAND="add"),
        env("CNI_ARGS malformed", CNI_ARGS="IgnoreUnknown"),
        # -- the bond named like one of its links: code 7
        env("bond named like a link", INVALID_CONFIG, CNI_IFNAME=links[0]),
    ]
    names = [case.name for case in out]
    assert len(set(names)) == len(names), "corpus case names must be unique"
    return out


def run_case(case: Case, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one case through the executable; return its error JSON after the generic checks."""
    environ = {**env, **case.env}
    environ = {k: v for k, v in environ.items() if v != ""}
    # A timeout: a case that hangs the plugin (a FIFO where a file should be) must fail.
    proc = subprocess.run(argv, input=case.stdin, env=environ, capture_output=True, check=False,
                          timeout=120)
    stderr = proc.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    assert proc.returncode not in (0, None) and proc.returncode > 0, (proc.returncode, stderr)
    out = json.loads(proc.stdout)
    assert set(out) == {"cniVersion", "code", "msg", "details"}, out
    assert out["code"] == case.code, (out, stderr[-2000:])
    assert len(out["msg"]) <= MAX_MSG, f"message of {len(out['msg'])} characters"
    if case.code == INVALID_CONFIG:
        assert field_of(out["msg"]) in FIELDS, f"message names no field: {out['msg']!r}"
    elif case.code == INVALID_ENV:
        assert "CNI_" in out["msg"], out["msg"]
    return dict(out)
