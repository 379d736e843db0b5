"""The delegated IPAM plugin: found in CNI_PATH, run with an argv (never a shell), the same
environment and the network configuration on stdin, as SPEC.md's delegation asks."""

from __future__ import annotations

import os
from time import monotonic

from .config import NetConf
from .errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    IO_FAILURE,
    PLUGIN_FAILURE,
    TRY_AGAIN,
    CniError,
)
from .jsondoc import dumps, fields, fold, loads
from .log import log
from .result import Result, normalize, render
from .versions import SUPPORTED_VERSIONS

TYPE_CHECKING = False  # typing and collections cost milliseconds per direct ADD and DEL
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

TIMEOUT = 120.0  # seconds: an IPAM that hangs must not hang the pod forever
# Reset to their defaults for the plugin, as subprocess's restore_signals does (Python ignores
# SIGPIPE and SIGXFSZ). Numbers, not the signal module, whose import costs enum: Linux's.
_SIGPIPE, _SIGXFSZ = 13, 25


def find(kind: str, path: Sequence[str]) -> str:
    for directory in path:
        candidate = os.path.join(directory, kind)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(INVALID_CONFIG, f"ipam.type: no plugin named {kind!r} in CNI_PATH "
                   f"({os.pathsep.join(path) or 'no absolute directory'})")


def _exec(binary: str, command: str, stdin: bytes, environ: Mapping[str, str]) -> bytes:
    env = {**environ, "CNI_COMMAND": command}
    try:
        returncode, stdout, stderr = run(binary, stdin, env, TIMEOUT)
    except TimeoutError:  # a slow IPAM (a DHCP server away) may answer later
        raise CniError(TRY_AGAIN, f"ipam {os.path.basename(binary)} {command} did not "
                       f"answer within {TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise CniError(IO_FAILURE, f"cannot run {binary}: {exc.strerror or exc}") from None
    if stderr:
        log.debug(f"ipam {command} stderr: {stderr.decode(errors='replace').strip()}")
    if returncode == 0:
        return stdout
    raise failure(os.path.basename(binary), command, returncode, stdout, stderr)


def run(binary: str, stdin: bytes, env: dict[str, str], timeout: float
        ) -> tuple[int, bytes, bytes]:
    """Run `binary` (no shell) with `stdin`; its exit code (-N: killed by signal N), stdout and
    stderr. TimeoutError, the process killed, if it is not done within `timeout` seconds.

    What subprocess.run(input=, capture_output=True, timeout=) did, with os.posix_spawn (a
    vfork, as subprocess's) and a poll loop: importing subprocess (threading, selectors,
    signal and enum, locale) cost ~4 ms natively on every direct ADD and DEL. As close_fds
    did, the plugin gets no descriptor of ours but its stdio."""
    import select  # a C module, imported in microseconds

    pipes = [_pipe() for _ in range(3)]  # stdin, stdout, stderr: (read end, write end)
    (in_r, in_w), (out_r, out_w), (err_r, err_w) = pipes
    ours = {fd for pair in pipes for fd in pair}
    actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_DUP2, in_r, 0),
                                      (os.POSIX_SPAWN_DUP2, out_w, 1),
                                      (os.POSIX_SPAWN_DUP2, err_w, 2)]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable() if fd not in ours]
    try:
        pid = os.posix_spawn(binary, [binary], env, file_actions=actions,
                             setsigdef=(_SIGPIPE, _SIGXFSZ))
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):  # the plugin's ends
        os.close(fd)
    deadline = monotonic() + timeout
    out: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()
    for fd in out:
        poller.register(fd, select.POLLIN)
    view, sent = memoryview(stdin), 0
    open_fds = set(out)
    if stdin:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
        open_fds.add(in_w)
    else:
        os.close(in_w)
    try:
        while open_fds:
            left = deadline - monotonic()
            if left <= 0:
                raise TimeoutError
            for fd, _ in poller.poll(left * 1000):
                if fd == in_w:
                    try:
                        sent += os.write(in_w, view[sent:])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # it did not read it all: its answer tells
                        sent = len(view)
                    if sent < len(view):
                        continue
                else:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        out[fd].append(chunk)
                        continue
                poller.unregister(fd)
                os.close(fd)
                open_fds.discard(fd)
        status = _wait(pid, deadline)
    except BaseException:
        for fd in open_fds:
            os.close(fd)
        _kill(pid)
        raise
    return os.waitstatus_to_exitcode(status), b"".join(out[out_r]), b"".join(out[err_r])


def _pipe() -> tuple[int, int]:
    """A close-on-exec pipe with neither end on 0, 1 or 2 (a process started with one of
    those closed would otherwise dup2 a descriptor onto itself, which keeps close-on-exec)."""
    ends = []
    for fd in os.pipe2(os.O_CLOEXEC):
        if fd < 3:
            import fcntl

            moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(fd)
            fd = moved
        ends.append(fd)
    return ends[0], ends[1]


def _inheritable() -> list[int]:
    """Our descriptors above 2 that an exec would pass on (the ones Python opens are not)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:  # the listing's own descriptor, closed by now
                pass
    return found


def _wait(pid: int, deadline: float) -> int:
    """Its wait status, once it exits; TimeoutError at the deadline. It closed its output, so
    this is usually at once."""
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        left = deadline - monotonic()
        if left <= 0:
            raise TimeoutError
        from time import sleep

        sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)  # SIGKILL
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def failure(name: str, command: str, returncode: int, stdout: bytes,
            stderr: bytes) -> CniError:
    """The error of an IPAM run that failed: its msg and details when they are strings, its
    code when it is one the spec lets a plugin give (1 to 999) other than 100, which stays
    ours (a bug in bond); anything else is code 5 (the IPAM failed us)."""
    try:
        error = loads(stdout, f"ipam {name} {command} error")
    except CniError:
        error = None
    keys = fields(error) if isinstance(error, dict) else {}
    code, msg, details = keys.get("code"), keys.get("msg"), keys.get("details")
    if not isinstance(msg, str) or not msg:
        msg = f"exited {returncode}"
    if not isinstance(details, str):
        details = "" if keys else (stdout or stderr).decode(errors="replace").strip()
    if not (isinstance(code, int) and not isinstance(code, bool) and 0 < code < 1000
            and code != PLUGIN_FAILURE):
        if isinstance(code, int):
            details = "; ".join(filter(None, [details, f"ipam gave code {code}"]))
        code = IO_FAILURE
    return CniError(code, f"ipam {name} {command}: {msg}", details=details)


def read_result(out: bytes, kind: str) -> Result:
    """IPAM's ADD output as a checked result with at least one address, or CniError code 6
    (it printed something bond cannot use)."""
    what = f"ipam {kind} result"
    if not out.strip():
        raise CniError(DECODE_FAILURE, f"{what}: ADD printed nothing")
    result = normalize(loads(out, what), what, indexed=False)
    if not result["ips"]:
        raise CniError(DECODE_FAILURE, f"{what}: no IP address")
    return result


class Ipam:
    """The IPAM plugin of one network configuration."""

    def __init__(self, conf: NetConf, path: Sequence[str],
                 environ: Mapping[str, str] = os.environ) -> None:
        assert conf.ipam_type is not None
        self.conf = conf
        self.kind = conf.ipam_type
        self.binary = find(self.kind, path)
        self.environ = environ

    def _call(self, command: str) -> bytes:
        """Run `command`; an IPAM that does not speak our cniVersion gets the closest one
        it does (host-local 1.1 stops at 1.0.0 while runtimes send 1.1.0)."""
        try:
            return _exec(self.binary, command, self.conf.raw, self.environ)
        except CniError as exc:
            if exc.cni_code != INCOMPATIBLE_VERSION:
                raise
            version = self._fallback_version()
            if version is None:
                raise
        log.info(f"ipam {self.kind} does not support {self.conf.cni_version}; using {version}")
        return _exec(self.binary, command, self._config_as(version), self.environ)

    def versions(self) -> tuple[str, ...]:
        out = _exec(self.binary, "VERSION",
                    dumps({"cniVersion": self.conf.cni_version}).encode(), self.environ)
        try:
            answer = loads(out, f"ipam {self.kind} VERSION")
        except CniError:
            return ()
        found = fields(answer).get("supportedversions") if isinstance(answer, dict) else None
        return tuple(v for v in found if isinstance(v, str)) if isinstance(found, list) else ()

    def _fallback_version(self) -> str | None:
        theirs = set(self.versions())
        common = [v for v in SUPPORTED_VERSIONS if v in theirs]
        return common[-1] if common else None

    def _config_as(self, version: str) -> bytes:
        """The configuration in `version`: one cniVersion and, as Go would pick it, one
        prevResult, laid out for that version."""
        config: dict[str, Any] = loads(self.conf.raw, "network configuration")
        config = {k: v for k, v in config.items() if fold(k) not in ("cniversion", "prevresult")}
        config["cniVersion"] = version
        if self.conf.prev_result is not None:
            config["prevResult"] = render(normalize(self.conf.prev_result, "prevResult"),
                                          version)
        return dumps(config).encode()

    def add(self) -> Result:
        """IPAM ADD's checked result (read_result); the caller's rollback runs IPAM DEL."""
        return read_result(self._call("ADD"), self.kind)

    def delete(self) -> None:
        self._call("DEL")

    def check(self) -> None:
        self._call("CHECK")

    def forward(self, command: str) -> bool:
        """GC or STATUS, only to a plugin that knows them (CNI 1.1); False if skipped."""
        if "1.1.0" not in self.versions():
            log.info(f"ipam {self.kind} predates CNI 1.1: {command} not forwarded")
            return False
        self._call(command)
        return True
