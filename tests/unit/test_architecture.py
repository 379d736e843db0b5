"""The layers of docs/architecture.md, enforced: no import crosses a layer the wrong way.

Every import of every module is read from its source (ast), the lazy ones inside functions
and the TYPE_CHECKING ones included: a lazy import is still a dependency, only a later one.
A module may import its own layer and the layers below it. Layers are matched by module
prefix, so a new module inside a package (bondctl/cni/foo.py) is placed already; a new module
at the top of bondctl must be given a layer here and in docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Lowest first. A prefix matches the module itself and everything below it
# ("bondctl.cni" matches bondctl.cni and bondctl.cni.plugin); the longest match wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("netlink", ("bondctl.netlink",)),
    ("ground", ("bondctl.errors", "bondctl.names", "bondctl.record",
                "bondctl.kernel", "bondctl.netns", "bondctl.entrypoints", "bondctl.markers")),
    ("catalogue and model", ("bondctl.options", "bondctl.model", "bondctl.health",
                             "bondctl.ipconfig", "bondctl.document", "bondctl.formats")),
    ("backend contract", ("bondctl.steps", "bondctl.backend", "bondctl.links",
                          "bondctl.hostlinks", "bondctl.hookspecs", "bondctl.registry",
                          "bondctl.plugin")),
    ("backends", ("bondctl.backends",)),
    ("operations", ("bondctl.ops", "bondctl.reconcile")),
    ("CNI and observe", ("bondctl.cni", "bondctl.observe")),
    ("CLI", ("bondctl.cli",)),
]
CNI_NETLINK_ALLOWED = frozenset({"bondctl.cni.agent"})
# The public plugin API is all a third-party backend may import of bondctl.
PLUGIN_API = "bondctl.plugin"
GROUND = 1  # bondctl itself (bondctl/__init__.py: the version) stands on the ground floor
PACKAGE_DIRS = {"bondctl": REPO / "bondctl", "bondctl.backends": REPO / "backends"}


def layer_of(module: str) -> int | None:
    if module == "bondctl":
        return GROUND
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def module_files() -> dict[str, Path]:
    """bondctl's modules by dotted name (backends/ installs as bondctl.backends); a package
    by its own name, for its __init__.py."""
    found: dict[str, Path] = {}
    for package, root in PACKAGE_DIRS.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = module_files()


def imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every bondctl import in the file, relative ones resolved;
    `from PACKAGE import name` counts as PACKAGE.name when that is a module."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                yield node.lineno, candidate if candidate in MODULES else source


def bondctl_imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    for line, target in imports(path, module):
        if target == "bondctl" or target.startswith("bondctl."):
            yield line, target


def own_modules() -> list[tuple[str, Path]]:
    return sorted(MODULES.items())


def test_every_module_has_a_layer() -> None:
    unplaced = [name for name, _ in own_modules() if layer_of(name) is None]
    assert unplaced == [], (
        f"modules in no layer: {unplaced}; give each one in LAYERS here and in the picture "
        "of docs/architecture.md")


def test_no_import_goes_up_a_layer() -> None:
    wrong = []
    for name, path in own_modules():
        own = layer_of(name)
        if own is None:
            continue
        for line, target in bondctl_imports(path, name):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {name} ({LAYERS[own][0]}) "
                             f"imports {target} ({LAYERS[theirs][0]})")
    assert wrong == [], "imports that cross a layer the wrong way:\n" + "\n".join(wrong)


def test_every_bondctl_import_names_a_module() -> None:
    """A relative import left one level off by a move fails here, not in a lazy path."""
    missing = []
    for name, path in own_modules():
        for line, target in bondctl_imports(path, name):
            if target not in MODULES:
                missing.append(f"{path.relative_to(REPO)}:{line}: {target}")
    assert missing == []


def test_netlink_imports_nothing_else_of_bondctl() -> None:
    wrong = [f"{path.relative_to(REPO)}:{line}: {target}"
             for name, path in own_modules() if layer_of(name) == 0
             for line, target in bondctl_imports(path, name)
             if layer_of(target) != 0]
    assert wrong == []


def test_the_cni_reaches_the_kernel_only_through_the_contract() -> None:
    """bondctl.cni uses links.Links and ops.Bonds; only the agent, which enters its caller's
    namespace, may import bondctl.netlink."""
    wrong = [f"{path.relative_to(REPO)}:{line}: {target}"
             for name, path in own_modules()
             if name.startswith("bondctl.cni") and name not in CNI_NETLINK_ALLOWED
             for line, target in bondctl_imports(path, name)
             if layer_of(target) == 0]
    assert wrong == []


@pytest.mark.parametrize("plugin", sorted(p.parent for p in REPO.glob("plugins/*/pyproject.toml")),
                         ids=lambda p: p.name)
def test_plugins_import_only_the_public_api(plugin: Path) -> None:
    wrong = []
    for path in sorted(plugin.rglob("*.py")):
        if "build" in path.relative_to(plugin).parts:
            continue
        for line, target in bondctl_imports(path, "plugin." + path.stem):
            if target != PLUGIN_API:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {target}")
    assert wrong == [], f"a plugin imports bondctl only through {PLUGIN_API}"


def test_the_picture_names_every_layer() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    for name, prefixes in LAYERS:
        assert name in text, name
        for prefix in prefixes:
            shown = prefix.removeprefix("bondctl.")
            assert shown in text, f"docs/architecture.md does not show {prefix}"
