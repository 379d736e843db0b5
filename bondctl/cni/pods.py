"""The pod's network namespace, held by an open fd and known by its identity.

A path given by the runtime or kept in a state record is opened once; from then on every
change goes through /proc/<our pid>/fd/<fd>, so what was checked is what is used even if the
path is swapped meanwhile. A namespace is known by (st_dev, st_ino) of its nsfs inode: that
is how a reused /proc/PID path, or another pod's namespace given for this attachment, is told
apart from the one ADD used. The host's own namespace (ours, and PID 1's) is never a pod.
"""

from __future__ import annotations

import os

from ..errors import BondctlError
from ..netns import Netns
from .errors import INVALID_ENV, UNKNOWN_CONTAINER, CniError

_HOST_PATHS = ("/proc/self/ns/net", "/proc/1/ns/net")
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK

# CNI_NETNS as the caller opened it, set by the node agent's request child
# (bondctl/cni/agent.py): path -> the fd the caller passed, or -errno of the caller's failed
# open. The agent never resolves a caller's path in its own mount and PID namespaces.
given: dict[str, int] = {}


def _open(path: str) -> int:
    passed = given.get(path)
    if passed is None:
        return os.open(path, _OPEN_FLAGS)
    if passed < 0:
        raise OSError(-passed, os.strerror(-passed), path)
    return os.dup(passed)


def ident(path: str) -> list[int] | None:
    """(st_dev, st_ino) of the namespace at `path`; None if there is none."""
    passed = given.get(path)
    try:  # a failed open passed as -errno: fstat's EBADF, so None as for a missing path
        st = os.stat(path) if passed is None else os.fstat(passed)
    except (OSError, ValueError):
        return None
    return [st.st_dev, st.st_ino]


def host_idents() -> list[list[int]]:
    return [found for found in map(ident, _HOST_PATHS) if found is not None]


def pin(path: str) -> tuple[Netns, list[int]]:
    """Open the network namespace at `path` for good; CniError 3 if it does not exist, 4 if
    it is not a network namespace or is the host's own."""
    from ..netns import check_is_netns

    try:
        fd = _open(path)
    except FileNotFoundError:
        raise CniError(UNKNOWN_CONTAINER, f"CNI_NETNS {path} does not exist") from None
    except OSError as exc:
        raise CniError(INVALID_ENV, f"CNI_NETNS {path}: {exc.strerror}") from None
    pinned = f"/proc/{os.getpid()}/fd/{fd}"
    st = os.fstat(fd)
    found = [st.st_dev, st.st_ino]
    try:
        check_is_netns(pinned)
    except BondctlError as exc:
        os.close(fd)
        raise CniError(INVALID_ENV, f"CNI_NETNS: {exc.msg.replace(pinned, path)}") from None
    if found in host_idents():
        os.close(fd)
        raise CniError(INVALID_ENV, f"CNI_NETNS {path} is the host's own network namespace; "
                       "the plugin makes bonds only in pods")
    return Netns(pinned, None), found


def pin_recorded(path: str, recorded: list[int]) -> Netns | None:
    """The namespace a record names, if it still exists and is still that namespace."""
    try:
        netns, found = pin(path)
    except CniError:
        return None
    if found != recorded:
        unpin(netns)
        return None  # the path now leads elsewhere (a reused /proc/PID): not our pod
    return netns


def unpin(netns: Netns | None) -> None:
    if netns is not None and netns.path and netns.path.startswith(f"/proc/{os.getpid()}/fd/"):
        os.close(int(netns.path.rsplit("/", 1)[1]))
