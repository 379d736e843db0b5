"""The executable: VERSION, error JSON on stdout, no traceback, lean imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bondctl.cni import __main__ as entry

HEAVY = ("pluggy", "typer", "rich", "sh", "bondctl.backends", "bondctl.registry",
         "bondctl.ops", "subprocess", "logging", "dataclasses")


def run(env, stdin=b"", *args):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    proc = subprocess.run([sys.executable, *args, "-m", "bondctl.cni"], input=stdin,
                          env={**environ, **env}, capture_output=True, check=False)
    return proc


def test_version():
    proc = run({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.4.0"}')
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {
        "cniVersion": "0.4.0",
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


def test_version_imports_nothing_heavy():
    proc = run({"CNI_COMMAND": "VERSION"}, b"{}", "-X", "importtime")
    imported = {line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines()}
    assert "bondctl.cni.versions" in imported
    bad = sorted(m for m in imported for h in HEAVY if m == h or m.startswith(h + "."))
    assert bad == []
    assert not any(m.startswith("bondctl.cni.") and m not in
                   ("bondctl.cni.__main__", "bondctl.cni.versions", "bondctl.cni.jsondoc",
                    "bondctl.cni.errors") for m in imported)


def test_errors_are_json_on_stdout_with_nonzero_exit():
    proc = run({"CNI_COMMAND": "ADD"}, b'{"cniVersion": "0.3.1", "name": "n"}')
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert set(out) == {"cniVersion", "code", "msg", "details"}
    assert out["code"] == 4 and out["cniVersion"] == "0.3.1"
    assert b"Traceback" not in proc.stderr


def test_unexpected_exception_becomes_code_100_without_traceback(monkeypatch, capfd):
    def boom(stdin, log):
        raise RuntimeError("kaput")

    monkeypatch.setattr(entry, "_run", boom)
    monkeypatch.setattr(entry, "_read_stdin", lambda: b'{"cniVersion": "1.0.0"}')
    monkeypatch.setenv("CNI_COMMAND", "ADD")
    assert entry.main() == 1
    captured = capfd.readouterr()
    out = json.loads(captured.out)
    assert out["code"] == 100 and out["msg"] == "internal error: RuntimeError: kaput"
    assert "Traceback" in captured.err  # to the log (stderr here), never stdout


@pytest.mark.parametrize(("stdin", "code"), [(b"{", 6), (b'{"cniVersion": "9.9.9"}', 1)])
def test_config_errors(stdin, code):
    env = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/nonexistent"}
    proc = run(env, stdin)
    assert json.loads(proc.stdout)["code"] == code


def test_add_path_imports_no_backend_before_the_kernel(tmp_path):
    """A config error found before the first kernel call: the run never loads a backend."""
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/proc/self/ns/net",
           "CNI_IFNAME": "bond0", "CNI_PATH": "/x"}
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "n", "mode": "active-backup",
                        "links": [{"name": "a"}], "stateDir": str(tmp_path)}).encode()
    proc = run(env, stdin, "-X", "importtime")
    assert json.loads(proc.stdout)["code"] == 7
    imported = {line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines()}
    assert not [m for m in imported for h in HEAVY[:5] if m == h or m.startswith(h + ".")]


def test_an_error_that_is_not_ours_reads_as_a_bug(monkeypatch, capfd):
    """A SyntaxError carries a .msg too; only bondctl's own errors are reported as such: any
    other exception is an internal error (code 100) with its traceback in the log."""
    from bondctl.cni import plugin

    def broken(env, conf):
        raise SyntaxError("invalid syntax")

    monkeypatch.setattr(plugin, "run", broken)
    monkeypatch.setattr(entry, "_read_stdin", lambda: json.dumps(
        {"cniVersion": "1.0.0", "name": "n", "type": "bond"}).encode())
    for key in [k for k in os.environ if k.startswith("CNI_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CNI_COMMAND", "STATUS")
    monkeypatch.setenv("CNI_PATH", "/usr/lib/cni")
    assert entry.main() == 1
    captured = capfd.readouterr()
    out = json.loads(captured.out)
    assert out["code"] == 100 and out["msg"] == "internal error: SyntaxError: invalid syntax"
    assert "Traceback" in captured.err
