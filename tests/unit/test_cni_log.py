"""Plugin logging: logFile only as a regular file under the admin's directory, never through a
symlink, never blocking; one event is one line whatever the logged values hold."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bondctl.cni.log import DEFAULT_LOG_DIR, LOG_DIR_ENV, Log, one_line
from tests.unit.helpers import within


@pytest.fixture
def allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The admin's log directory (not created yet: the plugin makes it)."""
    path = tmp_path / "log" / "bondctl"
    monkeypatch.setenv(LOG_DIR_ENV, str(path))
    return path




def configured(path: str, level: str = "debug") -> Log:
    log = Log()
    within(5, lambda: log.configure(path, level, "ADD ctr/bond0"))
    return log


def refusal(capfd: pytest.CaptureFixture[str], log: Log) -> str:
    """The one warning line a refused logFile gives on stderr; the log stays on stderr."""
    assert log.fd == 2
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and " warning: logFile " in lines[0] and "refused" in lines[0], err
    assert lines[0].endswith("; logging to stderr")
    return lines[0]


def test_log_file_in_the_allowed_dir(allowed, capfd):
    log = configured(str(allowed / "bond.log"))
    log.info("ready")
    log.debug("details")
    assert os.stat(allowed).st_mode & 0o777 == 0o700
    assert os.stat(allowed / "bond.log").st_mode & 0o777 == 0o600
    lines = (allowed / "bond.log").read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == ["ADD ctr/bond0 info: ready",
                                                        "ADD ctr/bond0 debug: details"]
    assert capfd.readouterr().err == ""


def test_log_file_is_appended_and_a_subdir_is_fine(allowed):
    (allowed / "net1").mkdir(parents=True)
    (allowed / "net1" / "bond.log").write_text("earlier\n")
    configured(str(allowed / "net1" / "bond.log")).error("now")
    lines = (allowed / "net1" / "bond.log").read_text().splitlines()
    assert lines[0] == "earlier" and lines[1].endswith(" error: now")


@pytest.mark.parametrize("where", ["/etc/bond.log", "{dir}/../bond.log", "{dir}/a/../../x.log",
                                   "{dir}x/bond.log", "{dir}", "{dir}/", "bond.log",
                                   "{dir}/a\0b"])
def test_log_file_outside_the_allowed_dir_refused(allowed, capfd, where):
    path = where.format(dir=allowed)
    line = refusal(capfd, configured(path))
    assert f"inside {allowed} (set by {LOG_DIR_ENV})" in line
    assert not os.path.exists("/etc/bond.log")
    assert [p.name for p in allowed.parent.parent.rglob("*")] in ([], ["log"]), \
        "nothing created outside the allowed dir"


def test_default_allowed_dir(monkeypatch, capfd):
    monkeypatch.delenv(LOG_DIR_ENV, raising=False)
    line = refusal(capfd, configured("/tmp/bond.log"))
    assert f"inside {DEFAULT_LOG_DIR} " in line


def test_fifo_log_file_without_reader_does_not_hang(allowed, capfd):
    allowed.mkdir(parents=True)
    os.mkfifo(allowed / "bond.log")
    line = refusal(capfd, configured(str(allowed / "bond.log")))
    assert "FIFO" in line


def test_fifo_log_file_with_a_reader_refused(allowed, capfd):
    allowed.mkdir(parents=True)
    os.mkfifo(allowed / "bond.log")
    reader = os.open(allowed / "bond.log", os.O_RDONLY | os.O_NONBLOCK)
    try:
        line = refusal(capfd, configured(str(allowed / "bond.log")))
        assert "not a regular file" in line
        assert os.read(reader, 100) == b""  # closed again, nothing written into it
    finally:
        os.close(reader)


def test_symlinked_subdir_refused(allowed, tmp_path, capfd):
    target = tmp_path / "etc"
    target.mkdir()
    allowed.mkdir(parents=True)
    (allowed / "net1").symlink_to(target)
    line = refusal(capfd, configured(str(allowed / "net1" / "bond.log")))
    assert "symlink" in line
    assert list(target.iterdir()) == []


def test_symlinked_log_file_refused(allowed, tmp_path, capfd):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    allowed.mkdir(parents=True)
    (allowed / "bond.log").symlink_to(victim)
    assert "symlink" in refusal(capfd, configured(str(allowed / "bond.log")))
    assert victim.read_text() == "precious\n"


def test_dangling_symlink_log_file_refused(allowed, tmp_path, capfd):
    allowed.mkdir(parents=True)
    (allowed / "bond.log").symlink_to(tmp_path / "nowhere")
    refusal(capfd, configured(str(allowed / "bond.log")))
    assert not (tmp_path / "nowhere").exists()


def test_directory_log_file_refused(allowed, capfd):
    (allowed / "bond.log").mkdir(parents=True)
    assert "directory" in refusal(capfd, configured(str(allowed / "bond.log")))


def test_missing_subdir_refused_not_created(allowed, capfd):
    refusal(capfd, configured(str(allowed / "net1" / "bond.log")))
    assert not (allowed / "net1").exists()


def test_hard_linked_log_file_refused(allowed, tmp_path, capfd):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    allowed.mkdir(parents=True)
    os.link(victim, allowed / "bond.log")
    assert "hard links" in refusal(capfd, configured(str(allowed / "bond.log")))
    assert victim.read_text() == "precious\n"


def test_device_log_file_refused(allowed, capfd):
    if os.geteuid() != 0:
        pytest.skip("needs root to mknod")  # pragma: no cover
    allowed.mkdir(parents=True)
    os.mknod(allowed / "bond.log", 0o600 | 0o020000, os.makedev(1, 3))  # /dev/null
    assert "not a regular file" in refusal(capfd, configured(str(allowed / "bond.log")))


def test_refusal_respects_the_level(allowed, capfd):
    log = configured("/etc/bond.log", level="error")
    assert log.fd == 2 and capfd.readouterr().err == ""


def test_no_log_file_logs_to_stderr(capfd):
    log = configured("", level="info")
    log.info("hello")
    assert capfd.readouterr().err.endswith(" info: hello\n")


EVENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d bond\[\d+\] ADD c/bond0 [a-z]+: ")


# -- one event, one line ---------------------------------------------------------------------------
FORGERIES = ["net\n2024-01-01T00:00:00 bond[1] ADD x/y error: forged",
             "net\r2024 forged", "net\x0b\x0c\x1c\x1d\x1e forged", "net\x85forged",
             "net\u2028forged", "net\u2029forged", "net\x1b[2Kforged", "net\x7f\x00forged",
             "net\x9bforged", "\ud800 lone surrogate"]


@pytest.mark.parametrize("value", FORGERIES)
def test_a_logged_value_cannot_start_a_line(allowed, value):
    log = configured(str(allowed / "bond.log"))
    log.warning(f"network {value} refused")
    log.configure(None, None, f"ADD {value}/bond0")
    log.error("second")
    text = (allowed / "bond.log").read_bytes().decode("utf-8", "replace")
    assert text.count("\n") == 2 and len(text.splitlines()) == 2, text
    assert not [c for c in text[:-1] if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0)]


def test_escapes_are_readable():
    assert one_line("a\nb\rc\td\x00e\x7f\u2028\u2029\x85é") == \
        "a\\nb\\rc\\td\\x00e\\x7f\\u2028\\u2029\\x85é"


def test_a_traceback_is_one_line(allowed):
    log = configured(str(allowed / "bond.log"))
    log.error("Traceback (most recent call last):\n  File x\nRuntimeError: kaput")
    assert len((allowed / "bond.log").read_text().splitlines()) == 1


def test_plugin_run_with_a_forged_name_logs_one_line_per_event(allowed, tmp_path):
    """The whole plugin, as a runtime starts it: a network name with a newline, a logFile in
    the allowed dir; ADD fails (no such links) and every event is one line."""
    conf = ('{"cniVersion": "1.0.0", "name": "n\\nFORGED line", "type": "bond", '
            '"mode": "active-backup", "links": [{"name": "a"}], "logLevel": "debug", '
            f'"logFile": "{allowed}/bond.log", "stateDir": "{tmp_path}/state"}}')
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "bond0",
           "CNI_NETNS": "/proc/self/ns/net", "CNI_PATH": "/x", "BONDCTL_STATE_ROOT": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "bondctl.cni"], input=conf.encode(), env=env,
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr, proc.stderr
    lines = (allowed / "bond.log").read_text().splitlines()
    assert [line for line in lines if "network n\\nFORGED line" in line], lines
    assert all(EVENT.match(line) for line in lines), lines
