"""The wheel ships every package of the source tree: setuptools installs only those listed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"bondctl." + ".".join(p.parent.relative_to(ROOT / "bondctl").parts)
             for p in (ROOT / "bondctl").rglob("__init__.py")}
    found = {name.rstrip(".") for name in found} | {"bondctl.backends"}
    assert found <= listed, f"not shipped by pip install: {sorted(found - listed)}"
