"""Checkpoint files and the watcher's decisions (the restore: tests/kernel/test_operate.py)."""

from __future__ import annotations

import os
import stat

import pytest
from typer.testing import CliRunner

from bondctl.cli import checkpoint
from bondctl.cli.app import app
from bondctl.errors import BusyError, NotFoundError, ValidationError


@pytest.fixture
def where(tmp_path, monkeypatch):
    path = tmp_path / "cp"
    monkeypatch.setenv(checkpoint.DIR_ENV, str(path))
    return path


def test_the_directory_is_made_private_and_a_symlink_or_open_one_is_refused(where, tmp_path):
    assert checkpoint.directory() == where
    assert stat.S_IMODE(os.lstat(where).st_mode) == 0o700
    os.chmod(where, 0o755)
    with pytest.raises(ValidationError, match="mode 0700"):
        checkpoint.directory()
    os.rmdir(where)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    os.symlink(tmp_path / "elsewhere", where)
    with pytest.raises(ValidationError, match="symlink"):
        checkpoint.directory()


def test_files_are_written_atomically_and_never_read_through_a_symlink(where):
    d = checkpoint.directory()
    checkpoint.write_atomic(d / "x.json", {"a": 1})
    assert checkpoint.read(d / "x.json") == {"a": 1}
    assert stat.S_IMODE(os.lstat(d / "x.json").st_mode) == 0o600
    assert sorted(p.name for p in d.iterdir()) == ["x.json"]  # no temporary left behind
    os.symlink(d / "x.json", d / "link.json")
    with pytest.raises(OSError):
        checkpoint.read(d / "link.json")


@pytest.mark.parametrize("now, results, probe, expected", [
    (5, [], False, "wait"),
    (10, [], False, "restore"),
    (10, [True, True], True, "confirm"),
    (10, [True, False], True, "restore"),
    (5, [True, False, False], True, "wait"),
    (5, [True, False, False, False], True, "restore"),
])
def test_the_watcher_waits_confirms_or_restores(now, results, probe, expected):
    assert checkpoint.verdict(now, 10, results, probe) == expected


def test_probes_are_argv_lists_run_in_the_changed_namespace():
    assert checkpoint.probe_argv("ping:10.0.0.254", None) == [
        "ping", "-c", "1", "-W", "1", "-n", "10.0.0.254"]
    assert checkpoint.probe_argv("cmd:curl -sf 'http://a b/'", "/run/netns/lab") == [
        "nsenter", "--net=/run/netns/lab", "--", "curl", "-sf", "http://a b/"]
    with pytest.raises(ValidationError, match="expected ping:ADDRESS"):
        checkpoint.probe_argv("tcp:1.2.3.4:80", None)


def test_one_checkpoint_at_a_time_and_commit_ends_it(where):
    class Session:
        netns = backend = None

    data = checkpoint.begin(Session(), [], 5, None, "a.yaml")
    with pytest.raises(BusyError, match="still pending"):
        checkpoint.begin(Session(), [], 5, None, "b.yaml")
    assert checkpoint.commit()["id"] == data["id"]
    with pytest.raises(NotFoundError, match="was committed"):
        checkpoint.commit()
    with pytest.raises(ValidationError, match="out of range"):
        checkpoint.begin(Session(), [], 0, None, "a.yaml")


def test_commit_without_a_checkpoint_exits_3(where):
    result = CliRunner().invoke(app, ["commit"])
    assert result.exit_code == 3
    assert "no checkpoint is pending" in result.output
