"""State records: atomic, symlink-safe, owned by root or us, inside the admin's root; records
read as untrusted input (regular files only, capped, checked against the schema); locks that
exclude and whose files go when they are released."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bondctl.cni import state as state_module
from bondctl.cni.errors import CniError
from bondctl.cni.state import (
    MAX_RECORD,
    STATE_ROOT_ENV,
    BadRecord,
    RecordError,
    StateDir,
    attachment_key,
    check_record,
    link_lock_name,
)
from tests.reliability.nothing_left import held_locks
from tests.unit.helpers import within

KEY = attachment_key("ctr1", "bond0")


@pytest.fixture(autouse=True)
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The admin's state root for every test: tmp_path."""
    monkeypatch.setenv(STATE_ROOT_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateDir]:
    store = StateDir(str(tmp_path / "state"))
    yield store
    store.close()




def link(**overrides: Any) -> dict[str, Any]:
    out = {"name": "eth1", "host": True, "index": 7, "podIndex": 3, "kind": "veth",
           "mtu": 1500, "mac": "02:00:00:00:00:01", "permMac": None, "up": True,
           "addresses": ["192.0.2.5/24", "2001:db8::5/64"],
           "routes": [{"dst": "default", "gateway": "192.0.2.1", "metric": 100, "table": None},
                      {"dst": "198.51.100.0/24", "gateway": None, "metric": None,
                       "table": 254}],
           "sysctls": {"ipv6/disable_ipv6": "0", "ipv4/rp_filter": "1"},
           "uppers": [{"index": 9, "name": "eth1.100", "up": False}]}
    out.update(overrides)
    return out


def record(**overrides: Any) -> dict[str, Any]:
    """A complete version 2 record."""
    out = {"version": 2, "network": "net1", "containerID": "ctr1", "ifname": "bond0",
           "netns": "/run/netns/pod1", "netnsId": [4, 4026532000], "bond": "bond0",
           "bondIndex": 5, "linksInContainer": False, "phase": "added", "created": 1.5,
           "pod": {"name": "web-0", "namespace": "default"},
           "links": [link(), link(name="eth2", index=8, podIndex=None, kind=None)]}
    out.update(overrides)
    return out


V1 = {"version": 1, "network": "net1", "containerID": "ctr1", "ifname": "bond0",
      "netns": "/proc/123/ns/net", "netnsId": [4, 4026532000], "bond": "bond0",
      "linksInContainer": False, "phase": "adding", "created": 1700000000.25,
      "links": [{"name": "eth1", "host": True, "index": 7, "mtu": 1500,
                 "mac": "02:00:00:00:00:01", "permMac": None, "up": True},
                {"name": "eth2", "host": True, "index": 8, "mtu": None, "mac": None,
                 "permMac": "02:00:00:00:00:02", "up": None}]}


def plant(store: StateDir, key: str, data: bytes | str) -> None:
    path = Path(store.path) / f"{key}.json"
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)


def bad_record(store: StateDir, key: str = KEY) -> BadRecord:
    with pytest.raises(BadRecord) as info:
        within(5, lambda: store.read(key))
    assert info.value.cni_code == 5 and info.value.msg.startswith(f"state record {key} ")
    return info.value


# -- the directory ---------------------------------------------------------------------------------
def test_write_read_remove(state):
    assert state.read(KEY) is None
    state.write(KEY, record())
    assert state.read(KEY) == record()
    assert state.records() == [KEY]
    state.remove(KEY)
    state.remove(KEY)
    assert state.read(KEY) is None and state.records() == []


def test_write_is_atomic_and_leaves_no_temp_files(state):
    state.write(KEY, record(created=1))
    state.write(KEY, record(created=2))
    assert sorted(os.listdir(state.path)) == [f"{KEY}.json"]
    assert state.read(KEY)["created"] == 2
    assert os.stat(os.path.join(state.path, f"{KEY}.json")).st_mode & 0o777 == 0o600


def test_state_dir_and_its_parents_created_private(tmp_path):
    StateDir(str(tmp_path / "a" / "b")).close()
    assert os.stat(tmp_path / "a" / "b").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "a").st_mode & 0o777 == 0o700  # not 0755 as makedirs would


def test_missing_root_is_created(tmp_path, monkeypatch):
    root = tmp_path / "var" / "lib" / "cni"
    monkeypatch.setenv(STATE_ROOT_ENV, str(root))
    StateDir(str(root / "bond")).close()
    assert os.stat(root).st_mode & 0o777 == 0o755
    assert os.stat(root / "bond").st_mode & 0o777 == 0o700


def test_the_root_itself_may_be_the_state_dir(tmp_path):
    StateDir(str(tmp_path)).close()
    StateDir(str(tmp_path) + "/./").close()


@pytest.mark.parametrize("where", ["/etc/bond", "{root}/../elsewhere", "{root}/a/../../x",
                                   "{root}x/state", "relative/state", "{root}/a\0b", "",
                                   "/"])
def test_state_dir_outside_the_root_is_invalid_config(tmp_path, where):
    path = where.format(root=tmp_path)
    with pytest.raises(CniError) as info:
        StateDir(path)
    assert info.value.cni_code == 7
    assert info.value.msg.startswith("stateDir: ") and STATE_ROOT_ENV in info.value.msg
    assert sorted(os.listdir(tmp_path)) == []
    assert not os.path.exists("/etc/bond")


def test_the_default_root_is_var_lib_cni(monkeypatch):
    monkeypatch.delenv(STATE_ROOT_ENV)
    with pytest.raises(CniError) as info:
        StateDir("/etc/bond")
    assert info.value.cni_code == 7 and "/var/lib/cni" in info.value.msg


def test_symlinked_state_dir_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(CniError) as info:
        StateDir(str(tmp_path / "link"))
    assert info.value.cni_code == 5 and "symlink" in info.value.msg


@pytest.mark.parametrize("depth", [1, 2])
def test_symlinked_parent_refused_and_nothing_made_through_it(tmp_path, depth):
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    (tmp_path / "parent").symlink_to(target)
    path = tmp_path / "parent" / Path(*["sub"] * (depth - 1), "state")
    with pytest.raises(CniError) as info:
        StateDir(str(path))
    assert info.value.cni_code == 5 and "symlink" in info.value.msg
    assert list(target.iterdir()) == []


def test_dangling_symlink_refused_and_not_followed(tmp_path):
    (tmp_path / "state").symlink_to(tmp_path / "nowhere")
    with pytest.raises(CniError) as info:
        StateDir(str(tmp_path / "state"))
    assert info.value.cni_code == 5
    assert not (tmp_path / "nowhere").exists()


def test_state_dir_a_regular_file_refused(tmp_path):
    (tmp_path / "state").write_text("")
    with pytest.raises(CniError) as info:
        StateDir(str(tmp_path / "state"))
    assert info.value.cni_code == 5


def test_world_writable_state_dir_refused(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(CniError) as info:
        StateDir(str(open_dir))
    assert info.value.cni_code == 5 and "writable" in info.value.msg


def test_state_dir_of_another_user_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")  # pragma: no cover
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    os.chown(other, 4242, 4242)
    with pytest.raises(CniError) as info:
        StateDir(str(other))
    assert "owned by uid 4242" in info.value.msg


def test_close_twice_is_harmless(tmp_path):
    store = StateDir(str(tmp_path / "s"))
    store.close()
    store.close()


# -- records as untrusted input --------------------------------------------------------------------
def test_version_1_record_gets_the_defaults(state):
    plant(state, KEY, json.dumps(V1))
    got = state.read(KEY)
    assert got["bondIndex"] is None and got["pod"] is None
    for entry in got["links"]:
        assert entry["podIndex"] is None and entry["kind"] is None
        assert entry["addresses"] == [] and entry["routes"] == []
        assert entry["sysctls"] == {} and entry["uppers"] == []
    assert got["links"][1]["permMac"] == "02:00:00:00:00:02"


def test_defaults_are_fresh_objects():
    first, second = check_record(copy.deepcopy(V1)), check_record(copy.deepcopy(V1))
    first["links"][0]["addresses"].append("x")
    assert second["links"][0]["addresses"] == []


def test_unknown_keys_are_kept(state):
    plant(state, KEY, json.dumps(record(future=[1, 2], links=[link(extra={"a": 1})])))
    got = state.read(KEY)
    assert got["future"] == [1, 2] and got["links"][0]["extra"] == {"a": 1}


def test_symlinked_record_is_not_followed(state, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text(json.dumps(record()))
    os.symlink(victim, os.path.join(state.path, f"{KEY}.json"))
    assert "is not a regular file" in bad_record(state).msg
    state.write(KEY, record(created=3))  # replaces the link itself
    assert json.loads(victim.read_text()) == record()
    assert state.read(KEY)["created"] == 3


def test_fifo_record_does_not_hang(state):
    os.mkfifo(os.path.join(state.path, f"{KEY}.json"))
    assert bad_record(state).msg == f"state record {KEY} is not a regular file"


def test_directory_record(state):
    os.mkdir(os.path.join(state.path, f"{KEY}.json"))
    assert "is not a regular file" in bad_record(state).msg
    with pytest.raises(CniError) as info:
        state.remove(KEY)
    assert info.value.cni_code == 5


def test_socket_record(state, monkeypatch):
    monkeypatch.chdir(state.path)  # a socket path must be short: bind it relative
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(f"{KEY}.json")
        assert "is not a regular file" in bad_record(state).msg


def test_oversize_record(state):
    big = record(padding="x" * MAX_RECORD)
    plant(state, KEY, json.dumps(big))
    assert bad_record(state).msg == f"state record {KEY} is larger than 64 KiB"


def test_record_just_under_the_cap_is_read(state):
    data = json.dumps(record(padding=""))
    data = data[:-1] + ' ' * (MAX_RECORD - len(data)) + "}"
    assert len(data) == MAX_RECORD
    plant(state, KEY, data)
    assert state.read(KEY)["network"] == "net1"


@pytest.mark.parametrize(("data", "why"), [
    (b"", "is not valid JSON"),
    (b"\xff\xfe\x00garbage\x80", "is not valid JSON"),
    (os.urandom(512), "is not valid JSON"),
    (b"{not json", "is not valid JSON"),
    (b"[" * 30000 + b"]" * 30000, "is not valid JSON"),
    (b'{"a":' * 10000 + b"1" + b"}" * 10000, "is not valid JSON"),
    (b'{"version": ' + b"9" * 5000 + b"}", "is not valid JSON"),
    (b"[]", "is not a JSON object"),
    (b"null", "is not a JSON object"),
    (b'"record"', "is not a JSON object"),
    (b"{}", "field version: missing"),
])
def test_garbage_records(state, data, why):
    plant(state, KEY, data)
    assert bad_record(state).msg == f"state record {KEY} {why}"


BAD_FIELDS = [
    ("version", 3, "version: 3 is out of range"),
    ("version", "2", "version: expected an integer"),
    ("version", True, "version: expected an integer"),
    ("version", 2.0, "version: expected an integer"),
    ("network", "", "network: '' is not a network name"),
    ("network", 5, "network: expected a string"),
    ("containerID", "../x", "containerID: '../x' is not a container ID"),
    ("containerID", None, "containerID: expected a string"),
    ("ifname", "eth/0", "ifname: interface name 'eth/0' contains forbidden"),
    ("ifname", 1, "ifname: interface name must be a string"),
    ("netns", "run/netns/x", "netns: 'run/netns/x' is not an absolute path"),
    ("netns", "/x\0", "netns: '/x\\x00' is not an absolute path"),
    ("netnsId", [1], "netnsId: expected 2 to 2 entries, not 1"),
    ("netnsId", [1, "2"], "netnsId[1]: expected an integer"),
    ("netnsId", [1, -2], "netnsId[1]: -2 is out of range"),
    ("netnsId", {"dev": 1}, "netnsId: expected a list"),
    ("bond", "bond 0", "bond: interface name 'bond 0' contains forbidden"),
    ("bondIndex", 0, "bondIndex: 0 is out of range"),
    ("bondIndex", True, "bondIndex: expected an integer"),
    ("linksInContainer", 0, "linksInContainer: expected true or false"),
    ("phase", "deleting", "phase: 'deleting' is not one of adding, added"),
    ("created", "now", "created: expected a number"),
    ("created", False, "created: expected a number"),
    ("pod", "web-0", "pod: expected an object"),
    ("pod", {"name": "web-0"}, "pod.namespace: missing"),
    ("pod", {"name": 1, "namespace": "x"}, "pod.name: expected a string"),
    ("links", [], "links: expected 1 to 64 entries, not 0"),
    ("links", [link()] * 65, "links: expected 1 to 64 entries, not 65"),
    ("links", "eth1", "links: expected a list"),
    ("links", [None], "links[0]: expected an object"),
]
BAD_LINK_FIELDS = [
    ("name", "..", "links[0].name: interface name '..' is not allowed"),
    ("host", "yes", "links[0].host: expected true or false"),
    ("index", "7", "links[0].index: expected an integer"),
    ("index", 0, "links[0].index: 0 is out of range"),
    ("index", 2**31, "links[0].index: 2147483648 is out of range"),
    ("index", None, "links[0].index: expected an integer"),
    ("podIndex", -1, "links[0].podIndex: -1 is out of range"),
    ("kind", 5, "links[0].kind: expected a string"),
    ("mtu", "1500", "links[0].mtu: expected an integer"),
    ("mtu", -1, "links[0].mtu: -1 is out of range"),
    ("mac", "02:00:00:00:00:0g", "links[0].mac: '02:00:00:00:00:0g' is not a link-layer"),
    ("mac", "ip link set eth0 down", "links[0].mac: 'ip link set eth0 down' is not"),
    ("permMac", 2, "links[0].permMac: expected a string"),
    ("up", "up", "links[0].up: expected true or false"),
    ("addresses", "192.0.2.5/24", "links[0].addresses: expected a list"),
    ("addresses", ["192.0.2.5"], "links[0].addresses[0]: '192.0.2.5' is not an address"),
    ("addresses", [5], "links[0].addresses[0]: expected a string"),
    ("routes", [{"gateway": "192.0.2.1"}], "links[0].routes[0].dst: missing"),
    ("routes", [{"dst": "default", "metric": "1"}], "links[0].routes[0].metric: expected"),
    ("routes", [{"dst": "default", "table": -1}], "links[0].routes[0].table: -1 is out"),
    ("routes", [{"dst": "default", "gateway": "x; rm"}], "links[0].routes[0].gateway: 'x; rm' is"),
    ("routes", [{"dst": "everywhere"}], "links[0].routes[0].dst: 'everywhere' is not"),
    ("sysctls", [], "links[0].sysctls: expected an object"),
    ("sysctls", {"../../kernel/core_pattern": "|/x"}, "links[0].sysctls: '../../kernel/core"),
    ("sysctls", {"ipv4/rp_filter": 1}, "links[0].sysctls.ipv4/rp_filter: expected a string"),
    ("sysctls", {"ipv4/rp_filter": "1\n"}, "links[0].sysctls.ipv4/rp_filter: '1\\n' is not"),
    ("uppers", [{"index": 9, "name": "v"}], "links[0].uppers[0].up: missing"),
    ("uppers", [{"index": "9", "name": "v", "up": True}], "links[0].uppers[0].index: expected"),
    ("uppers", [{"index": 9, "name": "a/b", "up": True}], "links[0].uppers[0].name: interface"),
]


@pytest.mark.parametrize(("key", "value", "why"), BAD_FIELDS, ids=[f"{k}={v!r}"[:40] for k, v, _
                                                                   in BAD_FIELDS])
def test_wrong_field_in_record(state, key, value, why):
    plant(state, KEY, json.dumps(record(**{key: value})))
    assert f"state record {KEY} field {why}" in bad_record(state).msg


@pytest.mark.parametrize(("key", "value", "why"), BAD_LINK_FIELDS,
                         ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD_LINK_FIELDS])
def test_wrong_link_field_in_record(state, key, value, why):
    plant(state, KEY, json.dumps(record(links=[link(**{key: value})])))
    assert f"state record {KEY} field {why}" in bad_record(state).msg


@pytest.mark.parametrize("key", ["version", "network", "containerID", "ifname", "netns",
                                 "netnsId", "bond", "linksInContainer", "phase", "created",
                                 "links"])
def test_required_field_missing(key):
    rec = record()
    del rec[key]
    with pytest.raises(RecordError, match=f"^field {key}: missing$"):
        check_record(rec)


@pytest.mark.parametrize("key", ["name", "host", "index", "mtu", "mac", "permMac", "up"])
def test_required_link_field_missing(key):
    entry = link()
    del entry[key]
    with pytest.raises(RecordError, match=rf"^field links\[0\]\.{key}: missing$"):
        check_record(record(links=[entry]))


def test_nulls_where_the_schema_allows_them():
    got = check_record(record(bondIndex=None, pod=None, links=[link(
        podIndex=None, kind=None, mtu=None, mac=None, permMac=None, up=None,
        routes=[{"dst": "2001:db8::/32", "gateway": None, "metric": None, "table": None}])]))
    assert got["links"][0]["mtu"] is None


def test_records_lists_record_names_only_and_survives_odd_entries(state):
    plant(state, KEY, json.dumps(record()))
    base = Path(state.path)
    os.mkfifo(base / "fifo@bond0.json")
    (base / "dir@bond0.json").mkdir()
    (base / ".json").write_text("")
    (base / ".hidden.json").write_text("")
    (base / "+link@eth1.lock").write_text("")
    (base / ".x.123.tmp").write_text("")
    with open(os.fsencode(base) + b"/\xff\xfe@bond0.json", "w"):  # a name that is no UTF-8
        pass
    keys = state.records()
    assert keys == sorted([KEY, "fifo@bond0", "dir@bond0", os.fsdecode(b"\xff\xfe@bond0")])
    for key in keys:  # each one either reads or is a BadRecord, quickly
        if key != KEY:
            bad_record(state, key)


# -- locks -----------------------------------------------------------------------------------------
def test_keys_are_unambiguous_and_bounded():
    assert attachment_key("a", "b-c") != attachment_key("a-b", "c")
    assert attachment_key("x" * 300, "bond0").startswith("h@")
    assert len(attachment_key("x" * 300, "bond0")) < 100
    with pytest.raises(CniError):
        attachment_key("../etc", "x")
    assert link_lock_name("eth0") != attachment_key("link", "eth0")


def test_locks_exclude_each_other(tmp_path):
    first, second = StateDir(str(tmp_path / "s")), StateDir(str(tmp_path / "s"))
    try:
        assert first.lock("x", wait=0, what="x")
        assert first.lock("x", wait=0, what="x")  # already ours
        assert not second.lock("x", wait=0.1, what="x")
        with pytest.raises(CniError) as info:
            second.lock_or_busy("x", wait=0, what="link eth0")
        assert info.value.cni_code == 11 and "link eth0" in info.value.msg
        first.close()
        assert second.lock("x", wait=0, what="x")
    finally:
        second.close()


def test_lock_files_go_when_released(tmp_path):
    store = StateDir(str(tmp_path / "s"))
    assert store.lock(KEY, wait=0, what="a")
    assert store.lock(link_lock_name("eth1"), wait=0, what="l")
    assert sorted(os.listdir(tmp_path / "s")) == sorted([f"{KEY}.lock", "+link@eth1.lock"])
    assert held_locks(tmp_path / "s") == sorted([f"{KEY}.lock", "+link@eth1.lock"])
    store.unlock(KEY)
    store.unlock(KEY)
    assert os.listdir(tmp_path / "s") == ["+link@eth1.lock"]
    store.close()
    assert os.listdir(tmp_path / "s") == [] and held_locks(tmp_path / "s") == []


def test_a_busy_lock_is_not_removed_by_the_loser(tmp_path):
    first, second = StateDir(str(tmp_path / "s")), StateDir(str(tmp_path / "s"))
    assert first.lock("x", wait=0, what="x")
    assert not second.lock("x", wait=0, what="x")
    second.close()
    assert held_locks(tmp_path / "s") == ["x.lock"]
    first.close()


def test_a_waiter_gets_the_lock_once_the_holder_is_done(tmp_path):
    first, second = StateDir(str(tmp_path / "s")), StateDir(str(tmp_path / "s"))
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(second.lock("x", wait=5, what="x")))
    assert first.lock("x", wait=0, what="x")
    waiter.start()
    threading.Event().wait(0.2)
    first.close()
    waiter.join(10)
    assert got == [True] and held_locks(tmp_path / "s") == ["x.lock"]
    second.close()
    assert os.listdir(tmp_path / "s") == []


def test_a_waiter_that_locked_a_removed_file_starts_over(tmp_path, monkeypatch):
    """The race the removal opens: the waiter opened the lock file, the holder removed it and
    let go, the waiter's flock succeeds on a file no longer in the directory. Without the
    identity check a third process would then lock a new file at the same time."""
    holder, waiter, third = (StateDir(str(tmp_path / "s")) for _ in range(3))
    assert holder.lock("x", wait=0, what="x")
    real_flock = state_module.fcntl.flock
    calls = []

    def flock(fd: int, op: int) -> None:
        if not calls:
            holder.close()  # between the waiter's open and its flock
        calls.append(fd)
        real_flock(fd, op)

    monkeypatch.setattr(state_module, "fcntl", SimpleNamespace(
        flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB))
    assert waiter.lock("x", wait=0, what="x")
    assert len(calls) == 2  # the stale file, then the one now named x.lock
    monkeypatch.undo()
    assert not third.lock("x", wait=0, what="x")
    waiter.close()
    third.close()


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_lock_file_that_is_no_regular_file(state, tmp_path, kind):
    path = Path(state.path) / "x.lock"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        path.symlink_to(tmp_path / "victim")
    else:
        path.mkdir()
    with pytest.raises(CniError) as info:
        within(5, lambda: state.lock("x", wait=0, what="link x"))
    assert info.value.cni_code == 5 and "link x" in info.value.msg
    assert not (tmp_path / "victim").exists()
