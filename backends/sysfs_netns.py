"""Run a function where /sys shows another network namespace, the way `ip netns exec` does.

sysfs shows the network namespace of whoever mounted it, so setns() alone still shows the
caller's links. A forked child unshares its mount namespace, stops mount events from flowing
back to the host (MS_SLAVE, recursively), enters the target network namespace, detaches the old
/sys and mounts a fresh sysfs there. The function's JSON-able result comes back through a pipe.

One child per call: everything a call reads or writes happens in that child.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from bondctl.errors import KernelError
from bondctl.netlink import ns
from bondctl.netns import Netns

_MS_RDONLY = 0x1
_MS_REC = 0x4000
_MS_SLAVE = 0x80000
_MNT_DETACH = 0x2
_ST_RDONLY = 0x1


def enter(path: str) -> None:
    """In a freshly forked child: make /sys show the network namespace at `path`."""
    target = ns.open_netns(path)  # checks that the file is a network namespace
    try:
        ns.unshare_mounts()
        # Mount changes below stay in this child: none propagate back to the host's /.
        ns.check(ns.libc().mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None),
                 "make / rslave")
        ns.setns(target)
    finally:
        os.close(target)
    flags = 0
    if ns.libc().umount2(b"/sys", _MNT_DETACH) != 0 and os.statvfs("/sys").f_flag & _ST_RDONLY:
        flags = _MS_RDONLY  # as ip netns exec: a read-only /sys cannot be shadowed read-write
    ns.check(ns.libc().mount(b"sysfs", b"/sys", b"sysfs", flags, None), "mount sysfs on /sys")


def run(netns: Netns, function: Callable[[], Any]) -> Any:
    """`function()` with /sys showing `netns`; in-process for the caller's own namespace.

    An exception in the child comes back as KernelError; `function` reports expected
    failures (a refused write) in its result instead.
    """
    if netns.path is None:
        try:
            return function()
        except OSError as exc:
            raise KernelError(f"sysfs backend: {exc}") from None
    import json

    ns.libc()  # loaded before the fork: dlopen after fork() is not safe
    ns.preload()  # and what setns and unshare go through
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's cleanup
        code = 0
        try:
            os.close(reader)
            try:
                enter(netns.path)
                payload: dict[str, Any] = {"result": function()}
            except BaseException as exc:  # everything goes back to the parent
                payload = {"crash": str(exc) or type(exc).__name__}
            data = json.dumps(payload).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(writer, view):]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(writer)
    chunks = []
    try:
        while chunk := os.read(reader, 65536):
            chunks.append(chunk)
    finally:
        os.close(reader)
        _, status = os.waitpid(pid, 0)
    if not chunks:
        raise KernelError(
            f"sysfs backend: the helper process for {netns.label} died "
            f"(wait status {status})"
        )
    answer = json.loads(b"".join(chunks))
    if "crash" in answer:
        raise KernelError(f"sysfs backend in {netns.label}: {answer['crash']}")
    return answer["result"]
