"""Throw-away network namespaces that are deleted however the program ends (return, error,
Ctrl-C, SIGTERM, SIGHUP), and a tiny ICMP ping that runs inside one of them."""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterable
from types import FrameType, TracebackType

from bondctl.errors import KernelError
from bondctl.names import check_netns_name


def ip(*args: str, netns: str | None = None, stdin: str | None = None) -> str:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30,
                              check=False)
    except FileNotFoundError:
        raise KernelError("the ip command (iproute2) is not installed") from None
    if proc.returncode != 0:
        raise KernelError(f"{' '.join(argv[:6])}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def batch(netns: str, lines: Iterable[str]) -> None:
    ip("-batch", "-", netns=netns, stdin="".join(f"{line}\n" for line in lines))


def native_bonding() -> tuple[bool, str]:
    """Try to make a bond in a throw-away namespace: the only sure test."""
    with Sandbox("bondctl-probe") as box:
        ns = box.netns()
        try:
            ip("link", "add", "probe0", "type", "bond", netns=ns)
        except KernelError as exc:
            said = exc.msg.split(": ", 1)[-1].removeprefix("Error: ").rstrip(".")
            return False, f"`ip link add type bond` says: {said}"
    return True, "a test bond was made and removed"


class Sandbox:
    """Named namespaces, all deleted on exit; SIGTERM and SIGHUP end the block like Ctrl-C."""

    def __init__(self, prefix: str = "bondctl-demo") -> None:
        self.prefix = prefix
        self.tag = secrets.token_hex(2)
        self.names: list[str] = []
        self._saved: dict[int, object] = {}

    def netns(self, role: str = "") -> str:
        name = check_netns_name(f"{self.prefix}-{self.tag}" + (f"-{role}" if role else ""))
        ip("netns", "add", name)
        self.names.append(name)
        ip("link", "set", "lo", "up", netns=name)
        return name

    def __enter__(self) -> Sandbox:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError):  # not the main thread: leave them be
                self._saved[signum] = signal.signal(signum, _interrupt)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # A second Ctrl-C must not cut the clean-up short.
        with contextlib.suppress(ValueError):
            self._saved.setdefault(signal.SIGINT, signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            self.cleanup()
        finally:
            for signum, handler in self._saved.items():
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(signum, handler)  # type: ignore[arg-type]
            self._saved.clear()

    def cleanup(self) -> list[str]:
        """Delete every namespace made here (which deletes the links in them)."""
        left = []
        for name in reversed(self.names):
            try:
                ip("netns", "del", name)
            except KernelError:
                if os.path.exists(f"/run/netns/{name}"):
                    left.append(name)
        self.names = left
        return left


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# -- ping ---------------------------------------------------------------------------------------
_ECHO_REQUEST, _ECHO_REPLY = 8, 0


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


class Pinger:
    """ICMP echo from inside a namespace (a raw socket made there keeps working after)."""

    def __init__(self, netns: str, target: str) -> None:
        from bondctl.netlink import enter_netns

        with enter_netns(netns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.target = target
        self.ident = (os.getpid() ^ secrets.randbits(16)) & 0xFFFF
        self.seq = 0

    def ping(self, timeout: float = 1.0) -> float | None:
        """Round-trip time in ms, or None when no reply came in time."""
        self.seq = (self.seq + 1) & 0xFFFF
        payload = b"bondctl demo"
        header = struct.pack("!BBHHH", _ECHO_REQUEST, 0, 0, self.ident, self.seq)
        checksum = _checksum(header + payload)
        packet = struct.pack("!BBHHH", _ECHO_REQUEST, 0, checksum, self.ident, self.seq)
        start = time.monotonic()
        self.sock.sendto(packet + payload, (self.target, 0))
        while (left := start + timeout - time.monotonic()) > 0:
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                break
            data = self.sock.recv(2048)
            offset = (data[0] & 0x0F) * 4
            kind, _, _, ident, seq = struct.unpack_from("!BBHHH", data, offset)
            if kind == _ECHO_REPLY and ident == self.ident and seq == self.seq:
                return (time.monotonic() - start) * 1000
        return None

    def close(self) -> None:
        self.sock.close()
