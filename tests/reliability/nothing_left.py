"""The one "nothing left" check, used after every failed, killed, raced or finished attachment
(and by the CNI lifecycle tests through Env.assert_nothing_left).

"Nothing" means: no bond in any pod; every link back where it was with its original name, MTU,
MAC and admin state and no master; no host-local lease; no state record or half-written temp
file in the state dir; no lock in the state dir still held. Each namespace is read with one
`ip -j -d link show`, so checking 32 pods stays cheap inside User-Mode Linux.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.kernel.test_cni_support import Env


class LinkView:
    """All links of a namespace read once; quacks like the harness Netns for link_facts."""

    def __init__(self, ns: Any) -> None:
        self.name = ns.name
        self.by_name = {link["ifname"]: link for link in ns.links()}

    def link(self, name: str) -> dict[str, Any] | None:
        return self.by_name.get(name)

    def bonds(self) -> list[str]:
        return sorted(name for name, link in self.by_name.items()
                      if link.get("linkinfo", {}).get("info_kind") == "bond")


def held_locks(state_dir: Path) -> list[str]:
    """Lock files someone still holds: a non-blocking exclusive flock on them fails."""
    if not state_dir.is_dir():
        return []
    held = []
    for path in sorted(state_dir.glob("*.lock")):
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(path.name)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return held


def stray_files(state_dir: Path) -> list[str]:
    """Anything in the state dir but lock files (which stay by design: see StateDir.lock)."""
    if not state_dir.is_dir():
        return []
    return sorted(p.name for p in state_dir.iterdir() if not p.name.endswith(".lock"))


def assert_nothing_left(world: Env, before: dict[str, Any], *, pods: Iterable[Any] | None = None,
                        in_pod: bool = False, bond: str = "bond0") -> None:
    """`before` is world.snapshot(ns, links) taken before ADD (of the host, or of the pod when
    the links live in the pod: in_pod). `pods` defaults to the world's one pod."""
    views = [LinkView(pod) for pod in ([world.pod] if pods is None else pods)]
    for view in views:
        assert view.link(bond) is None, f"{bond} is still in {view.name}"
        assert view.bonds() == [], f"bonds left in {view.name}: {view.bonds()}"
        if not in_pod:
            stayed = sorted(name for name in before if view.link(name) is not None)
            assert stayed == [], f"links stayed in {view.name}: {stayed}"
    home = views[0] if in_pod else LinkView(world.host)
    now = world.snapshot(home, list(before))
    changed = {name: (facts, now[name]) for name, facts in before.items() if now[name] != facts}
    assert changed == {}, f"links not restored in {home.name} (before, now): {changed}"
    assert world.leases() == [], f"IPAM leases left: {world.leases()}"
    assert stray_files(world.state_dir) == [], f"left in stateDir: {stray_files(world.state_dir)}"
    assert held_locks(world.state_dir) == [], f"locks still held: {held_locks(world.state_dir)}"
