"""Paths a network config names, confined to a directory the node's admin chose.

The config comes from a tenant and the plugin runs as root: a path from it is used only when it
is a plain absolute path inside the admin's directory, and every directory below that one is
opened with O_NOFOLLOW relative to its parent, so no symlink (planted before or during the
call) leads outside. Shared by the log file and the state directory; cheap to import.
"""

from __future__ import annotations

import os

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def below(root: str, path: str) -> list[str] | None:
    """The components of `path` below `root` ([] for the root itself), or None when `path` is
    not an absolute path free of NUL and "..", inside `root`."""
    if not path.startswith("/") or "\0" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    top = [p for p in os.path.normpath(root).split("/") if p]
    if parts[: len(top)] != top:
        return None
    return parts[len(top):]


def open_root(root: str, mode: int) -> int:
    """The admin's directory (a path the admin set, so followed as given), created with `mode`
    when missing."""
    os.makedirs(root, mode=mode, exist_ok=True)
    return os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)


def open_dirs(fd: int, parts: list[str], create: int | None = None) -> int:
    """Walk `parts` down from the directory `fd` (which this takes over), never through a
    symlink; a missing directory is made with mode `create`, or is an error when None.
    Returns the last directory's fd; raises OSError (ELOOP or ENOTDIR for a symlink or a
    non-directory), with every fd it opened closed."""
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create is None:
                    raise
                # mkdir never follows a symlink; EEXIST: a concurrent call made it
                try:  # noqa: SIM105  # contextlib.suppress: ~2 ms of imports per pod start
                    os.mkdir(part, create, dir_fd=fd)
                except FileExistsError:
                    pass
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd
