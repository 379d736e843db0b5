"""Network namespace references: a name under /run/netns, a path, or None for our own."""

from __future__ import annotations

import errno
import os

from .errors import NotFoundError, ValidationError
from .names import check_netns_name
from .record import Record

NETNS_RUN_DIR = "/run/netns"


class Netns(Record):
    """A resolved namespace. `name` is set when `ip -n NAME` can reach it."""

    path: str | None  # None: the caller's own namespace
    name: str | None

    @property
    def label(self) -> str:
        return self.name or self.path or "(current)"


CURRENT = Netns(None, None)


def resolve(spec: str | Netns | None) -> Netns:
    """Validate a namespace given as a name or a path; it must exist."""
    if spec is None or isinstance(spec, Netns):
        return spec or CURRENT
    if not isinstance(spec, str):
        raise ValidationError("network namespace must be a name or a path")
    if "/" in spec:
        if not os.path.isabs(spec) or "\0" in spec:
            raise ValidationError(f"network namespace path {spec!r} must be absolute")
        path = os.path.normpath(spec)
        head, tail = os.path.split(path)
        name = tail if head == NETNS_RUN_DIR else None
    else:
        name = check_netns_name(spec)
        path = os.path.join(NETNS_RUN_DIR, name)
    check_is_netns(path)
    return Netns(path, name)


def check_is_netns(path: str) -> None:
    """Refuse a path that is not a network namespace before anything is done with it."""
    from .netlink.ns import open_netns

    try:
        os.close(open_netns(path))
    except FileNotFoundError:
        raise NotFoundError(f"network namespace {path} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise ValidationError(f"{path} is not a network namespace") from None
        raise NotFoundError(f"network namespace {path}: {exc.strerror}") from None
