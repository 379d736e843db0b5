"""Checkpoints: `apply --rollback-after SECONDS` undoes itself unless confirmed.

nmstate's --no-commit/--timeout model. Before the change, every bond the file names is read
back in full (options, slaves, MTU, MAC, addresses, routes, VLANs; or "absent") into a
checkpoint file under /run/bondctl, root-only, written atomically and never through a symlink.
A detached watcher process then waits: `bondctl commit` removes the checkpoint and the change
stays; a `--probe` that keeps answering until the deadline confirms it too; otherwise (and as
soon as the probe fails three times in a row) the watcher puts every bond back as it was, with
the same reconcile as `apply`. Restoring after a failed apply needs no watcher: apply does it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bondctl.errors import BusyError, NotFoundError, ValidationError

DIR_ENV = "BONDCTL_CHECKPOINT_DIR"  # for tests; the default is root's
DEFAULT_DIR = "/run/bondctl"
NAME = "checkpoint.json"
LAST = "last.json"  # what the last checkpoint came to: committed, confirmed, rolled back
PROBE_FAILURES = 3  # in a row: the change cut us off, do not wait for the deadline
MAX_SECONDS = 3600


def directory() -> Path:
    """The checkpoint directory, created 0700; refused if it is a symlink, not ours, or open
    to others (a checkpoint says what the watcher will write into the kernel)."""
    path = Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)
    with suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise ValidationError(f"{path} is not a directory (a symlink?); refusing to use it")
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise ValidationError(f"{path} must belong to uid {os.geteuid()} with mode 0700")
    return path


def write_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, encoding="utf-8") as src:
        data = json.load(src)
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: not a checkpoint")
    return data


@contextmanager
def locked(where: Path) -> Iterator[None]:
    """One of commit, rollback and the watcher's restore at a time."""
    fd = os.open(where / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- probes ------------------------------------------------------------------------------------
def probe_argv(spec: str, netns_path: str | None) -> list[str]:
    """`ping:ADDR` or `cmd:PROGRAM ARGS...` (split like a shell would, never run by one), run
    in the namespace the change was made in."""
    kind, _, rest = spec.partition(":")
    if kind == "ping" and rest.strip():
        argv = ["ping", "-c", "1", "-W", "1", "-n", rest.strip()]
    elif kind == "cmd" and rest.strip():
        argv = shlex.split(rest)
    else:
        raise ValidationError(f"--probe {spec!r}: expected ping:ADDRESS or cmd:COMMAND")
    return ["nsenter", f"--net={netns_path}", "--", *argv] if netns_path else argv


def probe_ok(argv: Sequence[str]) -> bool:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def verdict(now: float, deadline: float, results: Sequence[bool], has_probe: bool) -> str:
    """'wait', 'restore' or 'confirm', from the time and the probe's answers so far."""
    if has_probe and len(results) >= PROBE_FAILURES and not any(results[-PROBE_FAILURES:]):
        return "restore"
    if now < deadline:
        return "wait"
    return "confirm" if has_probe and results and results[-1] else "restore"


# -- taking and restoring ----------------------------------------------------------------------
def snapshot(session: Any, entries: Sequence[Any]) -> list[dict[str, Any]]:
    """Every bond the file names, exactly as it runs now (or absent)."""
    from bondctl.document import from_state, to_mapping
    from bondctl.reconcile import read

    saved = []
    for entry in entries:
        bonds = session.bonds(entry.netns)
        where = bonds.netns.path
        state, have_ip = read(bonds, entry.spec.name)
        if state is None:
            saved.append({"absent": entry.spec.name, "netns": where})
            continue
        saved.append(to_mapping(from_state(state, have_ip, where)))
    return saved


def restore(session: Any, saved: Sequence[dict[str, Any]]) -> list[str]:
    """Put every saved bond back; each failure is reported and the others still restored."""
    from bondctl.document import from_mapping
    from bondctl.errors import BondctlError
    from bondctl.reconcile import reconcile, verify

    said = []
    for item in saved:
        try:
            if "absent" in item:
                bonds = session.bonds(item.get("netns"))
                try:
                    bonds.delete(str(item["absent"]))
                    said.append(f"{item['absent']}: deleted (it did not exist before)")
                except NotFoundError:
                    pass
                continue
            entry = from_mapping(item)
            bonds = session.bonds(entry.netns)
            plan = reconcile(bonds, entry)
            verify(bonds, entry)
            said.append(f"{entry.spec.name}: restored ({plan.action})")
        except (BondctlError, OSError) as exc:
            said.append(f"{item.get('name') or item.get('absent')}: restore failed: {exc}")
    return said


def begin(session: Any, entries: Sequence[Any], seconds: float, probe: str | None,
          source: str) -> dict[str, Any]:
    """Save the checkpoint before apply changes anything; BusyError if one is pending."""
    if not 1 <= seconds <= MAX_SECONDS:
        raise ValidationError(f"--rollback-after: {seconds} is out of range 1..{MAX_SECONDS}")
    if probe is not None:
        probe_argv(probe, None)  # refuse a malformed probe before anything changes
    where = directory()
    with locked(where):
        pending = read(where / NAME)
        if pending is not None:
            raise BusyError(f"checkpoint {pending['id']} (apply of {pending['source']}) is "
                            "still pending: bondctl commit or bondctl rollback first")
        data = {"id": secrets.token_hex(4), "source": source, "created": time.time(),
                "seconds": seconds, "probe": probe, "netns": session.netns,
                "backend": session.backend, "bonds": snapshot(session, entries)}
        write_atomic(where / NAME, data)
    return data


def arm(data: dict[str, Any]) -> None:
    """Start the watcher, detached: it outlives this command and its terminal."""
    data["deadline"] = time.time() + float(data["seconds"])
    where = directory()
    write_atomic(where / NAME, data)
    log = os.open(where / "watcher.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                  | os.O_CLOEXEC, 0o600)
    try:
        subprocess.Popen([sys.executable, "-m", "bondctl.cli.checkpoint", str(data["id"])],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, close_fds=True)
    finally:
        os.close(log)


def _session_for(data: dict[str, Any]) -> Any:
    from bondctl.cli.session import Session

    return Session(netns=data.get("netns"), backend=data.get("backend"))


def _finish(where: Path, data: dict[str, Any], outcome: str, details: list[str]) -> None:
    (where / NAME).unlink(missing_ok=True)
    write_atomic(where / LAST, {"id": data["id"], "source": data["source"], "outcome": outcome,
                                "at": time.time(), "details": details})


def rollback_now(data_id: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Restore the pending checkpoint now (`bondctl rollback`, a failed apply)."""
    where = directory()
    with locked(where):
        data = read(where / NAME)
        if data is None or (data_id is not None and data["id"] != data_id):
            raise NotFoundError("no checkpoint is pending")
        said = restore(_session_for(data), data["bonds"])
        _finish(where, data, "rolled back", said)
    return data, said


def commit() -> dict[str, Any]:
    where = directory()
    with locked(where):
        data = read(where / NAME)
        if data is None:
            last = read(where / LAST)
            told = f" (the last one, {last['id']}, was {last['outcome']})" if last else ""
            raise NotFoundError(f"no checkpoint is pending{told}")
        _finish(where, data, "committed", [])
    return data


def watch(data_id: str) -> int:
    """The watcher's loop; its lines go to watcher.log beside the checkpoint."""
    where = directory()
    results: list[bool] = []
    while True:
        data = read(where / NAME)
        if data is None or data["id"] != data_id:
            return 0  # committed or rolled back by someone else
        argv = (probe_argv(data["probe"], _netns_path(data)) if data.get("probe") else None)
        if argv is not None:
            results.append(probe_ok(argv))
        action = verdict(time.time(), float(data["deadline"]), results, argv is not None)
        if action == "wait":
            time.sleep(1.0 if argv is not None else 0.25)
            continue
        with locked(where):
            data = read(where / NAME)
            if data is None or data["id"] != data_id:
                return 0
            if action == "confirm":
                _finish(where, data, "confirmed by probe", [])
                print(f"checkpoint {data_id}: confirmed by probe {data['probe']}", flush=True)
                return 0
            said = restore(_session_for(data), data["bonds"])
            _finish(where, data, "rolled back", said)
        print(f"checkpoint {data_id}: rolled back: {'; '.join(said)}", flush=True)
        return 0


def _netns_path(data: dict[str, Any]) -> str | None:
    from bondctl.netns import resolve

    return resolve(data.get("netns")).path


if __name__ == "__main__":
    sys.exit(watch(sys.argv[1]))
