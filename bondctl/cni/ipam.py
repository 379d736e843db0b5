"""The delegated IPAM plugin: found in CNI_PATH, run with an argv (never a shell), the same
environment and the network configuration on stdin, as SPEC.md's delegation asks."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

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
from .jsondoc import fields, fold, loads
from .log import log
from .result import Result, normalize, render
from .versions import SUPPORTED_VERSIONS

TIMEOUT = 120.0  # seconds: an IPAM that hangs must not hang the pod forever


def find(kind: str, path: Sequence[str]) -> str:
    for directory in path:
        candidate = os.path.join(directory, kind)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(INVALID_CONFIG, f"ipam.type: no plugin named {kind!r} in CNI_PATH "
                   f"({os.pathsep.join(path) or 'no absolute directory'})")


def _exec(binary: str, command: str, stdin: bytes, environ: Mapping[str, str]) -> bytes:
    import subprocess  # only when IPAM runs

    env = {**environ, "CNI_COMMAND": command}
    try:
        proc = subprocess.run([binary], input=stdin, env=env, capture_output=True,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:  # a slow IPAM (a DHCP server away) may answer later
        raise CniError(TRY_AGAIN, f"ipam {os.path.basename(binary)} {command} did not "
                       f"answer within {TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise CniError(IO_FAILURE, f"cannot run {binary}: {exc.strerror or exc}") from None
    if proc.stderr:
        log.debug(f"ipam {command} stderr: {proc.stderr.decode(errors='replace').strip()}")
    if proc.returncode == 0:
        return bytes(proc.stdout)
    raise failure(os.path.basename(binary), command, proc.returncode, proc.stdout, proc.stderr)


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
                    json.dumps({"cniVersion": self.conf.cni_version}).encode(), self.environ)
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
        return json.dumps(config).encode()

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
