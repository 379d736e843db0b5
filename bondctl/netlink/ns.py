"""Entering network namespaces: the one place that names setns, unshare and CLONE_NEWNET.

Namespaces are opened by path and checked to be network namespaces (NS_GET_NSTYPE) before
anything is done with them; setns moves only the calling thread."""

from __future__ import annotations

import errno
import os

from .constants import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    NETNS_RUN_DIR,
    NS_GET_NSTYPE,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def netns_path(spec: str) -> str:
    """A namespace name (as `ip netns` names them) or an absolute path, to a path.

    Names are checked before they reach the file system: no '/', no '.' or '..'.
    """
    if spec.startswith("/"):
        return spec
    if not spec or "/" in spec or spec in (".", "..") or "\0" in spec or len(spec) > 255:
        raise ValueError(f"invalid network namespace name {spec!r}")
    return f"{NETNS_RUN_DIR}/{spec}"


def open_netns(spec: str) -> int:
    """An O_CLOEXEC fd on the network namespace `spec` (name or path), checked to be one.

    The fd is what IFLA_NET_NS_FD takes; the caller closes it. O_NONBLOCK: a FIFO planted
    where a namespace should be must not hang the open.
    """
    path = netns_path(spec)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        check_netns_fd(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_netns_fd(fd: int, path: str) -> None:
    # fcntl is tiny and only needed here; NS_GET_NSTYPE answers ENOTTY on a plain file, e.g.
    # /run/netns/x whose bind mount is gone.
    import fcntl

    try:
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        nstype = -1
    if nstype != CLONE_NEWNET:
        raise OSError(errno.EINVAL, "not a network namespace", path)


_libc: Any = None
_calls: Any = None  # what has setns and unshare: os (Python >= 3.12), _nscalls, or False


def native() -> Any:
    """os on Python >= 3.12; else the C helper the plugin artifact builds (bondctl/native/
    nscalls.c, saving ctypes' ~10 ms under UML on every ADD and DEL); else False: ctypes."""
    global _calls
    if _calls is None:
        if hasattr(os, "setns"):
            _calls = os
        else:
            try:
                from . import _nscalls  # type: ignore[attr-defined]
            except ImportError:
                _calls = False
            else:
                _calls = _nscalls
    return _calls


def preload() -> None:
    """Load what setns and unshare call before fork(): dlopen after fork() is not safe."""
    if not native():
        libc()


def libc() -> Any:
    """libc through ctypes (~2 ms, so never at import time). Load it before fork():
    dlopen after fork() is not safe."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def check(result: int, what: str) -> None:
    """Raise OSError for a failed libc call made through libc()."""
    if result != 0:
        import ctypes

        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace `fd` refers to."""
    calls = native()
    if calls:
        calls.setns(fd, CLONE_NEWNET)
    else:
        check(libc().setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")


def unshare_mounts() -> None:
    """A private mount namespace for the calling process (sysfs shows the netns of whoever
    mounted it, so seeing another namespace's /sys takes a mount of one's own)."""
    calls = native()
    if calls:
        calls.unshare(CLONE_NEWNS)
    else:
        check(libc().unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")


class enter_netns:  # lower case: used like a function, `with enter_netns(spec):`
    """Move the calling thread into a network namespace for the `with` block, then back.

    Only this thread moves (setns is per thread), and sockets created inside stay in the
    namespace after the block ends.
    """

    def __init__(self, spec: str) -> None:
        self._spec = spec
        self._home = -1

    def __enter__(self) -> None:
        target = open_netns(self._spec)
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(target)
            except BaseException:
                os.close(home)
                raise
        finally:
            os.close(target)
        self._home = home

    def __exit__(self, *exc_info: object) -> None:
        try:
            setns(self._home)
        finally:
            os.close(self._home)
            self._home = -1
