"""Interface and namespace names, validated before any reaches a path, argv or netlink."""

from __future__ import annotations

from .errors import ValidationError

IFNAMSIZ = 16  # the kernel's buffer, NUL included: names are at most 15 bytes
# "/" and ":" the kernel refuses; "%" makes the kernel pick a number (eth%d); the quoting and
# comment characters would change how `ip -batch` splits a line.
_FORBIDDEN = frozenset("/:\0%#\"'\\") | frozenset(" \t\n\r\v\f")


def check_ifname(name: object, what: str = "interface name") -> str:
    """Return `name` if the kernel would take it as an interface name, else raise."""
    if not isinstance(name, str):
        raise ValidationError(f"{what} must be a string, got {type(name).__name__}")
    try:
        encoded = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate, as JSON's "\ud800" decodes
        raise ValidationError(f"{what} {name!r} is not valid Unicode") from None
    if not encoded:
        raise ValidationError(f"{what} must not be empty")
    if len(encoded) >= IFNAMSIZ:
        raise ValidationError(f"{what} {name!r} is longer than {IFNAMSIZ - 1} bytes")
    if name in (".", ".."):
        raise ValidationError(f"{what} {name!r} is not allowed")
    bad = sorted({c for c in name if c in _FORBIDDEN or not c.isprintable()})
    if bad:
        raise ValidationError(f"{what} {name!r} contains forbidden characters {bad!r}")
    if not name.isascii():
        # The kernel takes any byte, but tools, sysfs paths and config files
        # disagree on encodings; refusing non-ASCII keeps every path unambiguous.
        raise ValidationError(f"{what} {name!r} must be ASCII")
    return name


def check_netns_name(name: object) -> str:
    """A name under /run/netns: the same rules as a file name in one directory."""
    if not isinstance(name, str) or not name:
        raise ValidationError("network namespace name must be a non-empty string")
    if name in (".", "..") or "/" in name or "\0" in name or len(name) > 255:
        raise ValidationError(f"network namespace name {name!r} is not allowed")
    return name
