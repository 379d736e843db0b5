"""What comes back from outside the plugin (the kernel's refusals, a delegated IPAM's output)
becomes a CNI error with the right code, never 100: the codes are SPEC.md's or ours."""

from __future__ import annotations

import errno
import json
import os

import pytest

from bondctl.cni import ipam
from bondctl.cni.config import parse_config
from bondctl.cni.errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    IO_FAILURE,
    TRY_AGAIN,
    CniError,
    kernel_error,
)
from bondctl.errors import BackendUnavailableError, DriftError
from bondctl.netlink import NetlinkError


# -- the kernel -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "cni"), [
    (errno.EINVAL, INVALID_CONFIG), (errno.ERANGE, INVALID_CONFIG),
    (errno.EOPNOTSUPP, INVALID_CONFIG), (errno.EAFNOSUPPORT, INVALID_CONFIG),
    (errno.ENETUNREACH, INVALID_CONFIG), (errno.EHOSTUNREACH, INVALID_CONFIG),
    (errno.EEXIST, INVALID_CONFIG), (errno.EADDRNOTAVAIL, INVALID_CONFIG),
    (errno.ENODEV, INVALID_CONFIG),
    (errno.EBUSY, TRY_AGAIN), (errno.EAGAIN, TRY_AGAIN), (errno.ENOBUFS, TRY_AGAIN),
    (errno.ENOMEM, TRY_AGAIN), (errno.EINTR, TRY_AGAIN),
    (errno.EPERM, IO_FAILURE), (errno.EACCES, IO_FAILURE), (errno.EIO, IO_FAILURE),
    (errno.ENOENT, IO_FAILURE),
])
def test_kernel_refusals_get_their_code_and_the_kernel_s_words(code, cni):
    exc = NetlinkError.from_kernel(code, "Nexthop has invalid gateway")
    err = kernel_error(exc, "bond0: route to 0.0.0.0/0 via 10.9.9.9")
    assert err.cni_code == cni
    assert err.msg == (f"bond0: route to 0.0.0.0/0 via 10.9.9.9: {os.strerror(code)}: "
                       "Nexthop has invalid gateway")


def test_any_os_error_maps_too():
    assert kernel_error(OSError("odd"), "x").cni_code == IO_FAILURE
    assert kernel_error(OSError("odd"), "x").msg == "x: odd"
    assert kernel_error(OSError(errno.EINVAL, "Invalid argument"), "x").cni_code == 7


def test_library_errors_do_not_claim_code_100():
    assert DriftError("x").cni_code == 102
    assert BackendUnavailableError("x").cni_code == 50


# -- IPAM: its failures ---------------------------------------------------------------------------
def failure(stdout, returncode=1, stderr=b""):
    if not isinstance(stdout, bytes):
        stdout = json.dumps(stdout).encode()
    return ipam.failure("host-local", "ADD", returncode, stdout, stderr)


@pytest.mark.parametrize("code", [1, 7, 11, 50, 101, 999])
def test_ipam_codes_pass_through(code):
    err = failure({"code": code, "msg": "no addresses left", "details": "pool x"})
    assert (err.cni_code, err.msg, err.details) == (
        code, "ipam host-local ADD: no addresses left", "pool x")


@pytest.mark.parametrize("code", [100, 0, -7, 1000, 2**70, "7", 7.0, True, None, [7], {}])
def test_ipam_codes_that_are_not_theirs_to_give_become_5(code):
    err = failure({"code": code, "msg": "it broke"})
    assert err.cni_code == IO_FAILURE and err.msg == "ipam host-local ADD: it broke"
    if isinstance(code, int) and not isinstance(code, bool):
        assert err.details == f"ipam gave code {code}"


def test_ipam_code_100_keeps_its_message_and_says_so():
    err = failure({"code": 100, "msg": "boom", "details": "stack"})
    assert (err.cni_code, err.msg, err.details) == (5, "ipam host-local ADD: boom",
                                                    "stack; ipam gave code 100")


@pytest.mark.parametrize("stdout", [b"", b"garbage", b"[1]", b'"x"', b"[" * 5000,
                                    b'{"msg": 5, "details": {"a": 1}}', b"\xff\xfe"])
def test_ipam_failure_without_usable_json_is_5(stdout):
    err = failure(stdout, returncode=3, stderr=b"oops")
    assert err.cni_code == IO_FAILURE and err.msg == "ipam host-local ADD: exited 3"
    assert isinstance(err.details, str)


# -- IPAM: its result -----------------------------------------------------------------------------
@pytest.mark.parametrize(("stdout", "msg"), [
    (b"", "ipam host-local result: ADD printed nothing"),
    (b"not json", "ipam host-local result is not valid JSON"),
    (b"[" * 100 + b"]" * 100, "ipam host-local result is nested too deeply"),
    (b"[]", "ipam host-local result: expected a JSON object, got a list"),
    (b'{"ips": []}', "ipam host-local result: no IP address"),
    (b'{"ips": [{"address": "10.1.2.3"}]}',
     "ipam host-local result: ips[0].address: '10.1.2.3' lacks its prefix length"),
    (b'{"ips": [{"address": "10.1.2.3/24"}], "routes": [{"dst": "0.0.0.0/0", "gw": 1}]}',
     "ipam host-local result: routes[0].gw: expected an IP address, got a number"),
])
def test_unusable_ipam_results_are_code_6(stdout, msg):
    with pytest.raises(CniError) as info:
        ipam.read_result(stdout, "host-local")
    assert info.value.cni_code == DECODE_FAILURE and info.value.msg.startswith(msg)


def test_an_ipam_result_is_read_in_any_version():
    out = ipam.read_result(json.dumps({
        "cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.2.3/24",
                                        "gateway": "10.1.2.1", "interface": 5}],
        "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}).encode(), "host-local")
    assert out == {"interfaces": [], "ips": [{"address": "10.1.2.3/24", "gateway": "10.1.2.1",
                                             "interface": 5}],
                   "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}


# -- IPAM: running it -----------------------------------------------------------------------------
def plugin(tmp_path, body: str, name: str = "fake-ipam") -> str:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


def test_ipam_that_says_100_is_reported_as_5(tmp_path):
    binary = plugin(tmp_path, "#!/bin/sh\necho '{\"code\": 100, \"msg\": \"bug\"}'\nexit 1\n")
    with pytest.raises(CniError) as info:
        ipam._exec(binary, "ADD", b"{}", {"PATH": "/usr/bin:/bin"})
    assert info.value.cni_code == IO_FAILURE and info.value.msg == "ipam fake-ipam ADD: bug"


def test_ipam_that_cannot_run_is_5(tmp_path):
    binary = plugin(tmp_path, "no shebang: exec fails with ENOEXEC\n")
    with pytest.raises(CniError) as info:
        ipam._exec(binary, "ADD", b"{}", {})
    assert info.value.cni_code == IO_FAILURE and "cannot run" in info.value.msg


def test_ipam_that_hangs_is_try_again(tmp_path, monkeypatch):
    monkeypatch.setattr(ipam, "TIMEOUT", 0.2)
    binary = plugin(tmp_path, "#!/bin/sh\nexec sleep 5\n")
    with pytest.raises(CniError) as info:
        ipam._exec(binary, "ADD", b"{}", {"PATH": "/usr/bin:/bin"})
    assert info.value.cni_code == TRY_AGAIN and "did not answer" in info.value.msg


def test_ipam_that_cannot_run_leaves_no_descriptor_open(tmp_path):
    binary = plugin(tmp_path, "no shebang: exec fails with ENOEXEC\n")
    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(CniError):
            ipam._exec(binary, "ADD", b"{}", {})
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_ipam_gets_all_of_a_config_larger_than_a_pipe(tmp_path):
    """stdin is written while stdout is read: neither side may block the other."""
    binary = plugin(tmp_path, "#!/bin/sh\nexec cat\n")
    big = b"x" * (1 << 18)  # four times a pipe's buffer
    assert ipam._exec(binary, "ADD", big, {"PATH": "/usr/bin:/bin"}) == big


def test_ipam_gets_none_of_our_inheritable_descriptors(tmp_path):
    binary = plugin(tmp_path, "#!/bin/sh\nls /proc/self/fd\n")
    r, w = os.pipe()
    high = os.dup2(w, 77, inheritable=True)  # far above what ls opens for itself
    try:
        out = ipam._exec(binary, "ADD", b"{}", {"PATH": "/usr/bin:/bin"})
    finally:
        for fd in (r, w, high):
            os.close(fd)
    assert "77" not in out.decode().split()


def test_relative_path_entries_never_find_a_plugin(tmp_path, monkeypatch):
    plugin(tmp_path, "#!/bin/sh\n", "host-local")
    monkeypatch.chdir(tmp_path)
    conf = parse_config(json.dumps({"cniVersion": "1.0.0", "name": "n",
                                    "ipam": {"type": "host-local"}}).encode())
    from bondctl.cni.env import search_path

    with pytest.raises(CniError) as info:
        ipam.Ipam(conf, search_path(".:bin:"))
    assert info.value.cni_code == INVALID_CONFIG
    assert ipam.Ipam(conf, search_path(f".:{tmp_path}")).binary == str(tmp_path / "host-local")


def test_version_fallback_sends_one_cni_version_and_the_winning_prev_result(tmp_path):
    """An IPAM that speaks an older version gets the config in it: duplicate keys resolved
    as Go resolves them (the last one), the prevResult laid out for that version."""
    seen = tmp_path / "seen"
    plugin(tmp_path, f"""#!/bin/sh
if [ "$CNI_COMMAND" = VERSION ]; then echo '{{"supportedVersions": ["0.4.0"]}}'; exit 0; fi
cat > {seen}
if grep -q '"cniVersion": "0.4.0"' {seen}; then
  echo '{{"cniVersion": "0.4.0", "ips": [{{"version": "4", "address": "10.1.2.3/24"}}]}}'
  exit 0
fi
echo '{{"code": {INCOMPATIBLE_VERSION}, "msg": "no"}}'; exit 1
""", "old-ipam")
    raw = (b'{"cniVersion": "1.0.0", "CNIVersion": "1.1.0", "name": "n", '
           b'"ipam": {"type": "old-ipam"}, '
           b'"prevResult": {"ips": [{"address": "192.0.2.9/24"}]}, '
           b'"PrevResult": {"ips": [{"address": "192.0.2.2/24"}]}}')
    conf = parse_config(raw)
    result = ipam.Ipam(conf, (str(tmp_path),), {"PATH": "/usr/bin:/bin"}).add()
    assert result["ips"] == [{"address": "10.1.2.3/24"}]
    sent = json.loads(seen.read_text())
    assert sent["cniVersion"] == "0.4.0" and "CNIVersion" not in sent
    assert sent["prevResult"]["ips"] == [{"version": "4", "address": "192.0.2.2/24"}]
    assert "PrevResult" not in sent
