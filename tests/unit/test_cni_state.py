"""State records: atomic, symlink-safe, owned by root or us; locks that exclude."""

from __future__ import annotations

import os

import pytest

from bondctl.cni.errors import CniError
from bondctl.cni.state import StateDir, attachment_key, link_lock_name


@pytest.fixture
def state(tmp_path):
    store = StateDir(str(tmp_path / "state"))
    yield store
    store.close()


def test_write_read_remove(state):
    key = attachment_key("ctr1", "bond0")
    assert state.read(key) is None
    state.write(key, {"links": [{"name": "eth0"}]})
    assert state.read(key) == {"links": [{"name": "eth0"}]}
    assert state.records() == [key]
    state.remove(key)
    state.remove(key)
    assert state.read(key) is None and state.records() == []


def test_write_is_atomic_and_leaves_no_temp_files(state):
    key = attachment_key("ctr1", "bond0")
    state.write(key, {"n": 1})
    state.write(key, {"n": 2})
    assert sorted(os.listdir(state.path)) == [f"{key}.json"]
    assert state.read(key) == {"n": 2}
    assert os.stat(os.path.join(state.path, f"{key}.json")).st_mode & 0o777 == 0o600


def test_state_dir_created_private(tmp_path):
    StateDir(str(tmp_path / "a" / "b")).close()
    assert os.stat(tmp_path / "a" / "b").st_mode & 0o777 == 0o700


def test_symlinked_state_dir_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(CniError) as info:
        StateDir(str(tmp_path / "link"))
    assert info.value.cni_code == 5 and "symlink" in info.value.msg


def test_world_writable_state_dir_refused(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(CniError) as info:
        StateDir(str(open_dir))
    assert "writable" in info.value.msg


def test_state_dir_of_another_user_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")  # pragma: no cover
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    os.chown(other, 4242, 4242)
    with pytest.raises(CniError) as info:
        StateDir(str(other))
    assert "owned by uid 4242" in info.value.msg


def test_symlinked_record_is_not_followed(state, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    key = attachment_key("ctr1", "bond0")
    os.symlink(victim, os.path.join(state.path, f"{key}.json"))
    with pytest.raises(CniError):
        state.read(key)
    state.write(key, {"n": 1})  # replaces the link itself
    assert victim.read_text() == "precious"
    assert state.read(key) == {"n": 1}


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
        assert not second.lock("x", wait=0.1, what="x")
        with pytest.raises(CniError) as info:
            second.lock_or_busy("x", wait=0, what="link eth0")
        assert info.value.cni_code == 11 and "link eth0" in info.value.msg
        first.close()
        assert second.lock("x", wait=0, what="x")
    finally:
        second.close()
