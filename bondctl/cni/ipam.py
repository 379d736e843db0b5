"""The delegated IPAM plugin: found in CNI_PATH, run with an argv (never a shell), the same
environment and the network configuration on stdin, as SPEC.md's delegation asks."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .config import NetConf
from .errors import INCOMPATIBLE_VERSION, INVALID_CONFIG, PLUGIN_FAILURE, CniError
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
                   f"({os.pathsep.join(path) or 'empty'})")


def _exec(binary: str, command: str, stdin: bytes, environ: Mapping[str, str]) -> bytes:
    import subprocess  # only when IPAM runs

    env = {**environ, "CNI_COMMAND": command}
    try:
        proc = subprocess.run([binary], input=stdin, env=env, capture_output=True,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise CniError(PLUGIN_FAILURE, f"ipam {os.path.basename(binary)} {command} did not "
                       f"answer within {TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise CniError(PLUGIN_FAILURE, f"cannot run {binary}: {exc.strerror}") from None
    if proc.stderr:
        log.debug(f"ipam {command} stderr: {proc.stderr.decode(errors='replace').strip()}")
    if proc.returncode == 0:
        return bytes(proc.stdout)
    name = os.path.basename(binary)
    try:
        error = json.loads(proc.stdout)
        code = int(error.get("code", PLUGIN_FAILURE))
        msg = str(error.get("msg", "failed"))
        details = str(error.get("details", ""))
    except (ValueError, AttributeError, TypeError):
        code, msg = PLUGIN_FAILURE, f"exited {proc.returncode}"
        details = (proc.stdout or proc.stderr).decode(errors="replace").strip()
    raise CniError(code, f"ipam {name} {command}: {msg}", details=details)


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
            found = json.loads(out).get("supportedVersions", [])
        except (ValueError, AttributeError):
            return ()
        return tuple(v for v in found if isinstance(v, str))

    def _fallback_version(self) -> str | None:
        theirs = set(self.versions())
        common = [v for v in SUPPORTED_VERSIONS if v in theirs]
        return common[-1] if common else None

    def _config_as(self, version: str) -> bytes:
        config: dict[str, Any] = json.loads(self.conf.raw)
        config = {k: v for k, v in config.items() if k.lower() != "cniversion"}
        config["cniVersion"] = version
        for key in [k for k in config if k.lower() == "prevresult"]:
            config[key] = render(normalize(config[key], "prevResult"), version)
        return json.dumps(config).encode()

    def add(self) -> Result:
        out = self._call("ADD")
        try:
            raw = json.loads(out)
        except ValueError:
            raise CniError(PLUGIN_FAILURE, f"ipam {self.kind} ADD printed no JSON result"
                           ) from None
        result = normalize(raw, f"ipam {self.kind} result")
        if not result["ips"]:
            raise CniError(PLUGIN_FAILURE, f"ipam {self.kind} returned no IP address")
        return result

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
