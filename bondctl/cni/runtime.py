"""The `bond` plugin made from this installed bondctl, for `bondctl cni install` without a
clone (pip or pipx): no compiler, no build step, nothing downloaded.

The artifact of packaging/build_artifact.py carries its own interpreter and glibc, for nodes
without Python. Here, the host that installs already has one: the runtime is the CNI path of
this installation (the bondctl core, bondctl.cni, the built-in backends, pluggy and sh, with
bondctl's entry points), copied next to the plugin with unchecked-hash .pyc, and the launcher
is a script that starts this interpreter, isolated:

    DEST/bond                     #!/usr/bin/python3.X -ISB, carrying LAUNCHER_MARKER
    DEST/.bond-runtime -> .bond-runtime-DIGEST12
    DEST/.bond-runtime-DIGEST12/  manifest.json, site/ (what sys.path gets, and nothing else)

`-I -S` keep PYTHON* variables, user and site packages out, `-B` writes nothing. The copy
makes the plugin independent of the virtualenv it came from: upgrading or removing it does not
change what runtimes call; only the interpreter itself is shared. The same installer
(bondctl.cni.install.install_pair) puts it in place: atomically, idempotently, refusing a
foreign `bond` without force.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import __version__
from .install import ARTIFACT_NAME, LAUNCHER_MARKER, MANIFEST_NAME, InstallError, tree_digest

# typer and rich (cli): neither the plugin nor the agent needs them. prometheus_client goes
# along for the agent's monitor (bondctl.observe), which alone imports it.
EXCLUDED = frozenset({"cli", "native", "__pycache__"})
BUNDLED = ("pluggy", "sh", "prometheus_client")
SHEBANG_MAX = 127  # what every Linux kernel reads of a #! line

LAUNCHER = '''#!{python} -ISB
# {marker}: the bond CNI plugin, installed by `bondctl cni install` from bondctl {version}.
# It runs the runtime the .bond-runtime symlink next to it names, resolved once here.
import os
import sys

runtime = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        ".bond-runtime"))
if not os.path.isdir(os.path.join(runtime, "site")):
    sys.stdout.write('{{"cniVersion": "1.1.0", "code": 100, "msg": "bond: runtime missing", '
                     '"details": "%s (reinstall the plugin: bondctl cni install)"}}\\n' % runtime)
    sys.exit(1)
sys.path.insert(0, os.path.join(runtime, "site"))
from bondctl.cni.__main__ import main  # noqa: E402

sys.exit(main())
'''


BOOT = '''#!{python} -ISB
# The bond CNI plugin's runtime from bondctl {version}: what the native shim (or the script
# launcher) starts for the direct path. sys.path is site/ next to this file, and the stdlib.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "site"))
from bondctl.cni.__main__ import main  # noqa: E402

sys.exit(main())
'''


def c_compiler() -> str:
    """$CC, else cc or gcc on PATH; InstallError when there is none."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise InstallError("no C compiler (cc, or $CC)")
    return cc


def compile_shim(source: Path, dest: Path) -> None:
    """The static native `bond` from shim.c (which includes launcher.c next to it); raises
    InstallError when there is no C compiler with a static libc, or it fails."""
    cc = c_compiler()
    done = subprocess.run([cc, "-static", "-Os", "-Wall", "-Wextra", "-Werror", "-s",
                           f"-I{source.parent}", "-o", str(dest), str(source)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise InstallError(f"building the native bond shim with {cc} failed: "
                           f"{(done.stderr.strip().splitlines() or [''])[-1]}")
    if LAUNCHER_MARKER not in dest.read_bytes():
        raise InstallError(f"{dest} lacks the marker {LAUNCHER_MARKER!r}")
    dest.chmod(0o755)


def compile_nscalls(source: Path, package: Path) -> None:
    """bondctl.netlink._nscalls (setns and unshare for Python 3.11: bondctl/native/nscalls.c)
    for this interpreter, into `package` (a bondctl/netlink directory); nothing on Python 3.12+,
    which has os.setns. InstallError when it cannot be built here."""
    if hasattr(os, "setns"):
        return
    import sysconfig

    include = sysconfig.get_paths()["include"]
    if not os.path.isfile(os.path.join(include, "Python.h")):
        raise InstallError(f"no Python.h in {include} (the python3-dev package)")
    dest = package / f"_nscalls{sysconfig.get_config_var('EXT_SUFFIX')}"
    done = subprocess.run([c_compiler(), "-shared", "-fPIC", "-O2", "-s", "-Wall", "-Wextra",
                           "-Werror", f"-I{include}", "-o", str(dest), str(source)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise InstallError(f"building {source.name} failed: "
                           f"{(done.stderr.strip().splitlines() or [''])[-1]}")


def native_nscalls(site: Path) -> None:
    """The C helper in the runtime's bondctl, or (saying why, on stderr) ctypes instead."""
    try:
        compile_nscalls(_package_dir("bondctl.native") / "nscalls.c",
                        site / "bondctl" / "netlink")
    except InstallError as exc:
        print(f"bondctl cni install: {exc.msg}; the plugin enters namespaces through ctypes "
              "instead (about 2 ms more a command)", file=sys.stderr)


def native_shim(workdir: Path) -> bytes | None:
    """The native shim built from the installed package's sources, or None (and why, on
    stderr) when it cannot be built here."""
    try:
        source = _package_dir("bondctl.native") / "shim.c"
        if not source.is_file():
            raise InstallError(f"{source} is missing from this installation")
        compile_shim(source, workdir / "bond")
    except InstallError as exc:
        print(f"bondctl cni install: {exc.msg}; installing the script launcher instead "
              "(direct mode only: no node agent)", file=sys.stderr)
        return None
    return (workdir / "bond").read_bytes()


def interpreter() -> str:
    """The real interpreter behind this installation (a virtualenv's base python): the
    runtime brings its own packages, so it needs the interpreter and its stdlib only."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def launcher(python: str) -> bytes:
    if any(c.isspace() for c in python) or len(python) + 8 > SHEBANG_MAX:
        raise InstallError(f"the interpreter path {python!r} cannot go on a #! line (spaces, or "
                           f"longer than {SHEBANG_MAX - 8} characters)")
    return LAUNCHER.format(python=python, marker=LAUNCHER_MARKER.decode(),
                           version=__version__).encode()


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise InstallError(f"cannot find the installed package {name}")
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_package(src: Path, dest: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED)
        rel = Path(dirpath).relative_to(src)
        for name in sorted(filenames):
            if name.endswith(".py") or name == "py.typed":
                (dest / rel).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(dirpath) / name, dest / rel / name)


def _copy_module(name: str, site: Path) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise InstallError(f"cannot find the installed module {name}")
    if spec.submodule_search_locations:
        _copy_package(Path(spec.origin).parent, site / name)
    else:
        shutil.copyfile(spec.origin, site / Path(spec.origin).name)


def _write_dist_info(site: Path) -> None:
    """bondctl's entry points, which bondctl.entrypoints reads to register the backends."""
    from ..entrypoints import BACKENDS_GROUP, entry_points

    ours = [ep for ep in entry_points(BACKENDS_GROUP) if ep.dist.lower() == "bondctl"]
    if not ours:
        raise InstallError("this bondctl has no `bondctl.backends` entry points: is it "
                           "installed (pip install), not just on sys.path?")
    info = site / f"bondctl-{__version__}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bondctl\n"
                                   f"Version: {__version__}\n")
    lines = ["[bondctl.backends]"] + [f"{ep.name} = {ep.value}" for ep in ours]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


# Run by the target interpreter: with a fixed hash seed and fixed source names, the same
# sources give the same bytes, so the runtime's digest (its name) is stable across installs.
_COMPILE = """
import pathlib, py_compile, sys
root = pathlib.Path(sys.argv[1])
for path in sorted(root.rglob("*.py")):
    py_compile.compile(str(path), dfile=str(path.relative_to(root)), doraise=True, quiet=1,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def _compile(site: Path, python: str) -> None:
    done = subprocess.run([python, "-S", "-c", _COMPILE, str(site)], capture_output=True,
                          text=True, env={"PYTHONHASHSEED": "0"}, check=False)
    if done.returncode:
        raise InstallError(f"compiling the runtime with {python} failed: "
                           f"{done.stderr.strip().splitlines()[-1:] or done.returncode}")


@contextmanager
def built() -> Iterator[tuple[bytes, Path, dict[str, Any]]]:
    """(launcher bytes, runtime dir, manifest) made from this installation, in a temporary
    directory that is removed afterwards."""
    python = interpreter()
    script = launcher(python)
    with tempfile.TemporaryDirectory(prefix="bondctl-runtime-") as tmp:
        runtime = Path(tmp) / "runtime"
        site = runtime / "site"
        site.mkdir(parents=True)
        boot = runtime / "boot"
        boot.write_text(BOOT.format(python=python, version=__version__))
        boot.chmod(0o755)
        plugin = native_shim(Path(tmp)) or script
        _copy_package(_package_dir("bondctl"), site / "bondctl")
        # bondctl.backends may live elsewhere (an editable install maps it to backends/)
        _copy_package(_package_dir("bondctl.backends"), site / "bondctl" / "backends")
        native_nscalls(site)
        for name in BUNDLED:
            _copy_module(name, site)
        _write_dist_info(site)
        _compile(site, python)
        manifest = {
            "artifact": ARTIFACT_NAME,
            "version": __version__,
            "python": python,
            "built_from": "the installed bondctl package (bondctl.cni.runtime)",
            "digest": tree_digest(runtime),
        }
        (runtime / MANIFEST_NAME).write_text(_json(manifest))
        yield plugin, runtime, manifest


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, indent=2) + "\n"
