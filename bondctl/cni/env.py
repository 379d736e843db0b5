"""The CNI_* environment, validated exactly as SPEC.md asks, before anything else happens."""

from __future__ import annotations

import os

from ..errors import ValidationError
from ..names import check_ifname
from ..record import Record
from .errors import INVALID_ENV, CniError

COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
_ATTACHMENT = ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH")
# What each command cannot do without; DEL may come after the namespace is gone.
REQUIRED: dict[str, tuple[str, ...]] = {
    "ADD": _ATTACHMENT,
    "CHECK": _ATTACHMENT,
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
    "VERSION": (),
}
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ALNUM | frozenset("_.-")


class _ContainerId:
    """The pattern libcni checks CNI_CONTAINERID against, matched without re (re imports enum
    and compiles: milliseconds on every pod start). libcni matches it with Go's regexp, whose
    "$" is the end of the text: a trailing newline fails, as anything else outside the set."""

    pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$"

    def match(self, text: str) -> bool:
        return bool(text) and text[0] in _ALNUM and _ID_CHARS.issuperset(text)


CONTAINER_ID = _ContainerId()


TYPE_CHECKING = False  # typing (and collections) cost milliseconds to import, on every pod start
if TYPE_CHECKING:
    from collections.abc import Mapping


class CniEnv(Record):
    command: str
    container_id: str  # "" when the command does not take one
    netns: str  # "" when not given (DEL, GC, STATUS)
    ifname: str
    args: dict[str, str]
    path: tuple[str, ...]
    # The whole environment as the request gave it: the commands read nothing of the
    # process's own (a resident process serves many requests), and pass it on to IPAM.
    environ: Mapping[str, str] = {}


def read_env(environ: Mapping[str, str] = os.environ) -> CniEnv:
    """The validated environment, or CniError code 4 naming the variable."""
    command = environ.get("CNI_COMMAND", "")
    if not command:
        raise CniError(INVALID_ENV, "CNI_COMMAND is not set")
    if command not in REQUIRED:
        raise CniError(INVALID_ENV, f"CNI_COMMAND {command!r} is not one of {', '.join(COMMANDS)}")
    missing = [var for var in REQUIRED[command] if not environ.get(var)]
    if missing:
        raise CniError(INVALID_ENV, f"{command} needs {', '.join(missing)}, which "
                       f"{'is' if len(missing) == 1 else 'are'} not set")
    container_id = environ.get("CNI_CONTAINERID", "")
    if container_id and not CONTAINER_ID.match(container_id):
        raise CniError(INVALID_ENV, f"CNI_CONTAINERID {container_id!r} must match "
                       f"{CONTAINER_ID.pattern}")
    ifname = environ.get("CNI_IFNAME", "")
    if ifname:
        try:
            check_ifname(ifname, "CNI_IFNAME")
        except ValidationError as exc:
            raise CniError(INVALID_ENV, exc.msg) from None
    netns = environ.get("CNI_NETNS", "")
    if netns and (not netns.startswith("/") or "\0" in netns):
        raise CniError(INVALID_ENV, f"CNI_NETNS {netns!r} must be an absolute path")
    path = search_path(environ.get("CNI_PATH", ""))
    return CniEnv(command, container_id, netns, ifname,
                  parse_args(environ.get("CNI_ARGS", "")), path, dict(environ))


def search_path(raw: str) -> tuple[str, ...]:
    """CNI_PATH's directories; an empty or relative entry is skipped, never searched: it
    would be resolved against whatever directory the runtime started us in."""
    return tuple(p for p in raw.split(os.pathsep) if os.path.isabs(p) and "\0" not in p)


def parse_args(raw: str) -> dict[str, str]:
    """CNI_ARGS "K=V;K2=V2" as a dict."""
    args: dict[str, str] = {}
    for pair in raw.split(";"):
        if not pair:
            continue
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise CniError(INVALID_ENV, f"CNI_ARGS: {pair!r} is not KEY=VALUE")
        args[key] = value
    return args
