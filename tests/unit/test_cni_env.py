"""CNI_* validation, exactly as SPEC.md asks."""

from __future__ import annotations

import pytest

from bondctl.cni.env import REQUIRED, parse_args, read_env
from bondctl.cni.errors import CniError

FULL = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "bond0", "CNI_PATH": "/opt/cni/bin:/usr/lib/cni"}


def code(environ):
    with pytest.raises(CniError) as info:
        read_env(environ)
    return info.value.cni_code, info.value.msg


def test_full_add_environment():
    env = read_env({**FULL, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web"})
    assert env.command == "ADD" and env.ifname == "bond0"
    assert env.path == ("/opt/cni/bin", "/usr/lib/cni")
    assert env.args == {"IgnoreUnknown": "1", "K8S_POD_NAME": "web"}


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
@pytest.mark.parametrize("var", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
def test_add_and_check_need_every_variable(command, var):
    environ = {**FULL, "CNI_COMMAND": command}
    del environ[var]
    assert code(environ) == (4, f"{command} needs {var}, which is not set")


def test_del_may_lack_netns():
    environ = {**FULL, "CNI_COMMAND": "DEL"}
    del environ["CNI_NETNS"]
    assert read_env(environ).netns == ""
    del environ["CNI_IFNAME"]
    assert code(environ)[0] == 4


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_need_only_command_and_path(command):
    assert read_env({"CNI_COMMAND": command, "CNI_PATH": "/x"}).command == command
    assert code({"CNI_COMMAND": command})[0] == 4


def test_version_needs_only_command():
    assert read_env({"CNI_COMMAND": "VERSION"}).command == "VERSION"
    assert REQUIRED["VERSION"] == ()


@pytest.mark.parametrize("environ", [{}, {"CNI_COMMAND": "add"}, {"CNI_COMMAND": "FOO"}])
def test_bad_command(environ):
    assert code(environ)[0] == 4


@pytest.mark.parametrize("cid", ["-abc", ".x", "a/b", "a b", "a@b", "ä", "abc\n", "\n", "a\nb"])
def test_container_id_pattern(cid):
    value, msg = code({**FULL, "CNI_CONTAINERID": cid})
    assert value == 4 and "CNI_CONTAINERID" in msg


@pytest.mark.parametrize("ifname", [".", "..", "a/b", "a:b", "a b", "x" * 16])
def test_invalid_ifname(ifname):
    value, msg = code({**FULL, "CNI_IFNAME": ifname})
    assert value == 4 and "CNI_IFNAME" in msg


def test_relative_netns_refused():
    assert code({**FULL, "CNI_NETNS": "netns/x"})[0] == 4


def test_cni_args():
    assert parse_args("") == {}
    assert parse_args("A=1;;B=") == {"A": "1", "B": ""}
    with pytest.raises(CniError):
        parse_args("novalue")


@pytest.mark.parametrize(("raw", "want"), [
    ("bin:/opt/cni/bin", ("/opt/cni/bin",)),
    (".:/opt/cni/bin:", ("/opt/cni/bin",)),
    ("::/usr/lib/cni:../x:./y", ("/usr/lib/cni",)),
    ("relative", ()),
])
def test_relative_and_empty_cni_path_entries_are_never_searched(raw, want):
    assert read_env({**FULL, "CNI_PATH": raw}).path == want
