"""Per-attachment records and link locks in the state directory.

A record says what ADD took and how each link was before, so DEL, GC and a rolled-back ADD put
everything back even after a crash. Records are written atomically (temp file, then rename)
and only ever opened relative to the state directory's fd, never through a symlink: the
directory is root's, but a planted symlink must not turn a write into someone else's file.
Records are not fsynced: what they describe (pods' namespaces, bonds, links moved into pods)
does not survive a reboot either, and against a killed process the rename is atomic through the
page cache. A record torn by a power loss reads as BadRecord, which DEL and GC already handle.
ADD saves four times and DEL removes once: nine fsyncs per pod, milliseconds on a real disk.

stateDir comes from the network config, which a tenant writes: it must lie inside the root the
node's admin allows (BONDCTL_STATE_ROOT), reached below that root without following a symlink.
A record is read as untrusted input: a regular file only (a FIFO must not hang DEL), at most
64 KiB, checked against the schema before any field is used; a bad one raises BadRecord.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import stat
import time

from ..errors import ValidationError
from ..names import check_ifname
from . import jsondoc
from .env import CONTAINER_ID
from .errors import INVALID_CONFIG, IO_FAILURE, TRY_AGAIN, CniError
from .paths import below, open_dirs, open_root

# No typing, json or re: this module is on every pod's ADD path (jsondoc is json's own C
# codec), and re's import and compiles cost DEL milliseconds on every pod, in the agent too.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Check = Callable[[Any, str], Any]

RECORD_SUFFIX = ".json"
LOCK_SUFFIX = ".lock"
STATE_ROOT_ENV = "BONDCTL_STATE_ROOT"
DEFAULT_STATE_ROOT = "/var/lib/cni"
MAX_RECORD = 64 * 1024
_SEP = "@"  # never in a container ID, so "<id>@<ifname>" splits one way only
_MAX_NAME = 200
_LOCK_POLL = 0.05
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def attachment_key(container_id: str, ifname: str) -> str:
    if not CONTAINER_ID.match(container_id):
        raise CniError(IO_FAILURE, f"container ID {container_id!r} cannot name a state file")
    key = f"{container_id}{_SEP}{ifname}"
    if len(key) > _MAX_NAME:  # file names stop at 255 bytes; IDs have no length limit
        import hashlib  # ~2.5 ms, for the rare over-long ID only

        key = "h" + _SEP + hashlib.sha256(key.encode()).hexdigest()
    return key


class BadRecord(CniError):
    """A state record that is no regular file, too large, not JSON or not of the schema."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(IO_FAILURE, f"state record {key} {why}")
        self.key = key


_OPEN_WHY = {errno.ELOOP: "is not a regular file (a symlink)",
             errno.ENXIO: "is not a regular file (a socket or device)"}


class StateDir:
    """The state directory, reached without a symlink below the allowed root and checked
    before any use. Locks taken are released, their files removed, by close() (run at exit
    at the latest)."""

    def __init__(self, path: str, root: str | None = None) -> None:
        """`root`: the node's allowed root as the request's environment names it (None: this
        process's own)."""
        self.path = path
        self.fd = self._open(path, root)
        self._locks: dict[str, int] = {}
        atexit.register(self.close)

    @staticmethod
    def _open(path: str, root: str | None) -> int:
        if root is None:
            root = os.environ.get(STATE_ROOT_ENV)
        root = root or DEFAULT_STATE_ROOT
        parts = below(root, path)
        if parts is None:
            raise CniError(INVALID_CONFIG, f"stateDir: {path!r} is not a plain absolute path "
                           f"inside {root} (the node's {STATE_ROOT_ENV})")
        try:
            fd = open_dirs(open_root(root, 0o755), parts, create=0o700)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise CniError(IO_FAILURE, f"stateDir {path} is a symlink or not a directory "
                               f"(or one of its parents below {root} is); refusing to use "
                               "it") from None
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
        atexit.unregister(self.close)
        for name in list(self._locks):
            self.unlock(name)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- records ----------------------------------------------------------------------------
    def read(self, key: str) -> dict[str, Any] | None:
        """The record, checked against the schema (defaults filled); None when there is none;
        BadRecord when it cannot be trusted. Never blocks."""
        try:
            fd = os.open(key + RECORD_SUFFIX, _READ_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BadRecord(key, _OPEN_WHY.get(exc.errno or 0, f"cannot be read: {exc.strerror}")
                            ) from None
        try:
            data = _read_capped(fd, key)
        finally:
            os.close(fd)
        try:
            obj = jsondoc.decode(data)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise BadRecord(key, "is not valid JSON") from None
        try:
            return check_record(obj)
        except RecordError as exc:
            raise BadRecord(key, str(exc)) from None

    def write(self, key: str, record: dict[str, Any]) -> None:
        """Replace the record atomically: readers see the old one or the new one, whole."""
        data = jsondoc.dumps(record, sort_keys=True).encode()
        temp = f".{key}.{os.getpid()}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, key + RECORD_SUFFIX, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as exc:
            try:  # noqa: SIM105  # contextlib.suppress: ~2 ms of imports on every pod start
                os.unlink(temp, dir_fd=self.fd)
            except OSError:
                pass
            raise CniError(IO_FAILURE, f"cannot write state record {key}: {exc.strerror}"
                           ) from None

    def load(self, key: str) -> StateRecord | None:
        """read(), as a StateRecord."""
        found = self.read(key)
        return None if found is None else StateRecord.from_json(found)

    def save(self, key: str, record: StateRecord) -> None:
        self.write(key, record.to_json())

    def remove(self, key: str) -> None:
        try:
            os.unlink(key + RECORD_SUFFIX, dir_fd=self.fd)
        except FileNotFoundError:
            pass
        except OSError as exc:  # EISDIR: a planted directory, not ours to remove
            raise CniError(IO_FAILURE, f"cannot remove state record {key}: {exc.strerror}"
                           ) from None

    def records(self) -> list[str]:
        """Keys of the names that look like records (what each one holds, read() checks)."""
        try:
            names = os.listdir(self.fd)
        except OSError as exc:
            raise CniError(IO_FAILURE, f"cannot list stateDir {self.path}: {exc.strerror}"
                           ) from None
        return sorted(name[: -len(RECORD_SUFFIX)] for name in names
                      if name.endswith(RECORD_SUFFIX) and len(name) > len(RECORD_SUFFIX)
                      and not name.startswith("."))

    # -- locks ------------------------------------------------------------------------------
    def lock(self, name: str, *, wait: float, what: str) -> bool:
        """flock `name`.lock in the state dir, held until unlock() or close(); False if still
        busy after `wait` seconds (0: try once).

        The holder removes the lock file before it lets go, so a waiter may end up holding
        the lock of a file no longer in the directory: after each flock the name must still
        lead to the locked file, or the waiter starts over on the new one."""
        if name in self._locks:
            return True
        deadline = time.monotonic() + wait
        while True:
            fd = self._open_lock(name, what)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_LOCK_POLL)
                continue
            try:
                named = self._still_named(fd, name, what)
            except BaseException:
                os.close(fd)
                raise
            if named:
                self._locks[name] = fd
                return True
            os.close(fd)  # removed by the holder we waited for: take the new one

    def _open_lock(self, name: str, what: str) -> int:
        try:
            return os.open(name + LOCK_SUFFIX, _LOCK_FLAGS, 0o600, dir_fd=self.fd)
        except OSError as exc:
            raise CniError(IO_FAILURE, f"cannot open lock for {what}: {exc.strerror}") from None

    def _still_named(self, fd: int, name: str, what: str) -> bool:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CniError(IO_FAILURE, f"lock for {what} is not a regular file")
        if st.st_nlink == 0:
            return False
        try:
            now = os.stat(name + LOCK_SUFFIX, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)

    def unlock(self, name: str) -> None:
        """Remove the lock file while still holding it (no one can hold it meanwhile), then
        let go."""
        fd = self._locks.pop(name, None)
        if fd is None:
            return
        try:
            if self._still_named(fd, name, name):
                os.unlink(name + LOCK_SUFFIX, dir_fd=self.fd)
        except (OSError, CniError):
            pass  # the lock goes with the fd regardless; a file left behind is harmless
        finally:
            os.close(fd)

    def lock_or_busy(self, name: str, *, wait: float, what: str) -> None:
        if not self.lock(name, wait=wait, what=what):
            raise CniError(TRY_AGAIN, f"{what} is held by another operation in progress; "
                           "try again later")


def _read_capped(fd: int, key: str) -> bytes:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise BadRecord(key, "is not a regular file")
    chunks, size = [], 0
    try:
        while size <= MAX_RECORD:
            chunk = os.read(fd, MAX_RECORD + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise BadRecord(key, f"cannot be read: {exc.strerror}") from None
    if size > MAX_RECORD:
        raise BadRecord(key, f"is larger than {MAX_RECORD // 1024} KiB")
    return b"".join(chunks)


# -- the record schema (docs: /tmp/work/record.md, version 2; version 1 still read) -----------
class RecordError(ValueError):
    """A deviation from the schema, naming the field: "field links[0].index: ..."."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"field {where}: {why}" if where else why)


_REQUIRED = object()
_HEX = frozenset("0123456789abcdefABCDEF")
_IP_CHARS = _HEX | frozenset(":.")
_DIGITS = frozenset("0123456789")
_SYSCTL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_PRINTABLE = frozenset(map(chr, range(0x20, 0x7F)))


# The shapes a record's strings must have, as whole-string tests (once regular expressions:
# [0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){0,31}, [0-9a-fA-F:.]{2,45}, .../[0-9]{1,3}, ipv[46]/[a-z0-9_]
# {1,64}, [ -~]{0,64}).
def _is_mac(text: str) -> bool:
    parts = text.split(":")
    return len(parts) <= 32 and all(len(p) == 2 and _HEX.issuperset(p) for p in parts)


def _is_ip(text: str) -> bool:
    return 2 <= len(text) <= 45 and _IP_CHARS.issuperset(text)


def _is_cidr(text: str) -> bool:
    address, slash, prefix = text.rpartition("/")
    return bool(slash) and _is_ip(address) and 1 <= len(prefix) <= 3 \
        and _DIGITS.issuperset(prefix)


def _is_sysctl(text: str) -> bool:
    family, slash, name = text.partition("/")
    return family in ("ipv4", "ipv6") and bool(slash) and 1 <= len(name) <= 64 \
        and _SYSCTL_CHARS.issuperset(name)


def _is_sysctl_value(text: str) -> bool:
    return len(text) <= 64 and _PRINTABLE.issuperset(text)


_U32 = 2**32 - 1
_IFINDEX_MAX = 2**31 - 1



def _integer(low: int, high: int) -> Check:
    def check(value: Any, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise RecordError(where, "expected an integer")
        if not low <= value <= high:
            raise RecordError(where, f"{value} is out of range ({low}..{high})")
        return value
    return check


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RecordError(where, "expected a string")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RecordError(where, "expected true or false")
    return value


def _number(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RecordError(where, "expected a number")
    return value


def _matching(test: Callable[[str], bool], what: str) -> Check:
    def check(value: Any, where: str) -> str:
        if not test(_string(value, where)):
            raise RecordError(where, f"{value!r} is not {what}")
        return value  # type: ignore[no-any-return]
    return check


def _nullable(check: Check) -> Check:
    return lambda value, where: None if value is None else check(value, where)


def _list_of(check: Check, low: int = 0, high: int = 4096) -> Check:
    def each(value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise RecordError(where, "expected a list")
        if not low <= len(value) <= high:
            raise RecordError(where, f"expected {low} to {high} entries, not {len(value)}")
        return [check(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return each


def _object(fields: dict[str, tuple[Any, Check]]) -> Check:
    """An object with these fields (default _REQUIRED: must be there; a type such as list: a
    fresh one when absent); other keys are kept as they are."""
    def check(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise RecordError(where, "expected an object")
        out = dict(value)
        for key, (default, field) in fields.items():
            path = f"{where}.{key}" if where else key
            if key in value:
                out[key] = field(value[key], path)
            elif default is _REQUIRED:
                raise RecordError(path, "missing")
            else:
                out[key] = default() if callable(default) else default
        return out
    return check


def _ifname(value: Any, where: str) -> str:
    try:
        return check_ifname(value)
    except ValidationError as exc:
        raise RecordError(where, exc.msg) from None


def _container_id(value: Any, where: str) -> str:
    if not CONTAINER_ID.match(_string(value, where)):
        raise RecordError(where, f"{value!r} is not a container ID")
    return value  # type: ignore[no-any-return]


def _abs_path(value: Any, where: str) -> str:
    if not _string(value, where).startswith("/") or "\0" in value:
        raise RecordError(where, f"{value!r} is not an absolute path")
    return value  # type: ignore[no-any-return]


def _one_of(*choices: str) -> Check:
    def check(value: Any, where: str) -> str:
        if _string(value, where) not in choices:
            raise RecordError(where, f"{value!r} is not one of {', '.join(choices)}")
        return value  # type: ignore[no-any-return]
    return check


def _sysctls(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise RecordError(where, "expected an object")
    for key, setting in value.items():
        _sysctl_name(key, where)
        _sysctl_value(setting, f"{where}.{key}")
    return dict(value)


_sysctl_name = _matching(_is_sysctl, "a per-link sysctl (ipv4/NAME or ipv6/NAME)")
_sysctl_value = _matching(_is_sysctl_value, "a sysctl value")
_index = _integer(1, _IFINDEX_MAX)
_u32 = _nullable(_integer(0, _U32))
_mac = _nullable(_matching(_is_mac, "a link-layer address"))
_ROUTE = _object({"dst": (_REQUIRED, _matching(lambda t: t == "default" or _is_cidr(t),
                                                "a prefix or default")),
                  "gateway": (None, _nullable(_matching(_is_ip, "an IP address"))),
                  "metric": (None, _u32), "table": (None, _u32)})
_UPPER = _object({"index": (_REQUIRED, _index), "name": (_REQUIRED, _ifname),
                  "up": (_REQUIRED, _boolean)})
_LINK = _object({
    "name": (_REQUIRED, _ifname),
    "host": (_REQUIRED, _boolean),
    "index": (_REQUIRED, _index),
    "podIndex": (None, _nullable(_index)),
    "kind": (None, _nullable(_string)),
    "mtu": (_REQUIRED, _u32),
    "mac": (_REQUIRED, _mac),
    "permMac": (_REQUIRED, _mac),
    "up": (_REQUIRED, _nullable(_boolean)),
    "addresses": (list, _list_of(_matching(_is_cidr, "an address with a prefix"))),
    "routes": (list, _list_of(_ROUTE)),
    "sysctls": (dict, _sysctls),
    "uppers": (list, _list_of(_UPPER)),
})
_POD = _object({"name": (_REQUIRED, _string), "namespace": (_REQUIRED, _string)})
_RECORD = _object({
    "version": (_REQUIRED, _integer(1, 2)),
    "network": (_REQUIRED, _matching(bool, "a network name")),
    "containerID": (_REQUIRED, _container_id),
    "ifname": (_REQUIRED, _ifname),
    "netns": (_REQUIRED, _abs_path),
    "netnsId": (_REQUIRED, _list_of(_integer(0, 2**64 - 1), 2, 2)),
    "bond": (_REQUIRED, _ifname),
    "bondIndex": (None, _nullable(_index)),
    "linksInContainer": (_REQUIRED, _boolean),
    "phase": (_REQUIRED, _one_of("adding", "added")),
    "created": (_REQUIRED, _number),
    "pod": (None, _nullable(_POD)),
    "links": (_REQUIRED, _list_of(_LINK, 1, 64)),
})


def check_record(obj: object) -> dict[str, Any]:
    """The record with every field of the schema checked and the defaults filled in (version
    1 records lack podIndex, kind, bondIndex, addresses, routes, sysctls, uppers and pod);
    RecordError naming the first field that deviates."""
    if not isinstance(obj, dict):
        raise RecordError("", "is not a JSON object")
    return _RECORD(obj, "")  # type: ignore[no-any-return]


def link_lock_name(link: str) -> str:
    # "+" starts no container ID: a link lock never shares a name with an attachment lock.
    return f"+link{_SEP}{link}"


# -- the record as the code reads it ---------------------------------------------------------------
class _Fields:
    """A record object over the schema's JSON: `_keys` maps each attribute to its JSON key;
    keys the schema does not know are kept in `extra` and written back as they were."""

    _keys: tuple[tuple[str, str], ...] = ()
    _omitted_when_none: frozenset[str] = frozenset()  # keys a writer leaves out when unset
    extra: dict[str, Any]

    def _load(self, obj: dict[str, Any]) -> None:
        known = {key for _, key in self._keys}
        for attr, key in self._keys:
            setattr(self, attr, obj.get(key))
        self.extra = {k: v for k, v in obj.items() if k not in known}

    def to_json(self) -> dict[str, Any]:
        out = dict(self.extra)
        for attr, key in self._keys:
            value = getattr(self, attr)
            if value is None and key in self._omitted_when_none:
                continue
            out[key] = value.to_json() if isinstance(value, _Fields) else value
        return out


class LinkRecord(_Fields):
    """One link ADD took: who it is (index, kind, permanent MAC: what DEL finds it by), how it
    was (name, MTU, MAC, admin state) and, for a host link, what the host lost with it
    (addresses, routes, sysctls, uppers: bondctl.hostlinks.survey)."""

    _keys = (("name", "name"), ("host", "host"), ("index", "index"),
             ("pod_index", "podIndex"), ("kind", "kind"), ("mtu", "mtu"), ("mac", "mac"),
             ("perm_mac", "permMac"), ("up", "up"), ("addresses", "addresses"),
             ("routes", "routes"), ("sysctls", "sysctls"), ("uppers", "uppers"))
    # A pod link's record has no survey; ADD never wrote those keys for one.
    _omitted_when_none = frozenset({"addresses", "routes", "sysctls", "uppers"})
    name: str
    host: bool
    index: int
    pod_index: int | None
    kind: str | None
    mtu: int | None
    mac: str | None
    perm_mac: str | None
    up: bool | None
    addresses: list[str] | None
    routes: list[dict[str, Any]] | None
    sysctls: dict[str, str] | None
    uppers: list[dict[str, Any]] | None

    def __init__(self, **fields: Any) -> None:
        self._load({key: fields.get(attr) for attr, key in self._keys})

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LinkRecord:
        self = cls.__new__(cls)
        self._load(obj)
        return self

    def survey(self) -> dict[str, Any]:
        """What the host lost with the link, as bondctl.hostlinks.restore takes it."""
        return {"addresses": self.addresses or [], "routes": self.routes or [],
                "sysctls": self.sysctls or {}, "uppers": self.uppers or []}


class StateRecord(_Fields):
    """One attachment's state record (schema version 2 on disk; version 1 still read)."""

    _keys = (("version", "version"), ("network", "network"),
             ("container_id", "containerID"), ("ifname", "ifname"), ("netns", "netns"),
             ("netns_id", "netnsId"), ("bond", "bond"), ("bond_index", "bondIndex"),
             ("links_in_container", "linksInContainer"), ("phase", "phase"),
             ("created", "created"), ("pod", "pod"))
    _omitted_when_none = frozenset({"pod"})  # only a Kubernetes pod's attachment names one
    version: int
    network: str
    container_id: str
    ifname: str
    netns: str
    netns_id: list[int]
    bond: str
    bond_index: int | None
    links_in_container: bool
    phase: str
    created: float
    pod: dict[str, str] | None
    links: list[LinkRecord]

    def __init__(self, links: list[LinkRecord], **fields: Any) -> None:
        self._load({key: fields.get(attr) for attr, key in self._keys})
        self.links = links

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> StateRecord:
        """A record check_record() passed (read() does that)."""
        self = cls.__new__(cls)
        self._load({k: v for k, v in obj.items() if k != "links"})
        self.links = [LinkRecord.from_json(link) for link in obj["links"]]
        return self

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "links": [link.to_json() for link in self.links]}

    @property
    def legacy(self) -> bool:
        """A version 1 record knows the links in the pod by name and permanent MAC only."""
        return self.version == 1

    @property
    def attachment(self) -> str:
        return f"{self.container_id}/{self.ifname}"
