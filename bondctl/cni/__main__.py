"""The `bond` CNI plugin executable: dispatch on CNI_COMMAND, print the result or the error.

Kept lean: VERSION imports nothing beyond bondctl.cni.jsondoc (no json, re or enum), and the
other commands import backends only when they change something (podman calls VERSION on every
plugin for every command).
"""

from __future__ import annotations

import os
import sys
from time import monotonic

from .jsondoc import decode, pretty  # the json package would cost ~10 ms (re, enum) per start
from .versions import LATEST, SUPPORTED_VERSIONS

TYPE_CHECKING = False  # typing costs milliseconds to import: VERSION never needs it
if TYPE_CHECKING:
    from typing import Any

# Who runs this request: "agent" in a request child of `bondctl agent` (agent.py). The plugin's
# log lines of an agent-served request say so: how an admin tells the two modes apart.
SERVED_BY = "direct"
# The agent's request child sets a list here: (phase, monotonic time) marks for its debug log.
MARKS: list[tuple[str, float]] | None = None


def _mark(phase: str) -> None:
    if MARKS is not None:
        MARKS.append((phase, monotonic()))


def _print(obj: dict[str, Any]) -> None:
    sys.stdout.write(pretty(obj) + "\n")
    sys.stdout.flush()


def _requested_version(stdin: bytes) -> str:
    """The cniVersion of the config, if it is one we speak: errors are reported in it."""
    if not stdin.strip():
        return LATEST  # as for any other non-JSON, without importing json to say so
    try:
        obj = decode(stdin)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return LATEST
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.lower() == "cniversion" and value in SUPPORTED_VERSIONS:
                return str(value)
    return LATEST


def _read_stdin() -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        return b""
    return sys.stdin.buffer.read()


def version_info(stdin: bytes) -> dict[str, Any]:
    return {"cniVersion": _requested_version(stdin), "supportedVersions": list(SUPPORTED_VERSIONS)}


_MAX_MSG = 1024  # runtimes log errors: a value echoed from a 10 MB stdin must not flood them


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_MSG else text[: _MAX_MSG - 1] + "…"


def _error(version: str, code: int, msg: str, details: str = "") -> int:
    _print({"cniVersion": version, "code": code, "msg": msg, "details": details})
    return 1


def main() -> int:
    stdin = _read_stdin()
    _mark("stdin")
    if os.environ.get("CNI_COMMAND") == "VERSION":
        _print(version_info(stdin))
        return 0
    version = _requested_version(stdin)
    try:
        from .log import log

        try:
            return _run(stdin, log)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            from ..errors import BondctlError
            from .errors import cni_code

            # Ours by type, not by a .msg attribute: SyntaxError and OSError subclasses have
            # one too, and a bug must read as one (code 100, traceback in the log).
            ours = isinstance(exc, BondctlError)
            msg = _bounded(exc.msg if isinstance(exc, BondctlError)
                           else f"internal error: {type(exc).__name__}: {exc}")
            if not ours:
                import traceback  # to the log only: stdout carries the error JSON

                log.error("".join(traceback.format_exception(exc)).rstrip())
            command = os.environ.get("CNI_COMMAND")
            log.error(f"{command} failed: {msg}" if command else msg)  # never "None failed"
            return _error(version, cni_code(exc) if ours else 100, msg,
                          _bounded(str(getattr(exc, "details", "") or "")))
    except KeyboardInterrupt:
        return _error(version, 100, "interrupted")


def _run(stdin: bytes, log: Any) -> int:
    from .config import parse_config
    from .env import read_env

    env = read_env()
    conf = parse_config(stdin)
    via = " (agent)" if SERVED_BY == "agent" else ""
    log.configure(conf.log_file, conf.log_level,
                  f"{env.command} {env.container_id or '-'}/{env.ifname or '-'}{via}")
    for warning in conf.warnings:
        log.warning(warning)
    from .plugin import run

    _mark("parse")
    result = run(env, conf)
    _mark("run")
    if result is not None:
        _print(result)
        _mark("print")
    return 0


if __name__ == "__main__":
    sys.exit(main())
