"""bondctl.cni.install: atomic, idempotent installation of the bond artifact into a bin dir.

The artifacts here are small real trees in the layout packaging/build_artifact.py writes (a
launcher carrying the marker, a runtime with its manifest), so install() runs for real on
real files; only their contents are tiny.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from bondctl.cni import install as cni_install
from bondctl.cni.install import (
    ARTIFACT_NAME,
    LAUNCHER_MARKER,
    MANIFEST_NAME,
    RUNTIME_LINK,
    ForeignPluginError,
    InstallError,
    install,
    tree_digest,
)


def make_artifact(root: Path, payload: str = "one", launcher_size: int = 4096) -> Path:
    """dist-like tree: root/bond + root/.bond-runtime -> .bond-runtime-DIGEST12."""
    staging = root / ".bond-runtime-staging"
    (staging / "bin").mkdir(parents=True)
    (staging / "lib").mkdir()
    (staging / "bin" / "python").write_bytes(b"\x7fELF interpreter " + payload.encode())
    (staging / "bin" / "python").chmod(0o755)
    (staging / "lib" / "ld-linux-x86-64.so.2").write_bytes(b"loader")
    (staging / "lib" / "ld.so").symlink_to("ld-linux-x86-64.so.2")
    (staging / "boot.py").write_text(f"# {payload}\n")
    digest = tree_digest(staging)
    manifest = {"artifact": ARTIFACT_NAME, "version": "0.1.0", "digest": digest}
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest))
    runtime = root / f".bond-runtime-{digest[:12]}"
    staging.rename(runtime)
    (root / RUNTIME_LINK).symlink_to(runtime.name)
    body = (b"\x7fELF launcher " + LAUNCHER_MARKER + payload.encode()).ljust(launcher_size, b"x")
    (root / "bond").write_bytes(body)
    (root / "bond").chmod(0o755)
    return root / "bond"


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return make_artifact(tmp_path / "dist")


def listing(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()} - {cni_install.LOCK_NAME}


def test_fresh_install(artifact: Path, tmp_path: Path) -> None:
    dest = tmp_path / "opt" / "cni" / "bin"
    result = install(artifact, dest)
    assert result.changed and not result.replaced_foreign
    plugin = dest / "bond"
    assert plugin.read_bytes() == artifact.read_bytes()
    assert plugin.stat().st_mode & 0o777 == 0o755
    link = dest / RUNTIME_LINK
    assert link.is_symlink() and os.readlink(link) == result.runtime.name
    assert tree_digest(link.resolve()) == result.digest
    assert (link / "lib" / "ld.so").is_symlink()
    assert listing(dest) == {"bond", RUNTIME_LINK, result.runtime.name}
    assert "installed bond 0.1.0" in result.message


def test_reinstall_same_artifact_changes_nothing(artifact: Path, tmp_path: Path) -> None:
    dest = tmp_path / "bin"
    first = install(artifact, dest)
    before = {p.name: p.lstat().st_mtime_ns for p in dest.iterdir()}
    inode = (dest / "bond").stat().st_ino
    again = install(artifact, dest)
    assert not again.changed
    assert "already installed, nothing changed" in again.message
    assert again.runtime == first.runtime
    assert (dest / "bond").stat().st_ino == inode
    assert {p.name: p.lstat().st_mtime_ns for p in dest.iterdir()} == before


def test_upgrade_swaps_runtime_and_keeps_previous_one(tmp_path: Path) -> None:
    dest = tmp_path / "bin"
    v1 = install(make_artifact(tmp_path / "a", "one"), dest)
    v2 = install(make_artifact(tmp_path / "b", "two"), dest)
    assert v2.changed and v2.runtime != v1.runtime
    assert os.readlink(dest / RUNTIME_LINK) == v2.runtime.name
    assert b"two" in (dest / "bond").read_bytes()
    assert v1.runtime.is_dir(), "a call in flight may still run from the previous runtime"
    v3 = install(make_artifact(tmp_path / "c", "three"), dest)
    assert not v1.runtime.exists() and v1.runtime in v3.removed
    assert listing(dest) == {"bond", RUNTIME_LINK, v2.runtime.name, v3.runtime.name}


def test_refuses_foreign_bond(artifact: Path, tmp_path: Path) -> None:
    dest = tmp_path / "bin"
    dest.mkdir()
    foreign = b"\x7fELF Go bond-cni " * 100
    (dest / "bond").write_bytes(foreign)
    (dest / "bond").chmod(0o755)
    with pytest.raises(ForeignPluginError, match="not bondctl's bond plugin"):
        install(artifact, dest)
    assert (dest / "bond").read_bytes() == foreign
    assert listing(dest) == {"bond"}, "a refusal leaves nothing behind"


def test_force_replaces_foreign_bond(artifact: Path, tmp_path: Path) -> None:
    dest = tmp_path / "bin"
    dest.mkdir()
    (dest / "bond").write_bytes(b"\x7fELF Go bond-cni")
    result = install(artifact, dest, force=True)
    assert result.changed and result.replaced_foreign
    assert (dest / "bond").read_bytes() == artifact.read_bytes()
    assert "over a foreign bond plugin" in result.message


def test_foreign_runtime_dir_is_not_replaced_without_force(artifact: Path,
                                                          tmp_path: Path) -> None:
    dest = tmp_path / "bin"
    (dest / RUNTIME_LINK).mkdir(parents=True)
    (dest / RUNTIME_LINK / "someone-elses").write_text("x")
    with pytest.raises(ForeignPluginError):
        install(artifact, dest)
    assert (dest / RUNTIME_LINK / "someone-elses").exists()
    assert install(artifact, dest, force=True).changed
    assert (dest / RUNTIME_LINK).is_symlink()


def test_rejects_artifact_without_marker(artifact: Path, tmp_path: Path) -> None:
    artifact.write_bytes(b"#!/bin/sh\necho hi\n")
    with pytest.raises(InstallError, match="no marker"):
        install(artifact, tmp_path / "bin")


def test_rejects_runtime_not_matching_its_manifest(artifact: Path, tmp_path: Path) -> None:
    (artifact.parent / RUNTIME_LINK / "boot.py").write_text("# tampered\n")
    with pytest.raises(InstallError, match="do not match its manifest"):
        install(artifact, tmp_path / "bin")
    assert not (tmp_path / "bin" / "bond").exists()


def test_failed_write_leaves_previous_plugin_and_no_temporaries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "bin"
    v1 = install(make_artifact(tmp_path / "a", "one"), dest)
    old = (dest / "bond").read_bytes()
    real_fsync = os.fsync

    def disk_full(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(dest / ".bond.tmp-")):
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(cni_install.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        install(make_artifact(tmp_path / "b", "two"), dest)
    assert (dest / "bond").read_bytes() == old
    assert os.readlink(dest / RUNTIME_LINK) == v1.runtime.name, "the runtime link is rolled back"
    assert listing(dest) == {"bond", RUNTIME_LINK, v1.runtime.name}, "no temporaries left"
    monkeypatch.undo()
    assert install(make_artifact(tmp_path / "c", "three"), dest).changed
    assert b"three" in (dest / "bond").read_bytes()


def test_failed_runtime_copy_leaves_destination_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "bin"
    install(make_artifact(tmp_path / "a", "one"), dest)
    before = {p.name: os.readlink(p) if p.is_symlink() else p.read_bytes()
              for p in dest.iterdir() if p.name != cni_install.LOCK_NAME and not p.is_dir()}
    dirs_before = listing(dest)

    def broken_copy(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(cni_install.shutil, "copytree", broken_copy)
    with pytest.raises(OSError, match="Input/output"):
        install(make_artifact(tmp_path / "b", "two"), dest)
    assert listing(dest) == dirs_before
    after = {p.name: os.readlink(p) if p.is_symlink() else p.read_bytes()
             for p in dest.iterdir() if p.name != cni_install.LOCK_NAME and not p.is_dir()}
    assert after == before


def test_leftovers_of_a_killed_install_are_removed(artifact: Path, tmp_path: Path) -> None:
    dest = tmp_path / "bin"
    dest.mkdir()
    (dest / ".bond.tmp-abc123").write_bytes(b"half a launch")
    (dest / ".bond-runtime-0123456789ab.tmp-xyz").mkdir()
    result = install(artifact, dest)
    assert listing(dest) == {"bond", RUNTIME_LINK, result.runtime.name}


def test_reader_only_ever_sees_complete_plugins(tmp_path: Path) -> None:
    """While installs alternate between two artifacts, every read of DEST/bond returns one of
    the two launchers whole, and the runtime link always resolves to a complete runtime."""
    dest = tmp_path / "bin"
    artifacts = [make_artifact(tmp_path / n, n, launcher_size=1 << 20) for n in ("one", "two")]
    contents = {a.read_bytes() for a in artifacts}
    install(artifacts[0], dest)
    stop = threading.Event()
    seen: list[bytes] = []
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            data = (dest / "bond").read_bytes()
            if data not in contents:
                bad.append(f"partial launcher of {len(data)} bytes")
            seen.append(data[:64])
            runtime = (dest / RUNTIME_LINK).resolve()
            if not (runtime / MANIFEST_NAME).is_file():
                bad.append(f"runtime link points at an incomplete {runtime.name}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            install(artifacts[i % 2], dest)
    finally:
        stop.set()
        thread.join()
    assert not bad, bad[:3]
    assert len(set(seen)) == 2, "the reader saw both versions"
