"""`bondctl agent`: the node agent behind the native `bond` shim (packaging/shim.c).

A warmed, single-threaded zygote: it imports the CNI path and the built-in backends once,
listens on a unix socket (root peers only, by SO_PEERCRED) and forks one child per
connection. The child reads the request (wire.py), says "accepted", and then is the direct
path's process in every way that matters: the caller's stdin, stdout and stderr as fds 0-2,
the caller's network namespace (setns on the fd the caller passed), the caller's environment,
and CNI_NETNS pinned through the fd the caller opened (pods.given), never by path. It runs
bondctl.cni.__main__.main(), the very code the direct path runs, and exits with its status.
The zygote reports that status (or the signal that killed the child) to the shim, which exits
the same way. A child past its deadline is SIGKILLed, as a runtime would kill the plugin.

The zygote never starts a thread (a fork keeps only the forking thread): long-running work
(issue 13's monitor, say) goes in a Worker, a supervised process of its own.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import selectors
import signal
import socket
import stat
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO

from . import wire
from .log import LEVELS, Log

DEFAULT_SOCKET = "/run/bondctl/agent.sock"
SOCKET_ENV = "BONDCTL_AGENT_SOCKET"  # read by the shim too: where it looks for the agent
DEFAULT_TIMEOUT = 300.0  # seconds a request may run: above IPAM's own 120 s limit
READ_TIMEOUT = 5.0  # seconds a client has to send its whole request
WORKER_RESTART_DELAY = 1.0
# Request children forked ahead. Three: an ADD and a DEL right after it (a runtime's retry, a
# pod that fails to start) each find one ready and leave one, so no fork (tens of ms in UML,
# where nothing else runs meanwhile) and no new spare copying pages competes with the DEL.
# Each ready spare holds ~10 MB of copied pages.
SPARES = 3
SPARE_NICE = 10  # a spare getting ready gets about a tenth of a CPU that requests keep busy
QUIET = 0.2  # seconds without requests before used spares are replaced (_refill_wait)
# The caller's BONDCTL_* variables are dropped, save these: the ADD steps' fault hooks of
# plugin.py, which only fail or kill the caller's own request (a root caller can equally run
# the direct path with them). Where state and logs may go (BONDCTL_STATE_ROOT,
# BONDCTL_LOG_DIR) and which backends may load are the node admin's, from the agent's own
# environment: never a request's.
DEFAULT_STATE_DIR = "/var/lib/cni/bond"  # the plugin's default stateDir (cni/config.py)
REQUEST_ALLOWED = frozenset({"BONDCTL_FAULT", "BONDCTL_FAULT_KILL"})
AGENT_ONLY = frozenset({SOCKET_ENV})
_SO_PEERCRED = struct.Struct("3i")
_HANDOVER = struct.Struct("d")  # with the connection: when the zygote accepted it (monotonic)


class Worker:
    """A long-running process the agent starts, restarts when it dies, and stops on SIGTERM
    (SIGTERM, then SIGKILL after `grace` seconds). `target` runs in a forked child; it may
    start threads there."""

    def __init__(self, name: str, target: Callable[[], object], grace: float = 5.0) -> None:
        self.name = name
        self.target = target
        self.grace = grace
        self.pid = 0
        self.died_at = 0.0


class Spare:
    __slots__ = ("ctrl", "info", "pid")

    def __init__(self, pid: int, ctrl: socket.socket, info: int) -> None:
        self.pid = pid
        self.ctrl = ctrl  # the zygote hands the accepted connection over this
        self.info = info


class Running:
    __slots__ = ("conn", "deadline", "info", "killed", "pid", "started")

    def __init__(self, pid: int, conn: socket.socket, info: int, deadline: float) -> None:
        self.pid = pid
        self.conn = conn
        self.info = info  # read end of the child's one-line "what I ran" pipe
        self.started = time.monotonic()
        self.deadline = deadline
        self.killed = False


def warm() -> None:
    """Everything a request can need, imported once in the zygote: a child starts with it."""
    import json  # noqa: F401
    import subprocess  # noqa: F401
    import traceback  # noqa: F401

    from .. import links, model, netlink, ops, registry, steps  # noqa: F401
    from . import __main__, config, env, errors, hostlinks, ipam, plugin, pods, result, state  # noqa: F401

    for name in registry.BUILTIN:
        registry.builtin(name)
    netlink.ns.preload()
    own = os.stat("/proc/self/ns/net")
    _own_netns[:] = [own.st_dev, own.st_ino]
    for _ in range(10):  # CPython 3.11 specialises code after a few runs: before any fork
        rehearse()
    die_with(os.getppid(), 0)  # opens libc; signal 0 clears the (unset) death signal


_libc: list[object] = []  # ctypes' handle on libc, opened once in the zygote
_own_netns: list[int] = []  # (st_dev, st_ino) of the zygote's network namespace, once warm


_REHEARSAL = (b'{"cniVersion": "1.0.0", "name": "rehearsal", "type": "bond", "mode": '
              b'"active-backup", "miimon": "100", "links": [{"name": "eth0"}, {"name": "eth1"}],'
              b' "ipam": {"type": "static", "addresses": [{"address": "192.0.2.2/24"}]}}')


def get_ready(ctrl: socket.socket) -> None:
    """What a spare does before its request, at a low priority (the zygote raises it back when
    it hands a request over, and it does so itself once ready): a forked child copies each
    page it first writes to, and CPython writes the reference count of every object it uses,
    so the copies are made here, off the request's path (in User-Mode Linux, where a page
    fault is dear, they were most of a request's own cost)."""
    import gc

    gc.disable()  # a short-lived process: a collection would only walk (and copy) pages
    low = os.geteuid() == 0  # only root may raise its priority back
    if low:  # not SCHED_IDLE: on a busy node a spare must still get ready between requests
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, SPARE_NICE)
    rehearse()
    prefault(ctrl)
    if low:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, 0)


def rehearse() -> None:
    """Parse and validate a typical ADD, write and read back its state record and render its
    result, touching nothing outside this process: in the zygote, so the code is specialised
    before any fork, and in each spare, so the pages it writes are copied before a request."""
    with contextlib.suppress(Exception):
        rehearsal()


def rehearsal() -> None:
    from . import jsondoc
    from .config import bond_spec, parse_config
    from .env import read_env
    from .plugin import new_record
    from .result import render
    from .state import LinkRecord, StateRecord, check_record

    conf = parse_config(_REHEARSAL)
    spec = bond_spec(conf, "bond0")
    env = read_env({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "rehearsal", "CNI_NETNS": "/x",
                    "CNI_IFNAME": "bond0", "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": "A=1"})
    links = [LinkRecord(name=name, host=False, index=i, pod_index=i, kind="veth", mtu=1500,
                        mac="02:00:00:00:00:01", up=True)
             for i, name in enumerate(["eth0", "eth1"], 2)]
    record = new_record(env, conf, spec, [1, 1], links)
    text = jsondoc.dumps(record.to_json(), sort_keys=True).encode()
    StateRecord.from_json(check_record(jsondoc.decode(text)))
    render({"cniVersion": "1.0.0", "interfaces": [], "ips": [], "routes": [],
            "dns": {}}, "1.0.0")
    for stream in open_stdio():  # fds 0-2 stay open (closefd=False); their buffers are reused
        stream.close()


def open_stdio() -> tuple[IO[str], IO[str], IO[str]]:
    """Text streams on fds 0, 1 and 2, as the plugin's interpreter has them."""
    return (open(0, encoding="utf-8", errors="surrogateescape", closefd=False),
            open(1, "w", encoding="utf-8", closefd=False),
            open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False))


_heap: list[object] = []  # the zygote's objects, listed once before the first fork


def prefault(ctrl: socket.socket, chunk: int = 256) -> None:
    """Write to the reference count of every object the zygote holds and of everything they
    refer to, a chunk at a time, so the pages a request would copy are copied now. Stops as
    soon as a request waits on `ctrl`: in a burst, serving at once matters more."""
    import gc
    import select

    for start in range(0, len(_heap), chunk):
        if select.select([ctrl], [], [], 0)[0]:
            return
        gc.get_referents(*_heap[start:start + chunk])


def die_with(parent: int, sig: int) -> None:
    """Have the kernel send `sig` to this (forked) process when `parent` dies."""
    if not _libc:
        import ctypes

        _libc.append(ctypes.CDLL(None, use_errno=True))
    _libc[0].prctl(1, int(sig), 0, 0, 0)  # type: ignore[attr-defined]  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), sig)


def child_env(request: dict[str, str], own: dict[str, str]) -> dict[str, str]:
    """The request's environment, less the caller's BONDCTL_* (REQUEST_ALLOWED aside), plus
    the agent's own BONDCTL_* settings."""
    env = {k: v for k, v in request.items()
           if not k.startswith("BONDCTL_") or k in REQUEST_ALLOWED}
    env.update({k: v for k, v in own.items()
                if k.startswith("BONDCTL_") and k not in REQUEST_ALLOWED | AGENT_ONLY})
    return env


def describe(status: int, killed: bool) -> str:
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return "ok" if code == 0 else f"failed (exit {code})"
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    name = signal.Signals(sig).name if sig else "?"
    return "killed at its deadline" if killed else f"killed by {name}"


class Agent:
    def __init__(self, path: str = DEFAULT_SOCKET, *, timeout: float = DEFAULT_TIMEOUT,
                 log: Log | None = None, workers: Sequence[Worker] = ()) -> None:
        self.path = path
        self.timeout = timeout
        self.log = log or agent_log()
        self.workers = list(workers)
        self.running: dict[int, Running] = {}
        self.spares: list[Spare] = []  # oldest first: the one most likely ready
        self.spares_gone: set[int] = set()
        self.stopping = False
        self.last_request = 0.0  # monotonic time of the last accept or request end
        self.listener: socket.socket | None = None
        self._wake_r = self._wake_w = -1

    # -- the socket ------------------------------------------------------------------------
    def bind(self) -> None:
        """The socket at self.path: its directory 0700 and root's, the socket 0600. A stale
        socket is replaced; a live agent's is not."""
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise SystemExit(f"bondctl agent: {directory} is not a directory of ours")
        os.chmod(directory, 0o700)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise SystemExit(f"bondctl agent: {self.path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
                raise SystemExit(f"bondctl agent: another agent listens on {self.path}")
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(self.path)  # stale: its agent is gone
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(128)
        sock.setblocking(False)
        self.listener = sock

    # -- the loop --------------------------------------------------------------------------
    def serve(self) -> int:
        for fd in (0, 1, 2):  # a request's fds must never land on 0-2 (dup2 would lose them)
            try:
                os.fstat(fd)
            except OSError:
                os.open(os.devnull, os.O_RDWR)  # takes the lowest free number: this one
        warm()
        import gc

        gc.collect()
        _heap[:] = gc.get_objects()
        gc.freeze()  # what the zygote holds stays out of the children's collections: fewer
        # copied pages per fork
        if self.listener is None:
            self.bind()
        assert self.listener is not None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd fires
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        self.log.info(f"listening on {self.path} (pid {os.getpid()}, request deadline "
                      f"{self.timeout:.0f} s)")
        for worker in self.workers:
            self._start_worker(worker)
        self._fill_spares()
        while not (self.stopping and not self.running and not self.spares_gone):
            selector.select(self._next_wait())
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 512):
                    pass
            self._reap()
            self._enforce_deadlines()
            if self.stopping and self.listener is not None:
                selector.unregister(self.listener)
                self._close_listener()
                self._drop_spares()
                self.log.info(f"stopping: {len(self.running)} request(s) in flight")
            if self.listener is not None:
                self._accept_all()
            if not self.stopping and (not self.spares or self._refill_wait() == 0.0):
                self._fill_spares()
            self._restart_workers()
        self._stop_workers()
        self.log.info("stopped")
        return 0

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def _refill_wait(self) -> float | None:
        """Seconds until used spares are replaced: once no request has come or run for QUIET
        seconds. A fork copies the zygote's page tables, and in User-Mode Linux (one CPU, a
        kernel that is not preempted) nothing else runs meanwhile: not while requests come."""
        if len(self.spares) >= SPARES or self.running or self.stopping:
            return None
        return max(0.0, self.last_request + QUIET - time.monotonic())

    def _next_wait(self) -> float | None:
        now = time.monotonic()
        refill = self._refill_wait()
        waits = [] if refill is None else [refill]
        waits += [r.deadline - now for r in self.running.values() if not r.killed]
        waits += [w.died_at + WORKER_RESTART_DELAY - now for w in self.workers if not w.pid]
        return max(0.0, min(waits)) if waits else None

    def _close_listener(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # new callers take the direct path from now on

    def _accept_all(self) -> None:
        assert self.listener is not None
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the caller falls back meanwhile
                self.log.error(f"accept: {exc.strerror}")
                return
            self._take(conn)

    def _take(self, conn: socket.socket) -> None:
        pid, uid, _ = _SO_PEERCRED.unpack(conn.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, _SO_PEERCRED.size))
        if uid != 0:
            self.log.warning(f"refused a client of uid {uid} (pid {pid}): root only")
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(wire.reply(wire.REFUSED, wire.VERSION, "permission denied: the "
                                     "agent serves root only"))
            conn.close()
            return
        accepted = self.last_request = time.monotonic()
        spare = self.spares.pop(0) if self.spares else self._fork_spare()
        # A spare still getting ready runs at a low priority: a request's process must not.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, spare.pid, 0)
        # The spare takes the connection: it is this request's process now. If it died, its
        # reaping answers the shim, which then goes direct.
        with contextlib.suppress(OSError):
            socket.send_fds(spare.ctrl, [_HANDOVER.pack(accepted)], [conn.fileno()])
        spare.ctrl.close()
        self.running[spare.pid] = Running(spare.pid, conn, spare.info,
                                          time.monotonic() + self.timeout)
        if not self.stopping and not self.spares:
            self._fill_spares()  # a burst: the next request needs one now

    def _fill_spares(self) -> None:
        while len(self.spares) < SPARES:
            self.spares.append(self._fork_spare())

    def _fork_spare(self) -> Spare:
        """A request child forked ahead of its request: fork and what follows it in the child
        (copied pages, Python's after-fork work) are not on any request's path."""
        info_r, info_w = os.pipe2(os.O_CLOEXEC)
        ctrl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        zygote = os.getpid()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child, which never returns
            os.close(info_r)
            ctrl.close()
            status = 70
            try:
                # An agent SIGKILLed takes its requests along, as a runtime killing the direct
                # path's process would: each shim reports a CNI error and DEL cleans up.
                die_with(zygote, signal.SIGKILL)
                self._become_child()
                get_ready(theirs)
                data, fds, _, _ = socket.recv_fds(theirs, _HANDOVER.size, 1)
                theirs.close()
                if fds:
                    accepted = _HANDOVER.unpack(data)[0] if len(data) == _HANDOVER.size \
                        else time.monotonic()
                    if self.log.level <= LEVELS["debug"]:
                        _marks[:] = [("accept", accepted), ("handover", time.monotonic())]
                        _faults[:] = [resource.getrusage(resource.RUSAGE_SELF).ru_minflt]
                    status = self._child(socket.socket(fileno=fds[0]), info_w)
                else:
                    status = 0
            except BaseException as exc:  # anything here must end the child
                with contextlib.suppress(BaseException):
                    self.log.error(f"request child: {type(exc).__name__}: {exc}")
            finally:
                os._exit(status)
        os.close(info_w)
        theirs.close()
        return Spare(child, ctrl, info_r)

    def _drop_spares(self) -> None:
        """The spares get EOF instead of a connection and exit."""
        for spare in self.spares:
            spare.ctrl.close()
            os.close(spare.info)
            self.spares_gone.add(spare.pid)
        self.spares.clear()

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            request = self.running.pop(pid, None)
            if request is not None:
                self.last_request = time.monotonic()
                self._finish(request, status, usage)
                continue
            dead = next((spare for spare in self.spares if spare.pid == pid), None)
            if dead is not None:  # died waiting: replace it
                self.log.error(f"spare request child {describe(status, False)}")
                self.spares.remove(dead)
                dead.ctrl.close()
                os.close(dead.info)
                if not self.stopping:
                    self._fill_spares()
                continue
            if pid in self.spares_gone:
                self.spares_gone.discard(pid)
                continue
            for worker in self.workers:
                if worker.pid == pid:
                    worker.pid, worker.died_at = 0, time.monotonic()
                    if not self.stopping:
                        self.log.error(f"worker {worker.name} (pid {pid}) "
                                       f"{describe(status, False)}; restarting it")

    def _finish(self, request: Running, status: int, usage: object = None) -> None:
        # The child has exited: all it wrote is in the pipe. Non-blocking, as a grandchild
        # forked without exec could still hold the write end.
        os.set_blocking(request.info, False)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := os.read(request.info, 4096):
                chunks.append(chunk)
        os.close(request.info)
        what, _, detail = b"".join(chunks).decode("utf-8", "replace").partition("\n")
        took = time.monotonic() - request.started
        result = describe(status, request.killed)
        line = f"{what.strip() or 'no request'}: {result} in {took:.3f} s"
        if request.killed or os.WIFSIGNALED(status):
            self.log.error(line)
        else:
            self.log.info(line)
        if detail.strip() and usage is not None:
            self.log.debug(f"{what.strip()}: {detail.strip()}; {usage.ru_minflt} "  # type: ignore[attr-defined]
                           "page faults in all")
        # A child that answered the shim itself (run_request) is past caring: this second
        # answer then fails or goes unread. One that died first gets it as its only answer.
        with contextlib.suppress(OSError):
            request.conn.setblocking(False)  # a client that stopped reading cannot stall us
            request.conn.send(wire.reply(wire.FINISHED, status))
        request.conn.close()

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for request in self.running.values():
            if not request.killed and now >= request.deadline:
                request.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(request.pid, signal.SIGKILL)

    # -- workers ---------------------------------------------------------------------------
    def _start_worker(self, worker: Worker) -> None:
        zygote = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker's own process
            status = 0
            try:
                die_with(zygote, signal.SIGTERM)
                self._become_child()
                worker.target()
            except BaseException as exc:
                status = 1
                with contextlib.suppress(BaseException):
                    self.log.error(f"worker {worker.name}: {type(exc).__name__}: {exc}")
            finally:
                os._exit(status)
        worker.pid = pid
        self.log.info(f"worker {worker.name} started (pid {pid})")

    def _restart_workers(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if not worker.pid and not self.stopping and now >= worker.died_at + \
                    WORKER_RESTART_DELAY:
                self._start_worker(worker)

    def _stop_workers(self) -> None:
        live = [w for w in self.workers if w.pid]
        for worker in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        for worker in live:
            end = time.monotonic() + worker.grace
            while time.monotonic() < end:
                if os.waitpid(worker.pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                os.waitpid(worker.pid, 0)
            worker.pid = 0

    # -- a request's child -----------------------------------------------------------------
    def _become_child(self) -> None:
        """Drop the zygote's loop: its signal handlers, wakeup fd and listener."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.listener is not None:
            self.listener.close()
        for other in self.running.values():
            other.conn.close()
            with contextlib.suppress(OSError):
                os.close(other.info)
        for spare in self.spares:  # the other spares': not ours
            spare.ctrl.close()
            with contextlib.suppress(OSError):
                os.close(spare.info)

    def _child(self, conn: socket.socket, info: int) -> int:
        conn.settimeout(READ_TIMEOUT)
        try:
            request = wire.read_request(conn)
        except (wire.BadFrame, OSError) as exc:
            why = str(exc) if isinstance(exc, wire.BadFrame) else \
                f"reading the request: {exc.strerror or 'timed out'}"
            os.write(info, f"refused: {why}".encode())
            with contextlib.suppress(OSError):
                conn.sendall(wire.reply(wire.REFUSED, wire.VERSION, why))
            return 0
        env = request.env
        os.write(info, (f"{env.get('CNI_COMMAND') or '-'} {env.get('CNI_CONTAINERID') or '-'}"
                        f"/{env.get('CNI_IFNAME') or '-'}\n").encode())
        conn.settimeout(None)
        conn.sendall(wire.reply(wire.ACCEPTED))
        _mark("read")
        try:
            return run_request(request, conn)
        finally:
            if _marks:
                with contextlib.suppress(OSError):
                    os.write(info, phases().encode())
            os.close(info)


# (phase, monotonic time) in a request child, from the zygote's accept to the answer: the
# debug log's account of where a request's time went. bondctl.cni.__main__ adds its own.
_marks: list[tuple[str, float]] = []


def _mark(phase: str) -> None:
    if _marks:  # only at debug level
        _marks.append((phase, time.monotonic()))


def phases() -> str:
    """`_marks` as "phase ms, ..." (each phase's time since the one before) and the page
    faults the request took (each one a copied page of the zygote, or a fresh one)."""
    steps = ", ".join(f"{phase} {(t - _marks[i][1]) * 1000:.1f}"
                      for i, (phase, t) in enumerate(_marks[1:]))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - _faults[0] if _faults else 0
    return f"phases ms: {steps}; {faults} page faults since the handover"


_faults: list[int] = []  # minor faults of this child when its request arrived


def _mark_steps() -> None:
    """Each ADD step's end (plugin.reached, the fault-injection hook) marks a phase too."""
    from . import plugin

    reached = getattr(plugin, "reached", None)
    if callable(reached):
        def marked(step: str) -> None:
            _mark(f"step {step}")
            reached(step)

        plugin.reached = marked


def run_request(request: wire.Request, conn: socket.socket) -> int:
    """In the request's child: become the caller's plugin process and run the direct path."""
    import atexit

    from ..netlink.ns import setns
    from . import __main__, pods
    from .log import log

    stdin, stdout, stderr, caller_ns = request.fds[:4]
    given = os.fstat(caller_ns)
    if [given.st_dev, given.st_ino] != _own_netns:  # the caller's is most often ours already
        setns(caller_ns)  # EINVAL if it is not a network namespace: the request fails
    os.close(caller_ns)
    _mark("setns")
    for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin, sys.stdout, sys.stderr = open_stdio()
    own = dict(os.environ)
    os.environ.clear()
    os.environ.update(child_env(request.env, own))
    netns = request.env.get("CNI_NETNS")
    if netns:
        pod = request.pod_fd
        pods.given[netns] = pod if pod is not None else -(request.netns_errno or errno.ENOENT)
    log.__init__()  # type: ignore[misc]  # the plugin's log as a fresh process has it
    atexit._clear()  # only this request's exit work (StateDir.close) runs below
    __main__.SERVED_BY = "agent"
    if _marks:
        __main__.MARKS = _marks
        _mark_steps()
    _mark("setup")
    try:
        status = __main__.main()
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        status = 130
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        atexit._run_exitfuncs()
        _mark("exit work")
    # Answer before this process is torn down: the caller's stdio closed first (the runtime
    # reads stdout to EOF), then the status. Past this point nothing is left to do; if we die
    # before it, the zygote answers with how we died.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    with contextlib.suppress(OSError):
        conn.sendall(wire.reply(wire.FINISHED, (status & 0xFF) << 8))  # a wait status
    _mark("answer")
    return status


def probe(path: str, timeout: float = 5.0) -> str:
    """"" when an agent answers at `path` (a frame of protocol version 0 is refused: nothing
    forks past the check, nothing runs); otherwise what went wrong."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(wire.REQUEST.pack(wire.MAGIC, 0, 0, 0, 0))
            answer = wire.read_reply(sock)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if answer is None or answer[0] != wire.REFUSED:
        return f"{path}: no agent answered"
    return ""


def agent_log(path: str | None = None, level: str = "info") -> Log:
    log = Log()
    log.level = LEVELS[level]
    log.prefix = f"bondctl-agent[{os.getpid()}]"
    if path:
        log.configure(path, level)
        log.prefix = f"bondctl-agent[{os.getpid()}]"
    return log


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bondctl.cni.agent` (the artifact's runtime has no CLI) and `bondctl agent`."""
    import argparse

    parser = argparse.ArgumentParser(prog="bondctl agent", description=(
        "Serve the bond CNI plugin's requests from a resident process (the native bond "
        "shim forwards to it; without it the shim takes the direct path)."))
    parser.add_argument("--socket", default=os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET,
                        help=f"unix socket to listen on (default {DEFAULT_SOCKET})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds a request may run before it is killed")
    parser.add_argument("--log-file", help="append the agent's log here (a file under "
                        "BONDCTL_LOG_DIR); default stderr")
    parser.add_argument("--log-level", default="info", choices=sorted(LEVELS))
    parser.add_argument("--probe", action="store_true", help="exit 0 if an agent answers on "
                        "the socket, 1 if not (a liveness probe)")
    parser.add_argument("--metrics-address", metavar="HOST:PORT", help="serve Prometheus "
                        "metrics of every pod's bond here and log failover events "
                        "(docs/observability.md); default: off")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                        help=f"the CNI state dir the monitor reads (default {DEFAULT_STATE_DIR})")
    args = parser.parse_args(argv)
    if args.probe:
        why = probe(args.socket)
        if why:
            print(f"bondctl agent: {why}", file=sys.stderr)
        return 1 if why else 0
    if os.geteuid() != 0:
        print("bondctl agent: must run as root (it makes bonds in pods)", file=sys.stderr)
        return 1
    if args.timeout <= 0:
        print("bondctl agent: --timeout must be above 0", file=sys.stderr)
        return 2
    workers = [monitor_worker(args.metrics_address, args.state_dir)] \
        if args.metrics_address else []
    agent = Agent(args.socket, timeout=args.timeout,
                  log=agent_log(args.log_file, args.log_level), workers=workers)
    return agent.serve()


def monitor_worker(address: str, state_dir: str) -> Worker:
    """The pods' bond monitor (bondctl.observe) as a worker: a process of its own, never the
    zygote, which forks request children and must stay single-threaded."""

    def target() -> None:
        import signal
        import threading

        from bondctl.observe.monitor import run

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        run(address, state_dir, stop)  # events: one JSON line each on stdout (the pod log)

    return Worker("monitor", target)


if __name__ == "__main__":
    sys.exit(main())
