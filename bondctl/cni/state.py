"""Per-attachment records and link locks in the state directory.

A record says what ADD took and how each link was before, so DEL, GC and a rolled-back ADD put
everything back even after a crash. Records are written atomically (temp file, fsync,
rename) and only ever opened relative to the state directory's fd, never through a symlink:
the directory is root's, but a planted symlink must not turn a write into someone else's file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from typing import Any

from .env import CONTAINER_ID
from .errors import IO_FAILURE, TRY_AGAIN, CniError

RECORD_SUFFIX = ".json"
LOCK_SUFFIX = ".lock"
_SEP = "@"  # never in a container ID, so "<id>@<ifname>" splits one way only
_MAX_NAME = 200
_LOCK_POLL = 0.05


def attachment_key(container_id: str, ifname: str) -> str:
    if not CONTAINER_ID.match(container_id):
        raise CniError(IO_FAILURE, f"container ID {container_id!r} cannot name a state file")
    key = f"{container_id}{_SEP}{ifname}"
    if len(key) > _MAX_NAME:  # file names stop at 255 bytes; IDs have no length limit
        import hashlib  # ~2.5 ms, for the rare over-long ID only

        key = "h" + _SEP + hashlib.sha256(key.encode()).hexdigest()
    return key


class StateDir:
    """The state directory, opened once with O_NOFOLLOW and checked before any use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = self._open(path)
        self._locks: list[int] = []

    @staticmethod
    def _open(path: str) -> int:
        try:
            os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise CniError(IO_FAILURE, f"stateDir {path} is a symlink or not a directory; "
                               "refusing to use it") from None
            raise CniError(IO_FAILURE, f"stateDir {path}: {exc.strerror}") from None
        st = os.fstat(fd)
        if st.st_uid not in (0, os.geteuid()):
            os.close(fd)
            raise CniError(IO_FAILURE, f"stateDir {path} is owned by uid {st.st_uid}, "
                           "not by root or us; refusing to use it")
        if st.st_mode & 0o022:
            os.close(fd)
            raise CniError(IO_FAILURE, f"stateDir {path} is writable by group or others "
                           f"(mode {st.st_mode & 0o777:o}); refusing to use it")
        return fd

    def close(self) -> None:
        for fd in self._locks:
            os.close(fd)
        self._locks.clear()
        os.close(self.fd)

    # -- records ----------------------------------------------------------------------------
    def read(self, key: str) -> dict[str, Any] | None:
        try:
            fd = os.open(key + RECORD_SUFFIX, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CniError(IO_FAILURE, f"state record {key}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
        try:
            record = json.loads(data)
        except ValueError:
            raise CniError(IO_FAILURE, f"state record {key} is corrupt") from None
        if not isinstance(record, dict):
            raise CniError(IO_FAILURE, f"state record {key} is corrupt")
        return record

    def write(self, key: str, record: dict[str, Any]) -> None:
        """Replace the record atomically: readers see the old one or the new one, whole."""
        data = json.dumps(record, indent=1, sort_keys=True).encode()
        temp = f".{key}.{os.getpid()}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, key + RECORD_SUFFIX, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            os.fsync(self.fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self.fd)
            raise CniError(IO_FAILURE, f"cannot write state record {key}: {exc.strerror}"
                           ) from None

    def remove(self, key: str) -> None:
        try:
            os.unlink(key + RECORD_SUFFIX, dir_fd=self.fd)
            os.fsync(self.fd)
        except FileNotFoundError:
            pass

    def records(self) -> list[str]:
        return sorted(name[: -len(RECORD_SUFFIX)] for name in os.listdir(self.fd)
                      if name.endswith(RECORD_SUFFIX) and not name.startswith("."))

    # -- locks ------------------------------------------------------------------------------
    def lock(self, name: str, *, wait: float, what: str) -> bool:
        """flock `name`.lock in the state dir, held until close(); False if still busy after
        `wait` seconds (0: try once). The lock files stay: unlinking one races with a waiter."""
        try:
            fd = os.open(name + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        except OSError as exc:
            raise CniError(IO_FAILURE, f"cannot open lock for {what}: {exc.strerror}") from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(_LOCK_POLL)
                continue
            self._locks.append(fd)
            return True

    def lock_or_busy(self, name: str, *, wait: float, what: str) -> None:
        if not self.lock(name, wait=wait, what=what):
            raise CniError(TRY_AGAIN, f"{what} is held by another operation in progress; "
                           "try again later")


def link_lock_name(link: str) -> str:
    # "+" starts no container ID: a link lock never shares a name with an attachment lock.
    return f"+link{_SEP}{link}"
