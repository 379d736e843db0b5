"""What a new user meets first: one-line errors with the documented exit codes, unwrapped
output in pipes, bounded `watch --interval`, no shadowing by a clone in the working directory,
the catalogue's rules for options without effect and for near-miss keys. Each runs the real
entry point in a subprocess where the behaviour lives there (exit codes, stderr)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bondctl.cli import uml
from bondctl.options import ineffective, near_miss, parse_options

ROOT = Path(__file__).resolve().parents[2]


def bondctl(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BONDCTL_")}
    return subprocess.run([*uml.bondctl_argv(), *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env={**base, **env}, check=False)


@pytest.mark.parametrize("args, says", [
    (["list", "--bad"], "No such option: --bad (see `bondctl list --help`)"),
    (["show"], "Missing argument 'NAME' (see `bondctl show --help`)"),
    (["nosuch"], "No such command 'nosuch'"),
])
def test_usage_errors_are_one_line_and_exit_2(args, says):
    done = bondctl(*args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("bondctl: error: ")
    assert says in done.stderr


@pytest.mark.parametrize("interval", ["0", "-1", "0.05", "3601"])
def test_watch_interval_out_of_bounds_is_a_usage_error(interval):
    done = bondctl("watch", "bond0", f"--interval={interval}")
    assert done.returncode == 2
    assert "--interval" in done.stderr and "0.1<=x<=3600" in done.stderr
    assert done.stderr.count("\n") == 1


def test_an_unknown_backend_is_a_usage_error():
    done = bondctl("-b", "nope", "list")
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert "no backend named 'nope'; installed: " in done.stderr


def test_no_args_still_prints_the_help():
    done = bondctl()
    assert done.returncode == 2
    assert "Usage: bondctl" in done.stdout + done.stderr


def test_output_that_is_not_a_terminal_is_not_wrapped(monkeypatch):
    from bondctl.cli.session import console

    monkeypatch.setenv("COLUMNS", "40")
    buffer = io.StringIO()
    out = console(buffer)
    assert not out.is_terminal
    line = "word " * 60
    out.print(line.strip())
    assert buffer.getvalue() == line.strip() + "\n"


def test_the_command_lines_of_the_doctor_table_are_not_cut_in_a_pipe():
    from rich.table import Table

    from bondctl.cli.session import console

    buffer = io.StringIO()
    table = Table("CHECK", "FIX")
    table.add_row("bonding driver", "load it (modprobe bonding); " * 8)
    console(buffer).print(table)
    assert all(len(row) > 200 for row in buffer.getvalue().splitlines()[3:4])


def test_a_clone_in_the_working_directory_does_not_shadow_the_installed_bondctl(tmp_path):
    """`python -m` puts the working directory first on sys.path: from inside a clone, its
    source tree (which has no bondctl.backends) would replace the installed package in the
    demo's and the sandbox's guest."""
    fake = tmp_path / "bondctl"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the source tree shadowed bondctl')\n")
    (fake / "cli").mkdir()
    (fake / "cli" / "__init__.py").write_text("")
    done = bondctl("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bondctl ")
    # and the plain `python -m` this replaces would indeed have been shadowed
    shadowed = subprocess.run([sys.executable, "-m", "bondctl.cli", "--version"], cwd=tmp_path,
                              capture_output=True, text=True, check=False)
    assert "the source tree shadowed bondctl" in shadowed.stderr


def test_bond_without_cni_command_names_no_none():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    done = subprocess.run([sys.executable, "-P", "-m", "bondctl.cni"], input="", env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert '"msg": "CNI_COMMAND is not set"' in done.stdout
    assert "CNI_COMMAND is not set" in done.stderr
    assert "None" not in done.stderr and " failed:" not in done.stderr


def test_create_help_explains_modes_and_takes_effect_in():
    from typer.testing import CliRunner

    from bondctl.cli.app import app

    text = " ".join(CliRunner().invoke(app, ["create", "--help"]).output.split())
    assert '"Modes:" lists the only modes the kernel accepts an option in' in text
    assert '"Takes effect in:" lists the modes where' in text
    assert "Takes effect in: 802.3ad." in text  # min_links, for one


# -- the catalogue's rules, which the CNI plugin shares ------------------------------------------
@pytest.mark.parametrize("key, expected", [
    ("miimom", "miimon"),  # one letter changed
    ("MIIMON", "miimon"),  # case only
    ("mimon", "miimon"),  # one dropped
    ("miimoon", "miimon"),  # one added
    ("imimon", "miimon"),  # neighbours swapped
    ("MiiMom", "miimon"),  # case and one slip
    ("miimon", None),  # itself
    ("mtu_size", None),  # far from everything: someone else's key
    ("", None),
])
def test_near_miss(key, expected):
    assert near_miss(key, ["mode", "miimon", "updelay", "linksInContainer"]) == expected


def test_near_miss_keeps_the_known_spelling():
    assert near_miss("linksincontainer", ["linksInContainer"]) == "linksInContainer"


def test_ineffective_names_options_without_effect_in_the_mode():
    options = parse_options({"min_links": 1, "xmit_hash_policy": "layer3+4", "miimon": 100,
                             "lacp_rate": "slow"})
    found = dict(ineffective("active-backup", options))
    assert set(found) == {"min_links", "xmit_hash_policy"}
    assert found["min_links"] == ("min_links has no effect in mode active-backup; it takes "
                                  "effect in: 802.3ad")
    assert ineffective("802.3ad", parse_options({"min_links": 1})) == []


def test_ineffective_ignores_values_at_the_kernel_default():
    assert ineffective("active-backup", parse_options({"xmit_hash_policy": "layer2",
                                                       "min_links": 0})) == []


# -- shell completion ----------------------------------------------------------------------------
def complete(line: str) -> list[str]:
    """What bash completion offers for the last word of `line` (typer's protocol)."""
    words = line.split(" ")
    done = bondctl(_BONDCTL_COMPLETE="complete_bash", COMP_WORDS=line,
                   COMP_CWORD=str(len(words) - 1))
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_completion_of_modes_and_option_keys_comes_from_the_catalogue():
    assert complete("bondctl create b0 --mode balance-") == [
        "balance-rr", "balance-xor", "balance-tlb", "balance-alb"]
    assert complete("bondctl set b0 lacp") == ["lacp_rate=", "lacp_active="]
    assert complete("bondctl set b0 lacp_rate=") == ["lacp_rate=slow", "lacp_rate=fast"]
    assert complete("bondctl set b0 mode=802") == ["mode=802.3ad"]
    assert complete("bondctl create b0 -o use_carrier=") == ["use_carrier=0", "use_carrier=1"]
    assert complete("bondctl create b0 -o mo") == []  # --mode is its own flag
    assert complete("bondctl -b net") == ["netlink"]


@pytest.mark.skipif(os.geteuid() != 0, reason="making a namespace needs root")
def test_completion_of_namespace_names_reads_run_netns():
    name = f"bt-compl-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert complete("bondctl -n bt-compl-") == [name]
        # a link name in a namespace that is gone: nothing offered, no error
        assert complete("bondctl -n nosuch-ns enslave bond0 e") == []
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
