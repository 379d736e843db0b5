"""The `bond` ADD path up to its first kernel call, as a process to time.

Run as `python -I -S bench/addpath.py` (how the artifact starts the plugin: no site) or with
site (how .venv/bin/bond starts), with the CNI environment and an ADD config on stdin. An audit
hook ends the process (exit 0) at the first netlink socket or the first process spawn (the
first `ip` for iproute2, the first netlink request, or the setns right before it, otherwise),
so the time measured is the interpreter, the imports, parsing and validation: everything ADD
costs before the kernel is asked anything. Exit 3: ADD finished without reaching the kernel
(it failed validation; its error is on stdout).

Stdlib only, and nothing imported here that the plugin would not import itself.
"""

import os
import sys

AF_NETLINK = 16
SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.exec", "os.fork",
                          "os.system", "os.forkpty"})
# Entering the pod's namespace (setns through libc on Python 3.11) comes right before its
# netlink socket: stopping at the dlopen that precedes setns keeps the run root-free and
# leaves out only that one syscall.
KERNEL_EVENTS = SPAWN_EVENTS | {"ctypes.dlopen"}


def _first_kernel_call(event: str, args: tuple[object, ...]) -> None:
    if (event == "socket.__new__" and args[1] == AF_NETLINK) or event in KERNEL_EVENTS:
        os._exit(0)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] == here:
        del sys.path[0]  # bench/ is not on the plugin's path
    if sys.flags.no_site:
        # No site, so no editable-install finder: the repository is the package root, as the
        # artifact's own sys.path is its bundled package root.
        sys.path.insert(0, os.path.dirname(here))
    sys.addaudithook(_first_kernel_call)
    from bondctl.cni.__main__ import main as plugin_main

    plugin_main()
    sys.stdout.flush()
    os._exit(3)


if __name__ == "__main__":
    main()
