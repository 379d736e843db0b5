"""Builds the self-contained `bond` CNI plugin for /opt/cni/bin: dist/bond + dist/.bond-runtime.

Layout (what `bondctl cni install` copies onto a node as-is):

    dist/bond                        static shim (bondctl/native/shim.c): the node agent when
                                     one listens, else the runtime (bondctl/native/launcher.c)
    dist/.bond-runtime -> .bond-runtime-DIGEST12
    dist/.bond-runtime-DIGEST12/
        manifest.json                artifact name, version, python, digest of everything else
        boot.py                      calls pyproject's `bond` console-script target
        bin/python, bin/python._pth  this build's interpreter; ._pth fixes sys.path exactly
        lib/ld.so -> ld-linux-*.so*  the build machine's glibc loader, libc, libpython, ...
        lib/python3.X/               stdlib (sources + unchecked-hash .pyc) and lib-dynload
        site/                        bondctl (core, cni, backends; no cli), pluggy, sh, dist-infos

Only the CNI path is bundled: bondctl.cli (typer, rich) stays out; sh is in for the iproute2
backend. The bondctl dist-info carries the `bondctl.backends` entry points, so the built-in
backends register inside the artifact exactly as in a pip install.

The build is skipped when dist/.bond-build-stamp matches the inputs (input_digest()).
Run through packaging/build-artifact.sh, with the project's .venv interpreter.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import py_compile
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

from bondctl.cni.install import (
    LAUNCHER_MARKER,
    MANIFEST_NAME,
    RUNTIME_LINK,
    RUNTIME_PREFIX,
    tree_digest,
)

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
# The C sources live in the package (bondctl.native) so a pip install can build the shim too.
LAUNCHER_SOURCE = REPO / "bondctl" / "native" / "launcher.c"
SHIM_SOURCE = REPO / "bondctl" / "native" / "shim.c"  # includes launcher.c: the direct path
# setns/unshare for the bundled Python 3.11 without ctypes: bondctl.netlink._nscalls
NSCALLS_SOURCE = REPO / "bondctl" / "native" / "nscalls.c"
STAMP_NAME = ".bond-build-stamp"
ARTIFACT_NAME = "bondctl-bond"
# bondctl.cli pulls typer and rich: neither the plugin nor the agent needs them. The agent's
# monitor (bondctl.observe) serves metrics with prometheus_client (pure Python, ~0.3 MB),
# imported only by the monitor's own process, never on the plugin's path.
EXCLUDED_PACKAGES = frozenset({"bondctl.cli", "bondctl.native"})
BUNDLED_DISTS = ("pluggy", "sh", "prometheus_client")
# Stdlib parts a CNI plugin never imports; everything else stays, since lazily imported
# modules (traceback on an error path, for one) are hard to enumerate and cheap to carry.
STDLIB_EXCLUDED_DIRS = frozenset({
    "site-packages", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip",
    "lib2to3", "distutils", "pydoc_data", "venv", "__pycache__", "__phello__",
})
STDLIB_EXCLUDED_PREFIXES = ("config-",)
DYNLOAD_EXCLUDED = re.compile(
    r"^(_test|_ctypes_test|_tkinter|_curses|readline|nis|spwd|ossaudiodev|xxlimited|_xx)")


def pyproject() -> dict[str, object]:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def bundled_packages(project: dict[str, object]) -> dict[str, Path]:
    """Package name -> source dir, from pyproject's setuptools packages and package-dir."""
    tool = project["tool"]["setuptools"]  # type: ignore[index]
    mapping: dict[str, str] = tool.get("package-dir", {})
    out: dict[str, Path] = {}
    for package in tool["packages"]:
        if package in EXCLUDED_PACKAGES:
            continue
        out[package] = REPO / mapping.get(package, package.replace(".", "/"))
    return out


def input_files(project: dict[str, object]) -> list[Path]:
    # The installer this recipe imports (bondctl.cni.install) is among the bundled sources.
    files = [REPO / "pyproject.toml", LAUNCHER_SOURCE, SHIM_SOURCE, NSCALLS_SOURCE,
             Path(__file__).resolve()]
    for src in bundled_packages(project).values():
        files += sorted(src.glob("*.py"))
    return files


def input_digest() -> str:
    """What the artifact is built from: sources, build recipe, interpreter and bundled dists."""
    project = pyproject()
    h = hashlib.sha256()
    for path in input_files(project):
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(f"{sys.version}\0{platform.machine()}\0".encode())
    for name in BUNDLED_DISTS:
        h.update(f"{name}=={importlib.metadata.version(name)}\0".encode())
    return h.hexdigest()


def shared_libraries(binary: Path) -> tuple[dict[str, Path], Path | None]:
    """ldd's view of `binary`: soname -> resolved file, and the ELF loader if it names one."""
    out = subprocess.run(["ldd", str(binary)], check=True, capture_output=True, text=True).stdout
    libs: dict[str, Path] = {}
    loader: Path | None = None
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            target = rest.strip().split(" (")[0]
            if not target.startswith("/"):
                raise SystemExit(f"build: {binary}: {name.strip()} not found ({line})")
            libs[name.strip()] = Path(target)
        elif line.startswith("/"):
            loader = Path(line.split(" (")[0])
    return libs, loader


def copy_stdlib(stdlib: Path, dest: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = sorted(d for d in dirnames if d not in STDLIB_EXCLUDED_DIRS
                             and not d.startswith(STDLIB_EXCLUDED_PREFIXES)
                             and d != "lib-dynload")
        rel = Path(dirpath).relative_to(stdlib)
        for name in sorted(filenames):
            if name.endswith(".py"):
                (dest / rel).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(dirpath) / name, dest / rel / name)


def copy_dynload(stdlib: Path, dest: Path) -> list[Path]:
    src = stdlib / "lib-dynload"
    dest.mkdir(parents=True)
    copied = []
    for path in sorted(src.glob("*.so")):
        if not DYNLOAD_EXCLUDED.match(path.name):
            shutil.copy2(path, dest / path.name)
            copied.append(path)
    return copied


def strip_debug_info(binaries: list[Path]) -> None:
    """Debug sections are most of libpython's size and never read at run time."""
    strip = shutil.which("strip")
    real = [str(p) for p in binaries if not p.is_symlink()]
    if strip and real:
        subprocess.run([strip, "--strip-debug", *real], check=True)


def copy_site(project: dict[str, object], site: Path) -> None:
    for package, src in bundled_packages(project).items():
        dest = site / package.replace(".", "/")
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(src.glob("*.py")):
            shutil.copyfile(path, dest / path.name)
    package_data = project["tool"]["setuptools"].get("package-data", {})  # type: ignore[index]
    for package, patterns in package_data.items():
        src = bundled_packages(project).get(package)
        for pattern in patterns if src else ():
            for path in src.glob(pattern):  # type: ignore[union-attr]
                shutil.copyfile(path, site / package.replace(".", "/") / path.name)
    write_dist_info(project, site)
    for name in BUNDLED_DISTS:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            if "__pycache__" in file.parts or file.suffix == ".pyc" or file.parts[0] == "..":
                continue
            src = Path(str(dist.locate_file(file)))
            if file.name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                continue
            (site / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, site / file)


def write_dist_info(project: dict[str, object], site: Path) -> None:
    """bondctl's dist-info: what bondctl.entrypoints reads to register the built-in backends."""
    meta = project["project"]  # type: ignore[index]
    info = site / f"{meta['name']}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
        f"Summary: {meta['description']}\n")
    lines = ["[console_scripts]"] + [f"{k} = {v}" for k, v in meta["scripts"].items()
                                     if k == "bond"]
    for group, eps in meta.get("entry-points", {}).items():
        lines += ["", f"[{group}]"] + [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (info / "INSTALLER").write_text("bondctl packaging/build_artifact.py\n")


def write_boot(project: dict[str, object], runtime: Path) -> None:
    target = project["project"]["scripts"]["bond"]  # type: ignore[index]
    module, _, func = target.partition(":")
    (runtime / "boot.py").write_text(
        '"""Started by the `bond` launcher (bondctl/native/launcher.c)."""\n'
        f"import sys\n\nfrom {module} import {func}\n\nsys.exit({func}())\n")


def compile_tree(root: Path) -> None:
    """Unchecked-hash .pyc next to the sources: no stat of the source, no writes, no staleness
    (the runtime is never edited in place), and tracebacks keep their source lines."""
    for path in sorted(root.rglob("*.py")):
        if path.name == "boot.py" and path.parent == root:
            continue
        py_compile.compile(str(path), doraise=True, quiet=1,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def build_launcher(dest: Path) -> None:
    compile_shim(SHIM_SOURCE, dest)


def compile_shim(source: Path, dest: Path) -> None:
    from bondctl.cni.runtime import compile_shim as build

    build(source, dest)
    if LAUNCHER_MARKER not in dest.read_bytes():
        raise SystemExit(f"build: {dest} lacks the marker {LAUNCHER_MARKER!r}")
    dest.chmod(0o755)


def build_nscalls(site: Path) -> None:
    """bondctl.netlink._nscalls, so the direct path enters namespaces without ctypes."""
    from bondctl.cni.runtime import compile_nscalls

    compile_nscalls(NSCALLS_SOURCE, site / "bondctl" / "netlink")


def build_runtime(project: dict[str, object], staging: Path) -> None:
    python = Path(os.path.realpath(sys._base_executable))  # the interpreter behind the venv
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    bindir, libdir = staging / "bin", staging / "lib"
    bindir.mkdir(parents=True)
    libdir.mkdir()
    shutil.copy2(python, bindir / "python")
    (bindir / "python._pth").write_text(
        f"../lib/{pyver}\n../lib/{pyver}/lib-dynload\n../site\n")
    copy_stdlib(stdlib, libdir / pyver)
    extensions = copy_dynload(stdlib, libdir / pyver / "lib-dynload")
    libs, loader = shared_libraries(python)
    if loader is None:
        raise SystemExit(f"build: {python}: no ELF loader in ldd's output")
    for binary in extensions:
        libs.update(shared_libraries(binary)[0])
    for soname, path in sorted(libs.items()):
        shutil.copy2(path, libdir / soname)
    shutil.copy2(loader, libdir / loader.name)
    (libdir / "ld.so").symlink_to(loader.name)
    strip_debug_info([bindir / "python", *libdir.glob("*.so*"),
                      *(libdir / pyver / "lib-dynload").glob("*.so")])
    copy_site(project, staging / "site")
    build_nscalls(staging / "site")
    write_boot(project, staging)
    compile_tree(staging)
    meta = project["project"]  # type: ignore[index]
    manifest = {
        "artifact": ARTIFACT_NAME,
        "version": meta["version"],
        "python": platform.python_version(),
        "machine": platform.machine(),
        "glibc": "-".join(platform.libc_ver()),
        "inputs": input_digest(),
        "digest": tree_digest(staging),
    }
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


def build(out: Path, *, force: bool = False) -> Path:
    stamp = out / STAMP_NAME
    want = input_digest()
    launcher = out / "bond"
    if (not force and stamp.is_file() and stamp.read_text().strip() == want
            and launcher.is_file() and (out / RUNTIME_LINK / MANIFEST_NAME).is_file()):
        print(f"build: {launcher} is up to date")
        return launcher
    project = pyproject()
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f"{RUNTIME_PREFIX}staging"
    shutil.rmtree(staging, ignore_errors=True)
    build_runtime(project, staging)
    digest = json.loads((staging / MANIFEST_NAME).read_text())["digest"]
    runtime = out / f"{RUNTIME_PREFIX}{digest[:12]}"
    shutil.rmtree(runtime, ignore_errors=True)
    staging.rename(runtime)
    link = out / RUNTIME_LINK
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(runtime.name)
    for old in out.glob(f"{RUNTIME_PREFIX}*"):
        if old != runtime and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
    build_launcher(launcher)
    stamp.write_text(want + "\n")
    size = sum(p.stat().st_size for p in runtime.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"build: {launcher} + {link} -> {runtime.name} ({size / 1e6:.1f} MB)")
    return launcher


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the self-contained bond CNI plugin.")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args()
    build(args.out.resolve(), force=args.force)


if __name__ == "__main__":
    main()
