"""Throw-away named network namespaces and links in them.

Every helper runs ip(8) with an argv list, and batches work into one process where it can:
inside User-Mode Linux each process spawn costs ~90 ms.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

NETNS_DIR = Path("/run/netns")


class IpError(RuntimeError):
    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv)} exited {returncode}: {stderr.strip()}")
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


def run_ip(*args: str, stdin: str | None = None) -> str:
    argv = ["ip", *args]
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise IpError(argv, proc.returncode, proc.stderr or proc.stdout)
    return proc.stdout


class Netns:
    """A named network namespace: `ip -n NAME ...` from the test's point of view."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = NETNS_DIR / name

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    def ip(self, *args: str) -> str:
        return run_ip("-n", self.name, *args)

    def ip_json(self, *args: str) -> Any:
        out = run_ip("-n", self.name, "-j", "-d", *args)
        return json.loads(out) if out.strip() else []

    def batch(self, commands: Iterable[str]) -> str:
        """Run ip commands ("link add ...", one per item) in this namespace with one process."""
        return run_ip("-n", self.name, "-batch", "-", stdin="".join(f"{c}\n" for c in commands))

    def link(self, name: str) -> dict[str, Any] | None:
        try:
            links = self.ip_json("link", "show", "dev", name)
        except IpError as err:
            if "does not exist" in err.stderr:
                return None
            raise
        return links[0] if links else None

    def links(self) -> list[dict[str, Any]]:
        return list(self.ip_json("link", "show"))

    def run(
        self, *argv: str, check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a program inside the namespace. `ip netns exec` also remounts /sys, so sysfs
        shows this namespace's devices (setns() alone would not)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=check, **kwargs)


class NetnsPool:
    """Creates namespaces for one test and deletes them all, with one process, at teardown.
    Deleting a namespace destroys every virtual link in it (and their veth peers elsewhere)."""

    def __init__(self, prefix: str = "bt") -> None:
        self.prefix = prefix
        self.created: list[Netns] = []

    def new(self, prefix: str | None = None, *, lo_up: bool = True) -> Netns:
        ns = Netns(f"{prefix or self.prefix}-{secrets.token_hex(4)}")
        run_ip("netns", "add", ns.name)
        self.created.append(ns)
        if lo_up:
            ns.ip("link", "set", "lo", "up")
        return ns

    def close(self) -> None:
        if not self.created:
            return
        names, self.created = [ns.name for ns in self.created], []
        with contextlib.suppress(IpError):
            run_ip("-force", "-batch", "-", stdin="".join(f"netns del {n}\n" for n in names))
        for name in names:
            if (NETNS_DIR / name).exists():
                # -force carries the batch past a failed line; give each leftover a second try.
                subprocess.run(["ip", "netns", "del", name], capture_output=True)


class LinkSet(list[str]):
    """Link names inside the test's namespace; `.peers[i]` is the veth peer of `self[i]` in
    `.peer_ns` (empty for dummies)."""

    def __init__(
        self, names: Iterable[str], peers: Iterable[str] = (), peer_ns: Netns | None = None
    ):
        super().__init__(names)
        self.peers = list(peers)
        self.peer_ns = peer_ns


class LinkFactory:
    """`make_links(ns, n, kind="veth", prefix="eth")`: n new links in ns, DOWN (a bond slave
    must be down to be enslaved). veth peers go UP into one peer namespace per test, so the
    links get carrier as soon as the test brings them up."""

    def __init__(self, peer_ns: PeerNetns) -> None:
        self._peer_ns = peer_ns
        self._next_index: dict[tuple[str, str], int] = {}
        self._next_peer = 0

    def __call__(self, ns: Netns, n: int, kind: str = "veth", prefix: str = "eth") -> LinkSet:
        start = self._next_index.get((ns.name, prefix), 0)
        self._next_index[(ns.name, prefix)] = start + n
        names = [f"{prefix}{i}" for i in range(start, start + n)]
        if kind == "dummy":
            ns.batch(f"link add {name} type dummy" for name in names)
            return LinkSet(names)
        if kind != "veth":
            raise ValueError(f"unsupported link kind {kind!r}")
        peer_ns, setup = self._peer_ns.get_for_batch()
        peers = [f"p{self._next_peer + i}" for i in range(n)]
        self._next_peer += n
        # Created from the peer side: `peer ... up` for the far end makes the kernel fail with
        # ENOTCONN, while `link add NAME up` on the near end works.
        peer_ns.batch(
            [
                *setup,
                *(
                    f"link add {peer} up type veth peer name {name} netns {ns.name}"
                    for peer, name in zip(peers, names, strict=True)
                ),
            ]
        )
        return LinkSet(names, peers, peer_ns)


class PeerNetns:
    """The per-test namespace holding veth peers; created on first use."""

    def __init__(self, pool: NetnsPool) -> None:
        self._pool = pool
        self._ns: Netns | None = None

    def get(self) -> Netns:
        ns, setup = self.get_for_batch()
        if setup:
            ns.batch(setup)
        return ns

    def get_for_batch(self) -> tuple[Netns, list[str]]:
        """The namespace, plus the commands still owed to it, for the caller to fold into its
        own batch: one ip process less per test."""
        if self._ns is None:
            self._ns = self._pool.new(prefix="bp", lo_up=False)
            return self._ns, ["link set lo up"]
        return self._ns, []
