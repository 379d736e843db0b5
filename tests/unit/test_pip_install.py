"""bondctl as a pip or pipx user has it: `pip install .` into a fresh virtualenv (offline, from
.cache/wheels), used from outside any clone, and the demo started from inside one.

Slow (a virtualenv and a wheel build, then a User-Mode Linux boot for the demo): the
virtualenv is made once for the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".cache" / "wheels"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BONDCTL_", "PYTHON", "VIRTUAL_ENV", "CNI_"))}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _run(argv: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False,
                          **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not list(WHEELS.glob("setuptools-*.whl")):
        pytest.fail(f"no setuptools wheel in {WHEELS}: run `bash scripts/plugins.sh`")
    path = tmp_path_factory.mktemp("pip-venv")
    _run([sys.executable, "-m", "venv", "--without-pip", path], env=_env())
    # `pip install .`, offline: the build backend and the dependencies come from the cache.
    _run([sys.executable, "-m", "pip", "--python", path / "bin" / "python", "install", "-q",
          "--no-index", "--find-links", WHEELS, ROOT], env=_env(), cwd=ROOT)
    return path


def test_cni_install_from_a_pip_install_without_a_clone(venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dest = tmp_path / "cni" / "bin"
    bondctl = venv / "bin" / "bondctl"
    # no clone anywhere near: the installed package is all there is
    where = _run([venv / "bin" / "python", "-c", "import bondctl; print(bondctl.__file__)"],
                 cwd=elsewhere, env=_env()).stdout
    assert where.startswith(str(venv)), where

    first = _run([bondctl, "cni", "install", "--dir", dest], cwd=elsewhere, env=_env())
    assert first.stdout.startswith("installed bond 0.1.0 (runtime "), first.stdout
    again = _run([bondctl, "cni", "install", "--dir", dest], cwd=elsewhere, env=_env())
    assert again.stdout.endswith("already installed, nothing changed\n")

    # what a container runtime does: no environment at all, not even PATH
    version = subprocess.run(["env", "-i", "CNI_COMMAND=VERSION", str(dest / "bond")],
                             capture_output=True, text=True, check=False, cwd="/")
    assert version.returncode == 0, version.stderr
    assert "1.1.0" in json.loads(version.stdout)["supportedVersions"]

    # the runtime is a copy: the virtualenv can go without breaking the node's plugin, and its
    # built-in backends register from the copied entry points
    runtime = (dest / ".bond-runtime").resolve()
    assert not str(runtime).startswith(str(venv))
    # the plugin is the native shim (this host has a C compiler), its direct path `boot`
    assert (dest / "bond").read_bytes()[:4] == b"\x7fELF"
    python = (runtime / "boot").read_text().splitlines()[0].removeprefix("#!").split()[0]
    listed = _run(["env", "-i", python, "-ISB", "-c",
                   f"import sys; sys.path.insert(0, {str(runtime / 'site')!r}); "
                   "import bondctl, json; from bondctl.registry import Registry; "
                   "from bondctl.netlink.ns import native; "
                   "print(json.dumps([bondctl.__file__, sorted(Registry().backends()), "
                   "native().__name__]))"],
                  cwd="/")
    origin, backends, setns_from = json.loads(listed.stdout)
    assert origin.startswith(str(runtime))
    assert backends == ["iproute2", "netlink", "sysfs"]
    # and its C helper for setns (Python 3.11 has no os.setns; ctypes costs more)
    assert setns_from == ("os" if sys.version_info >= (3, 12) else "bondctl.netlink._nscalls")

    # a foreign `bond` is refused with the documented code, and left as it was
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "bond").write_bytes(b"\x7fELF bond-cni's Go binary")
    refused = subprocess.run([str(bondctl), "cni", "install", "--dir", str(foreign)],
                             capture_output=True, text=True, check=False, env=_env())
    assert refused.returncode == 2
    assert refused.stderr.startswith("bondctl: error: ") and refused.stderr.count("\n") == 1
    assert (foreign / "bond").read_bytes() == b"\x7fELF bond-cni's Go binary"
    forced = _run([bondctl, "cni", "install", "--dir", foreign, "--force"], env=_env())
    assert "over a foreign bond plugin" in forced.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the demo makes namespaces: it needs root")
def test_demo_started_from_inside_a_clone(venv: Path) -> None:
    """From the clone's top directory the source tree (without bondctl.backends) must not
    shadow the installed package inside the guest (it did: `no backend is available here: `).
    On this kernel without bonding, the demo boots User-Mode Linux."""
    done = subprocess.run([str(venv / "bin" / "bondctl"), "demo", "--pace", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=_env(), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing is left behind" in done.stdout
    assert "backend netlink" in done.stdout
