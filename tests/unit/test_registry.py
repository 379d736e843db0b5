"""Backend discovery: entry points, in-process plugins, blocking, selection."""

import types

import pytest

from bondctl.backend import Availability
from bondctl.backends.iproute2 import Iproute2Backend
from bondctl.entrypoints import entry_points
from bondctl.errors import BackendUnavailableError, ValidationError
from bondctl.hookspecs import hookimpl
from bondctl.registry import Registry


class Fake(Iproute2Backend):
    name = "fake"
    priority = 99

    @classmethod
    def availability(cls):
        return Availability(True, "always")


def _plugin():
    module = types.ModuleType("fake_plugin")

    @hookimpl
    def bondctl_register_backends(register):
        register(Fake)

    module.bondctl_register_backends = bondctl_register_backends
    return module


def test_builtins_come_through_entry_points():
    names = {ep.name: ep for ep in entry_points("bondctl.backends")}
    assert names["iproute2"].value == "bondctl.backends.iproute2"
    info = Registry().backends()["iproute2"]
    assert info.cls is Iproute2Backend and "entry point iproute2" in info.origin


def test_entry_point_file_parsing(tmp_path):
    dist = tmp_path / "thing-1.2.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text(
        "[console_scripts]\nx = y:z\n\n[bondctl.backends]\nteam = bondctl_team.plugin\n")
    found = entry_points("bondctl.backends", [str(tmp_path)])
    assert [(e.name, e.value, e.dist, e.version) for e in found] == [
        ("team", "bondctl_team.plugin", "thing", "1.2")]


def test_in_process_plugin_is_selected_by_priority():
    registry = Registry([_plugin()])
    assert isinstance(registry.select(), Fake)
    assert registry.backends()["fake"].origin == "registered in-process"


def test_blocking_by_environment(monkeypatch):
    monkeypatch.setenv("BONDCTL_DISABLE_PLUGINS", "iproute2")
    assert "iproute2" not in Registry().backends()
    monkeypatch.delenv("BONDCTL_DISABLE_PLUGINS")
    monkeypatch.setenv("BONDCTL_PLUGINS", "nothing")
    assert Registry().backends() == {}


def test_unknown_backend_is_a_usage_error():
    with pytest.raises(ValidationError, match="no backend named 'nope'; installed"):
        Registry().select("nope")


def test_a_backend_that_did_not_load_is_unavailable_with_its_reason(monkeypatch):
    monkeypatch.setenv("BONDCTL_DISABLE_PLUGINS", "sysfs")
    with pytest.raises(BackendUnavailableError, match=r"sysfs: blocked by BONDCTL_DISABLE"):
        Registry().select("sysfs")


def test_no_backend_available_always_says_why(monkeypatch):
    """The empty `no backend is available here: ` of a shadowed source tree: every entry
    point failing to import must show up in the reason."""
    from bondctl import registry as registry_module
    from bondctl.entrypoints import EntryPoint

    broken = [EntryPoint("netlink", "bondctl.backends.no_such_module", "bondctl", "0")]
    monkeypatch.setattr(registry_module, "BUILTIN", {})  # the tree shadows the built-ins too
    monkeypatch.setattr(registry_module, "entry_points", lambda group: broken)
    with pytest.raises(BackendUnavailableError) as caught:
        Registry().select()
    assert "netlink: cannot load bondctl.backends.no_such_module: ModuleNotFoundError" in str(
        caught.value)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [])
    with pytest.raises(BackendUnavailableError, match="no backend is installed"):
        Registry().select()


def test_light_marker_matches_pluggys():
    import pluggy

    from bondctl import markers

    def a(register):
        pass

    def b(register):
        pass

    pluggy.HookimplMarker("bondctl")(a)
    markers.hookimpl(b)
    assert a.bondctl_impl == b.bondctl_impl


def test_builtin_order_is_their_priority_and_they_are_entry_points():
    """select()'s lean path takes BUILTIN's order as priority order and imports these modules
    directly: both must agree with the classes and with the entry points listing uses."""
    from bondctl import registry as registry_module

    classes = [registry_module.builtin(name) for name in registry_module.BUILTIN]
    assert [c.name for c in classes] == list(registry_module.BUILTIN)
    assert [c.priority for c in classes] == sorted((c.priority for c in classes), reverse=True)
    listed = Registry().backends()
    for cls in classes:
        assert listed[cls.name].cls is cls


def test_select_of_a_builtin_loads_no_pluggy():
    """Available or not (this host may lack bonding), a built-in named is imported alone."""
    import subprocess
    import sys

    code = ("import sys\nfrom bondctl.registry import Registry\n"
            "try:\n    Registry().select('netlink')\nexcept Exception:\n    pass\n"
            "print('pluggy' in sys.modules, 'bondctl.backends.sysfs' in sys.modules, "
            "'bondctl.backends.netlink' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}).stdout
    assert out.split() == ["False", "False", "True"]


def test_a_blocked_builtin_is_not_the_default(monkeypatch):
    monkeypatch.setenv("BONDCTL_DISABLE_PLUGINS", "netlink")
    try:
        assert Registry().select().name != "netlink"
    except BackendUnavailableError as exc:  # no bonding driver here: the reasons say so
        assert "netlink: blocked by BONDCTL_DISABLE_PLUGINS" in exc.msg
