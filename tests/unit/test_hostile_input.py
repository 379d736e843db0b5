# ruff: noqa: F811  (the summary fixture is imported from tests.reliability.summary)
"""Hostile input, without a kernel: property-based tests over the configuration parser, the
environment, option validation, prevResult and IPAM output (never an exception but ours, never
code 100; CNI config errors name their key), and the fixed corpus (tests/reliability/corpus.py)
through the real executable, where no link or namespace it names exists
(tests/reliability/test_hostile_corpus.py runs it again in User-Mode Linux against links that
do exist)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bondctl.cni import ipam
from bondctl.cni.__main__ import _requested_version
from bondctl.cni.config import bond_spec, parse_config
from bondctl.cni.env import read_env
from bondctl.cni.errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENV,
    OUR_CODES,
    PLUGIN_FAILURE,
    SPEC_CODES,
    CniError,
)
from bondctl.cni.result import add_result, check_for_kernel, interface, normalize, render
from bondctl.cni.versions import SUPPORTED_VERSIONS
from bondctl.errors import BondctlError, ValidationError
from bondctl.model import BondSpec
from bondctl.names import IFNAMSIZ, check_ifname
from bondctl.options import MODES, OPTIONS, SLAVE_OPTIONS, parse_options
from tests.reliability.corpus import FIELDS, cases, field_of, run_case
from tests.reliability.summary import summary  # noqa: F401

CATEGORY = "hostile input"
PLUGIN = [sys.executable, "-m", "bondctl.cni"]
# Derandomized: CI runs the same examples every time, so a red run is a regression.
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

# -- strategies -----------------------------------------------------------------------------------
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "..", ".", "a/b", "eth0:1", "eth%d", "\0", "\ud800", "é" * 8,
                     "x" * 16, "0x10", "1e3", "-1", "NaN", "100 ", " 100", "\u0661\u0660\u0660",
                     "²", "balance-rr", "ACTIVE-BACKUP", "802.3ad", "fast", "on",
                     "01:00:5e:00:00:01",
                     "02:00:00:00:00:01", "192.0.2.1,192.0.2.2", "::1", "9" * 5000]),
)
NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**63, 2**64, 65535, 65536, 67, 68]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, HOSTILE_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=4)),
    max_leaves=12)
LINK_NAMES = st.one_of(st.sampled_from(["net1", "net2", "bond0", "eth0"]), HOSTILE_TEXT)
LINK_KEYS = st.sampled_from(["name", "Name", "queueId", "queue_id", "prio", "ifname"])
LINKS = st.one_of(
    VALUES,
    st.lists(st.one_of(VALUES, st.fixed_dictionaries(
        {"name": LINK_NAMES}, optional={"queueId": SCALARS, "prio": SCALARS})), max_size=5),
    st.lists(st.dictionaries(LINK_KEYS, st.one_of(LINK_NAMES, SCALARS), max_size=3),
             max_size=4),
)
CONFIG_KEYS = st.one_of(
    st.sampled_from(["cniVersion", "name", "type", "mode", "links", "linksInContainer", "mtu",
                     "ipam", "dns", "backend", "logFile", "logLevel", "stateDir", "prevResult",
                     "MODE", "Links", "cni.dev/valid-attachments", "runtimeConfig",
                     "allowAddressedLinks"]),
    st.sampled_from(sorted({opt.cni_key for opt in OPTIONS.values()})),
    st.sampled_from(sorted(OPTIONS)),
    HOSTILE_TEXT,
)
BASE = {"cniVersion": "1.0.0", "name": "net", "type": "bond", "mode": "active-backup",
        "miimon": "100", "links": [{"name": "net1"}, {"name": "net2"}]}


def mode_values() -> st.SearchStrategy[object]:
    return st.one_of(st.sampled_from([*MODES, *range(-1, 9)]), SCALARS)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid configuration with a few keys replaced by hostile values, so the hostile value
    reaches deep validation instead of failing on the first check."""
    conf: dict[str, Any] = dict(BASE)
    for key in draw(st.lists(CONFIG_KEYS, max_size=4)):
        if key.lower() == "links":
            conf[key] = draw(LINKS)
        elif key.lower() == "mode":
            conf[key] = draw(mode_values())
        elif draw(st.booleans()) and key in BASE:
            conf.pop(key, None)
        else:
            conf[key] = draw(VALUES)
    return conf


def dumps(obj: Any) -> bytes:
    """NaN and Infinity stay in (Python's decoder takes them); lone surrogates pass through."""
    return json.dumps(obj).encode("utf-8", "surrogatepass")


def assert_names_field(exc: CniError) -> None:
    if exc.cni_code == INVALID_CONFIG:
        # A near-miss key is refused under the name it was given, with the field it resembles.
        meant = re.search(r"did you mean '([^']+)'", exc.msg)
        named = meant.group(1).lower() if meant else field_of(exc.msg)
        assert named in FIELDS | {"allowaddressedlinks"}, f"message names no field: {exc.msg!r}"
    elif exc.cni_code == INCOMPATIBLE_VERSION:
        assert exc.msg.startswith("cniVersion"), exc.msg


# -- the configuration ----------------------------------------------------------------------------
@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_fail_cleanly(raw):
    try:
        parse_config(raw)
    except CniError as exc:
        assert exc.cni_code in (DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG)
        assert_names_field(exc)


@SETTINGS
@given(configs())
def test_hostile_configs_fail_with_a_named_field(conf):
    try:
        spec = bond_spec(parse_config(dumps(conf)), "bond0")
    except CniError as exc:
        assert exc.cni_code in (DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG), exc.msg
        assert_names_field(exc)
        return
    # What passed is a bond the kernel can be asked for: canonical and within range.
    assert spec.mode in MODES and len(spec.slaves) >= 2
    assert all(len(s.name.encode()) < IFNAMSIZ for s in spec.slaves)
    assert spec.mtu is None or 68 <= spec.mtu <= 65535


@SETTINGS
@given(configs(), st.one_of(st.sampled_from(["bond0", "net1"]), HOSTILE_TEXT))
def test_hostile_ifname_never_escapes(conf, ifname):
    """bond_spec trusts read_env to have checked CNI_IFNAME; whatever it is handed, it still
    raises nothing but our errors."""
    with contextlib.suppress(BondctlError):
        bond_spec(parse_config(dumps(conf)), ifname)


@SETTINGS
@given(st.one_of(st.sampled_from(["[" * 50_000, '{"a":' * 50_000, "[" * 999]),
                 st.binary(max_size=100)))
def test_requested_version_never_raises(raw):
    """The error path reads cniVersion from stdin first: it must survive any stdin."""
    text = raw.encode() if isinstance(raw, str) else raw
    assert _requested_version(text) in SUPPORTED_VERSIONS


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000])
def test_deep_nesting_is_a_decode_error(raw):
    with pytest.raises(CniError) as info:
        parse_config(raw)
    assert info.value.cni_code == DECODE_FAILURE


# -- options and the model ------------------------------------------------------------------------
@SETTINGS
@given(st.sampled_from(sorted(OPTIONS)), VALUES)
def test_every_option_parses_or_names_itself(name, raw):
    opt = OPTIONS[name]
    try:
        value = opt.parse(raw)
    except ValidationError as exc:
        assert exc.msg.startswith((f"{name}: ", f"{name} ")), exc.msg
        return
    assert opt.parse(value) == value  # canonical values are fixed points
    if not isinstance(value, tuple):
        assert opt.parse(opt.render(value)) == value


@SETTINGS
@given(st.sampled_from(sorted(SLAVE_OPTIONS)), VALUES)
def test_every_slave_option_parses_or_names_itself(name, raw):
    opt = SLAVE_OPTIONS[name]
    try:
        value = opt.parse(raw)
    except ValidationError as exc:
        assert exc.msg.startswith(f"{name}: "), exc.msg
        return
    assert opt.minimum <= value <= opt.maximum


@SETTINGS
@given(st.dictionaries(st.one_of(st.sampled_from(sorted(OPTIONS)), HOSTILE_TEXT), VALUES,
                       max_size=4))
def test_parse_options_raises_only_validation_errors(raw):
    with contextlib.suppress(ValidationError):
        parse_options(raw)


@SETTINGS
@given(name=LINK_NAMES, mode=mode_values(),
       options=st.dictionaries(st.sampled_from(sorted(OPTIONS)), VALUES, max_size=3),
       slaves=st.lists(LINK_NAMES, max_size=4), mtu=SCALARS, mac=SCALARS,
       slave_options=st.dictionaries(LINK_NAMES, st.dictionaries(
           st.sampled_from(["queue_id", "prio", "queueId", "weight"]), SCALARS, max_size=2),
           max_size=2))
def test_bond_spec_build_raises_only_validation_errors(name, mode, options, slaves, mtu, mac,
                                                       slave_options):
    try:
        spec = BondSpec.build(name, mode, options, slaves, mtu=mtu, mac=mac,
                              slave_options=slave_options)
    except ValidationError:
        return
    assert len(set(spec.slave_names)) == len(spec.slave_names)
    assert spec.name not in spec.slave_names


@SETTINGS
@given(st.one_of(HOSTILE_TEXT, st.text(alphabet=st.characters(), max_size=20)))
def test_ifname_check_is_total(name):
    try:
        checked = check_ifname(name)
    except ValidationError:
        return
    assert 0 < len(checked.encode()) < IFNAMSIZ and checked not in (".", "..")
    assert not set(checked) & set("/:\0 %")


# -- the environment ------------------------------------------------------------------------------
ENV_VALUES = st.one_of(HOSTILE_TEXT.filter(lambda v: "\0" not in v),
                       st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION",
                                        "/run/netns/pod", "/opt/cni/bin", "ctr1", "bond0"]))


@SETTINGS
@given(st.dictionaries(st.sampled_from(["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS",
                                        "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]), ENV_VALUES))
def test_environment_is_valid_or_code_4(environ):
    try:
        env = read_env(environ)
    except CniError as exc:
        assert exc.cni_code == INVALID_ENV
        assert "CNI_" in exc.msg, exc.msg
        return
    if env.ifname:
        check_ifname(env.ifname)
    assert env.netns == "" or env.netns.startswith("/")


# -- the corpus through the executable ------------------------------------------------------------
LINKS_NOWHERE = ["hostile0", "hostile1"]  # no such links: an accepted case changes nothing


def host_links() -> list[dict[str, Any]]:
    proc = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                          check=True)
    return [{k: link.get(k) for k in ("ifname", "mtu", "address", "flags", "master")}
            for link in json.loads(proc.stdout)]


CORPUS = {case.name: case for case in cases(LINKS_NOWHERE, "/nonexistent/bond-state")}


@pytest.fixture(scope="module")
def links_before() -> list[dict[str, Any]]:
    assert not any(link["ifname"] in LINKS_NOWHERE for link in host_links())
    return host_links()


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_through_the_executable(name, links_before, tmp_path, summary):
    case = CORPUS[name]
    state = tmp_path / "state"
    stdin = case.stdin.replace(b"/nonexistent/bond-state", str(state).encode())
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": "ADD",
           "CNI_CONTAINERID": "hostile", "CNI_NETNS": "/nonexistent/netns/pod",
           "CNI_IFNAME": "bond0", "CNI_PATH": "/usr/lib/cni"}
    out = run_case(type(case)(case.name, case.code, stdin, case.env), PLUGIN, env)
    assert not state.exists(), "the state dir was created for input that was refused"
    assert host_links() == links_before
    summary.update(code=out["code"], msg=out["msg"][:120], stdin_bytes=len(case.stdin))


def test_corpus_is_not_trivial():
    codes = {case.code for case in CORPUS.values()}
    assert codes == {DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG, INVALID_ENV}
    assert len(CORPUS) >= 100


# -- no input reaches code 100 --------------------------------------------------------------------
# Config bytes (with keys repeated in other cases, results in prevResult, nesting at any depth),
# an environment and an IPAM plugin's output, through every function that reads them: parsing,
# bond_spec, prevResult and IPAM result checks, the ADD result as printed. Anything but a
# CniError with a SPEC.md code or one of ours (never 100) is a bug.
ALLOWED = (SPEC_CODES | OUR_CODES) - {PLUGIN_FAILURE}
GOOD_CIDRS = st.sampled_from(["10.1.2.3/24", "10.1.2.0/24", "0.0.0.0/0", "::/0",
                               "2001:db8::5/64"])
GOOD_IPS = st.sampled_from(["10.1.2.1", "2001:db8::1"])
ADDRESSES = st.one_of(
    GOOD_CIDRS, GOOD_IPS,
    st.sampled_from(["10.1.2.3/33", "fe80::1%eth0/64", "1.2.3.4/024", "10.1.2.3/-1",
                     "10.1.2.3/" + "9" * 5000, "default", "main", " 10.1.2.3/24",
                     "10.1.2.3/24\n", "\0", "1.2.3.4/\u0662\u0664"]),
    HOSTILE_TEXT)
INTEGERS = st.one_of(st.integers(0, 300), st.integers(-(2**33), 2**33))
RESULT_SCALARS = st.one_of(SCALARS, ADDRESSES)


class Deep(NamedTuple):
    """Lists and objects nested `levels` deep, written straight as text (json.dumps would
    overflow the stack on what the plugin must survive)."""

    levels: int


def to_json(value: object) -> str:
    if isinstance(value, Deep):
        return '{"a": [' * (value.levels // 2) + '"x"' + "]}" * (value.levels // 2)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(to_json, value)) + "]"
    return json.dumps(value)


def text(value: object) -> bytes:
    return to_json(value).encode("utf-8", "surrogatepass")


DEEP = st.builds(Deep, st.integers(0, 3000))
RESULT_VALUES = st.one_of(RESULT_SCALARS, VALUES, DEEP)
# Each result key's plausible values; most entries get those, so that hostile values reach
# the checks behind the first one (a bad priority on a route whose dst is fine).
TYPED: dict[str, st.SearchStrategy[object]] = {
    "address": GOOD_CIDRS, "gateway": GOOD_IPS, "dst": GOOD_CIDRS, "gw": GOOD_IPS,
    "interface": INTEGERS, "mtu": INTEGERS, "priority": INTEGERS, "table": INTEGERS,
    "scope": INTEGERS, "advmss": INTEGERS, "nameservers": st.lists(HOSTILE_TEXT, max_size=2),
    "search": st.lists(HOSTILE_TEXT), "options": st.lists(HOSTILE_TEXT, max_size=2)}


@st.composite
def entries(draw: st.DrawFn, keys: list[str]) -> object:
    """An object with a result entry's keys (in any case; the first one always), mostly
    plausible values, now and then a hostile one; or, rarely, anything at all."""
    if draw(st.integers(0, 15)) == 0:
        return draw(RESULT_VALUES)
    out = {}
    for n, key in enumerate(keys):
        if n and draw(st.booleans()):
            continue
        spelt = draw(st.sampled_from([key, key.upper(), key.title()]))
        hostile = draw(st.integers(0, 7)) == 0
        out[spelt] = draw(RESULT_VALUES if hostile else TYPED.get(key, HOSTILE_TEXT))
    return out


def entry_lists(keys: list[str]) -> st.SearchStrategy[object]:
    return st.one_of(st.lists(entries(keys), max_size=3), RESULT_VALUES)


IP_KEYS = ["address", "gateway", "interface", "version"]
ROUTE_KEYS = ["dst", "gw", "priority", "table", "mtu", "scope", "advmss"]
DNS_KEYS = ["nameservers", "domain", "search", "options"]
RESULTS = st.one_of(
    RESULT_VALUES,
    st.fixed_dictionaries({}, optional={
        "cniVersion": st.sampled_from(SUPPORTED_VERSIONS),
        "interfaces": entry_lists(["name", "mac", "mtu", "sandbox"]),
        "ips": entry_lists(IP_KEYS),
        "routes": entry_lists(ROUTE_KEYS),
        "dns": st.one_of(entries(DNS_KEYS), DEEP),
    }),
)
# Well-formed but for a value here and there: hostile values get past the first checks
# (no address, routes not a list) to the later ones (a priority out of range).
NEAR_RESULTS = st.fixed_dictionaries(
    {"ips": st.lists(entries(IP_KEYS), min_size=1, max_size=2)},
    optional={"routes": st.lists(entries(ROUTE_KEYS), max_size=3), "dns": entries(DNS_KEYS)})


@st.composite
def config_bytes(draw: st.DrawFn) -> bytes:
    """A hostile configuration as JSON text, some keys repeated in other cases."""
    conf = draw(configs())
    if draw(st.booleans()):
        conf["prevResult"] = draw(RESULTS)
    if draw(st.booleans()):
        conf["dns"] = draw(st.one_of(entries(["nameservers", "domain", "search"]), DEEP))
    pairs = list(conf.items())
    for key in draw(st.lists(st.sampled_from(sorted(conf)), max_size=3)):
        respelt = draw(st.sampled_from([key, key.upper(), key.lower(), key.title()]))
        pairs.insert(draw(st.integers(0, len(pairs))), (respelt, draw(RESULT_VALUES)))
    return ("{" + ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in pairs) + "}"
            ).encode("utf-8", "surrogatepass")


IPAM_OUTPUT = st.one_of(
    st.binary(max_size=80),
    st.builds(text, RESULTS),
    st.builds(text, NEAR_RESULTS),
    st.builds(text, st.fixed_dictionaries({"code": RESULT_VALUES}, optional={
        "msg": RESULT_VALUES, "details": RESULT_VALUES})),
)
ENVIRONMENTS = st.dictionaries(
    st.sampled_from(["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS",
                     "CNI_PATH"]),
    st.one_of(ENV_VALUES, st.sampled_from(["bin:/opt/cni/bin", ".", "::", "/a:b:/c"])))
BOND = interface("bond0", "02:00:00:00:00:01", "/run/netns/p", 1500)


def ours(call: Any, allowed: frozenset[int] = ALLOWED) -> Any:
    try:
        return call()
    except CniError as exc:
        assert exc.cni_code in allowed, (exc.cni_code, exc.msg)
        return None


def printed(result: dict[str, Any], version: str) -> None:
    """What the plugin would print: every version's layout, JSON, pretty as __main__ does."""
    json.dumps(render(result, version), indent=4)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(raw=config_bytes(), environ=ENVIRONMENTS, out=IPAM_OUTPUT,
       mtu=st.one_of(st.none(), st.integers(68, 65535)))
def test_no_input_reaches_code_100(raw, environ, out, mtu):
    ours(lambda: read_env(environ))
    conf = ours(lambda: parse_config(raw))
    if conf is not None:
        ours(lambda: bond_spec(conf, "bond0"))
        if conf.prev_result is not None:
            ours(lambda: normalize(conf.prev_result, "prevResult"))
        chained = ours(lambda: add_result(conf.prev_result, BOND, [], None, conf.dns))
        if chained is not None:
            printed(chained, conf.cni_version)
    result = ours(lambda: ipam.read_result(out, "fake"))
    if result is not None:
        ours(lambda: check_for_kernel(result, mtu, "ipam fake result"))
        printed(add_result(None, BOND, [], result, None), "0.4.0")
    # A failed IPAM run: its own code passes only if it is one a plugin may give.
    code = ipam.failure("fake", "ADD", 1, out, b"").cni_code
    assert 0 < code < 1000 and code != PLUGIN_FAILURE


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(result=st.one_of(NEAR_RESULTS, st.fixed_dictionaries(
           {"ips": st.lists(entries(IP_KEYS), min_size=1, max_size=2),
            "routes": st.lists(entries(ROUTE_KEYS), min_size=1, max_size=3)})),
       mtu=st.one_of(st.none(), st.integers(68, 65535)))
def test_ipam_results_that_decode_never_reach_code_100(result, mtu):
    """The same, aimed at the second stage: results that are well-formed but for a value
    here and there, through the checks before the kernel sees them."""
    checked = ours(lambda: ipam.read_result(text(result), "fake"))
    if checked is not None:
        ours(lambda: check_for_kernel(checked, mtu, "ipam fake result"))
        printed(add_result(None, BOND, [], checked, None), "1.1.0")
