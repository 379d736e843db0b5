"""Installs the self-contained `bond` plugin (packaging/build_artifact.py) into a CNI bin dir.

The artifact is the launcher `bond` plus its runtime, reached through the `.bond-runtime`
symlink next to it. On a node, runtimes call the plugin at any moment, so no reader may ever
see a partial file: every piece is written under a temporary name in the destination directory,
fsynced, then renamed into place (rename is atomic within a filesystem):

1. the runtime is copied to `.bond-runtime-DIGEST12` (via a temporary name),
2. the `.bond-runtime` symlink is swapped to it (a new symlink renamed over the old),
3. the launcher `bond` is replaced (temporary file, fsync, chmod 0755, rename).

The launcher resolves the symlink once when it starts, so a call in flight keeps the runtime it
started with; the previous runtime stays on disk for such calls and is removed by the next
install. Installing the same artifact again changes nothing.

A `bond` that is not ours (bond-cni's Go binary, say) is recognised without running it: our
launcher carries LAUNCHER_MARKER. It is only replaced with force=True.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import BondctlError

PLUGIN_NAME = "bond"
LAUNCHER_MARKER = b"BONDCTL-CNI-LAUNCHER/1"
RUNTIME_LINK = ".bond-runtime"
RUNTIME_PREFIX = ".bond-runtime-"
MANIFEST_NAME = "manifest.json"
ARTIFACT_NAME = "bondctl-bond"
LOCK_NAME = ".bond-install.lock"
TMP_TAG = ".tmp-"  # in every temporary name, so leftovers of a killed install are found
DIGEST_LEN = 12


class InstallError(BondctlError):
    """The artifact is unusable or the destination cannot take it; nothing was changed."""

    exit_code = 2  # docs/cli.md: an invalid value (the artifact, the directory)


class ForeignPluginError(InstallError):
    """The destination holds a `bond` that is not ours (only force=True replaces it)."""

    exit_code = 2


class InstallResult(NamedTuple):
    plugin: Path  # DEST/bond
    runtime: Path  # DEST/.bond-runtime-DIGEST12, the runtime now in use
    version: str
    digest: str
    changed: bool  # False: the same artifact was already installed, nothing was written
    replaced_foreign: bool  # a foreign `bond` was overwritten (force=True)
    removed: tuple[Path, ...]  # older runtimes and leftovers of interrupted installs

    @property
    def message(self) -> str:
        what = f"bond {self.version} (runtime {self.digest[:DIGEST_LEN]}) in {self.plugin.parent}"
        if not self.changed:
            return f"{what}: already installed, nothing changed"
        return f"installed {what}" + (" over a foreign bond plugin" if self.replaced_foreign
                                      else "")


def tree_digest(root: Path) -> str:
    """sha256 over every path, mode and content (symlinks by target) under root, manifest
    excluded: the identity of a runtime."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]):
            rel = rel_dir / name
            if str(rel) == MANIFEST_NAME:
                continue
            path = Path(dirpath) / name
            st = path.lstat()
            h.update(str(rel).encode() + b"\0")
            if stat.S_ISLNK(st.st_mode):
                h.update(b"L" + os.readlink(path).encode() + b"\0")
            else:
                h.update(b"F%o\0" % (st.st_mode & 0o111))
                with open(path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                h.update(b"\0")
    return h.hexdigest()


def is_ours(path: Path) -> bool:
    """Whether the file at path is our launcher, by its marker: never by running it."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(8 << 20)
    except OSError:
        return False
    return LAUNCHER_MARKER in data


def read_manifest(runtime: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((runtime / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("artifact") != ARTIFACT_NAME:
        return None
    if not isinstance(data.get("digest"), str) or not isinstance(data.get("version"), str):
        return None
    return data


def _artifact(artifact: Path) -> tuple[bytes, Path, dict[str, Any]]:
    try:
        launcher = artifact.read_bytes()
    except OSError as exc:
        raise InstallError(f"cannot read the artifact {artifact}: {exc.strerror}") from None
    if LAUNCHER_MARKER not in launcher:
        raise InstallError(f"{artifact} is not a bond launcher built by "
                           "packaging/build-artifact.sh (no marker)")
    runtime = (artifact.parent / RUNTIME_LINK).resolve()
    manifest = read_manifest(runtime)
    if manifest is None:
        raise InstallError(f"{artifact.parent / RUNTIME_LINK}: no runtime with a valid "
                           f"{MANIFEST_NAME} next to the launcher")
    actual = tree_digest(runtime)
    if actual != manifest["digest"]:
        raise InstallError(f"{runtime}: contents do not match its manifest (digest {actual[:12]}"
                           f", manifest says {manifest['digest'][:12]}): rebuild the artifact")
    return launcher, runtime, manifest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path)


@contextlib.contextmanager
def _locked(dest_dir: Path) -> Iterator[None]:
    """One install at a time per directory (an old and a new DaemonSet pod may overlap)."""
    fd = os.open(dest_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _install_runtime(src: Path, dest_dir: Path, name: str, digest: str) -> bool:
    """DEST/name holds the runtime `digest` afterwards; True when it had to be copied."""
    final = dest_dir / name
    if final.is_dir() and not final.is_symlink():
        present = read_manifest(final)
        if present is not None and present["digest"] == digest:
            return False
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}{TMP_TAG}", dir=dest_dir))
    try:
        shutil.copytree(src, tmp, symlinks=True, dirs_exist_ok=True)
        os.chmod(tmp, 0o755)  # noqa: S103 - mkdtemp makes 0700; CNI bin dirs are 0755
        _fsync_tree(tmp)
        if final.exists() or final.is_symlink():  # same name, other contents: a damaged copy
            _remove(final)
        os.replace(tmp, final)
        _fsync_dir(dest_dir)
    except BaseException:
        _remove(tmp)
        raise
    return True


def _replace_symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f"{link.name}{TMP_TAG}{os.getpid()}")
    _remove(tmp)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(link.parent)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}{TMP_TAG}", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _same_file(path: Path, data: bytes, mode: int) -> bool:
    try:
        st = path.lstat()
        return (stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode
                and st.st_size == len(data) and path.read_bytes() == data)
    except OSError:
        return False


def _prune(dest_dir: Path, keep: set[str]) -> tuple[Path, ...]:
    """Runtimes other than the current and the previous one, and temporaries of installs that
    were killed (safe under the lock: no other install is running)."""
    removed = []
    for path in sorted(dest_dir.iterdir()):
        name = path.name
        ours = name.startswith(RUNTIME_PREFIX) or (
            TMP_TAG in name and name.startswith((f".{PLUGIN_NAME}{TMP_TAG}",
                                                 f"{RUNTIME_LINK}{TMP_TAG}")))
        if ours and name not in keep and name != RUNTIME_LINK:
            _remove(path)
            removed.append(path)
    return tuple(removed)


def install(artifact: Path, dest_dir: Path, *, force: bool = False) -> InstallResult:
    """Install the `bond` launcher at `artifact` (with its runtime next to it) into dest_dir.

    Idempotent; atomic for every reader of dest_dir; refuses to replace a `bond` that is not
    ours unless force. Raises InstallError (ForeignPluginError for the refusal).
    """
    launcher, src_runtime, manifest = _artifact(Path(artifact))
    return install_pair(launcher, src_runtime, manifest, dest_dir, force=force)


def install_pair(launcher: bytes, src_runtime: Path, manifest: dict[str, Any], dest_dir: Path,
                 *, force: bool = False) -> InstallResult:
    """Install a launcher (its bytes carry LAUNCHER_MARKER) and the runtime directory it
    starts (with its manifest) into dest_dir: the same guarantees as install()."""
    digest: str = manifest["digest"]
    version: str = manifest["version"]
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(f"cannot create {dest_dir}: {exc.strerror}") from None
    plugin = dest_dir / PLUGIN_NAME
    link = dest_dir / RUNTIME_LINK
    name = f"{RUNTIME_PREFIX}{digest[:DIGEST_LEN]}"
    with _locked(dest_dir):
        foreign = plugin.exists() or plugin.is_symlink()
        foreign = foreign and not is_ours(plugin)
        if foreign and not force:
            raise ForeignPluginError(
                f"{plugin} exists and is not bondctl's bond plugin (no marker): it was left "
                "alone; install with force to replace it",
                details="another CNI plugin named bond, such as bond-cni's Go binary")
        if (link.exists() or link.is_symlink()) and not link.is_symlink():
            if not force:
                raise ForeignPluginError(f"{link} exists and is not our runtime symlink: it "
                                         "was left alone; install with force to replace it")
            _remove(link)
        previous = os.readlink(link) if link.is_symlink() else None
        copied = _install_runtime(src_runtime, dest_dir, name, digest)
        swapped = False
        try:
            if previous != name:
                _replace_symlink(link, name)
                swapped = True
            wrote = not _same_file(plugin, launcher, 0o755)
            if wrote:
                _write_file(plugin, launcher, 0o755)
        except BaseException:
            # Back to the previous pair: the destination is as it was before this call.
            if swapped and previous is not None:
                _replace_symlink(link, previous)
            elif swapped:
                _remove(link)
            if copied and previous != name:
                _remove(dest_dir / name)
            raise
        changed = copied or swapped or wrote
        keep = {name} | ({previous} if previous else set())
        removed = _prune(dest_dir, keep)
    return InstallResult(plugin, dest_dir / name, version, digest, changed, foreign, removed)


def main(argv: list[str] | None = None) -> int:
    """`python -m bondctl.cni.install ARTIFACT DEST_DIR [--force]`: what the DaemonSet's
    entrypoint runs with the artifact's own runtime (the image has no other Python)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m bondctl.cni.install",
                                     description="Install the bond CNI plugin artifact.")
    parser.add_argument("artifact", type=Path, help="the built launcher (dist/bond)")
    parser.add_argument("dest_dir", type=Path, help="the CNI bin dir, e.g. /opt/cni/bin")
    parser.add_argument("--force", action="store_true",
                        help="replace a `bond` plugin that is not ours")
    args = parser.parse_args(argv)
    try:
        result = install(args.artifact, args.dest_dir, force=args.force)
    except InstallError as exc:
        print(f"bond install: {exc.msg}", file=sys.stderr)
        return exc.exit_code
    print(result.message)
    for path in result.removed:
        print(f"removed {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
