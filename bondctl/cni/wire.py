"""The frames between the native `bond` shim (packaging/shim.c) and the node agent.

One request per connection. The shim sends one frame, with its file descriptors attached
(SCM_RIGHTS) to the frame's first byte:

    request   magic "BNDA" | u16 version | u16 flags | i32 netns_errno | u32 env_len | env
              env: the caller's environment, "KEY=VALUE" items each ended by NUL
              fds: stdin, stdout, stderr, the caller's network namespace, and the pod's
                   (CNI_NETNS opened by the caller) when flags has NETNS_FD; netns_errno is
                   the errno of that open when it failed (0: CNI_NETNS unset or opened)

The agent answers with reply frames, kind | pad | i32 value | u32 msg_len | msg:

    "A" accepted: the request runs now; the shim never sends it anywhere else
    "R" refused (value: the agent's protocol version; msg: why): nothing ran, and the shim
        takes the direct path (an upgraded shim meeting an old agent lands here)
    "X" finished (value: the request child's wait status): after "A", the shim exits with
        the same status, or dies of the same signal

All integers are big-endian. The shim's side mirrors these constants (packaging/shim.c).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct

MAGIC = b"BNDA"
VERSION = 1
NETNS_FD = 0x1  # flags: the pod namespace's fd is the fifth one attached
REQUEST = struct.Struct(">4sHHiI")
REPLY = struct.Struct(">cxxxiI")
MAX_ENV = 1 << 20  # bytes: far above any runtime's environment, far below harm
MAX_FDS = 5
ACCEPTED, REFUSED, FINISHED = b"A", b"R", b"X"


class BadFrame(Exception):
    """A request the agent cannot take: the reason goes back in a refusal."""


class Request:
    __slots__ = ("env", "fds", "netns_errno", "version")

    def __init__(self, version: int, env: dict[str, str], fds: list[int],
                 netns_errno: int) -> None:
        self.version = version
        self.env = env
        self.fds = fds  # stdin, stdout, stderr, caller netns[, pod netns]
        self.netns_errno = netns_errno

    @property
    def pod_fd(self) -> int | None:
        return self.fds[4] if len(self.fds) > 4 else None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 16))
        if not chunk:
            raise BadFrame(f"truncated frame: {got} of {n} bytes, then the client closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def read_request(sock: socket.socket) -> Request:
    """The request on `sock` (blocking, under the socket's timeout); BadFrame when it is not
    one this agent takes, every received fd closed then. socket.timeout propagates."""
    fds: list[int] = []
    try:
        head, fds, flags, _ = socket.recv_fds(sock, REQUEST.size, MAX_FDS)
        if flags & socket.MSG_CTRUNC:
            raise BadFrame("too many file descriptors attached")
        if not head:
            raise BadFrame("the client closed before sending a request")
        if len(head) < REQUEST.size:
            head += _recv_exact(sock, REQUEST.size - len(head))
        magic, version, fl, netns_errno, env_len = REQUEST.unpack(head)
        if magic != MAGIC:
            raise BadFrame(f"not a bond request (magic {magic!r})")
        if version != VERSION:
            raise BadFrame(f"protocol version {version}; this agent speaks {VERSION}")
        if env_len > MAX_ENV:
            raise BadFrame(f"environment of {env_len} bytes is over the {MAX_ENV} limit")
        want = 5 if fl & NETNS_FD else 4
        if len(fds) != want:
            raise BadFrame(f"{len(fds)} file descriptors attached, {want} expected")
        if netns_errno < 0:
            raise BadFrame(f"netns_errno {netns_errno} is negative")
        env = parse_env(_recv_exact(sock, env_len))
        return Request(version, env, fds, netns_errno)
    except BaseException:
        _close_all(fds)
        raise


def parse_env(raw: bytes) -> dict[str, str]:
    env: dict[str, str] = {}
    if raw and not raw.endswith(b"\0"):
        raise BadFrame("environment block does not end with NUL")
    for item in raw.split(b"\0")[:-1]:
        key, eq, value = item.partition(b"=")
        if not eq or not key:
            raise BadFrame("environment item without KEY=")
        try:
            env[key.decode()] = value.decode("utf-8", "surrogateescape")
        except UnicodeDecodeError:
            raise BadFrame("environment variable name is not UTF-8") from None
    return env


def encode_request(env: dict[str, str], fds_present_netns: bool, netns_errno: int = 0,
                   version: int = VERSION) -> bytes:
    """A request frame (the fds are attached by the sender): what the shim sends, for tests
    and Python clients."""
    block = b"".join(f"{k}={v}".encode("utf-8", "surrogateescape") + b"\0"
                     for k, v in env.items())
    return REQUEST.pack(MAGIC, version, NETNS_FD if fds_present_netns else 0, netns_errno,
                        len(block)) + block


def reply(kind: bytes, value: int = 0, msg: str = "") -> bytes:
    data = msg.encode("utf-8", "replace")[:4096]
    return REPLY.pack(kind, value, len(data)) + data


def read_reply(sock: socket.socket) -> tuple[bytes, int, str] | None:
    """One reply frame, or None when the agent closed the connection first."""
    head = b""
    while len(head) < REPLY.size:
        chunk = sock.recv(REPLY.size - len(head))
        if not chunk:
            return None
        head += chunk
    kind, value, n = REPLY.unpack(head)
    msg = _recv_exact(sock, n).decode("utf-8", "replace") if n else ""
    return kind, value, msg
