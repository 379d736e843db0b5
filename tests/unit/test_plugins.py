"""Third-party backends, end to end: the example plugin (plugins/bondctl-pyroute2) installed
from wheels into a fresh virtualenv, offline, next to bondctl, as a user would install it.

Everything runs in that virtualenv, in subprocesses: discovery through the entry point,
selection, BONDCTL_PLUGINS / BONDCTL_DISABLE_PLUGINS, the light import, the option set against
pyroute2's own tables, the bytes pyroute2 puts on the wire for each option, and the decoding of
a dump. No bonding driver is needed (the kernel side is tests/kernel/test_conformance.py and
tests/kernel/test_plugin_backend.py).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.unit.helpers import state_dict

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "bondctl-pyroute2"
WHEELS = ROOT / ".cache" / "wheels"
HOW_TO_FIX = "run `bash scripts/plugins.sh` (it fills .cache/wheels; the tests have no network)"
# pyroute2 0.9's bond and bond-slave tables stop short of these (newer kernel attributes).
NOT_IN_PYROUTE2 = {"peer_notif_delay", "lacp_active", "arp_missed_max", "ns_ip6_target",
                   "coupled_control"}


def _newest_source(*trees: Path) -> float:
    newest = 0.0
    for tree in trees:
        files = [tree] if tree.is_file() else [
            p for p in tree.rglob("*") if p.suffix in (".py", ".toml", ".md") and
            "build" not in p.parts and not any(s.endswith(".egg-info") for s in p.parts)]
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def _fresh(prefix: str, *sources: Path) -> bool:
    wheels = list(WHEELS.glob(f"{prefix}-*.whl"))
    return bool(wheels) and min(w.stat().st_mtime for w in wheels) >= _newest_source(*sources)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BONDCTL_", "PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _run(argv: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False,
                          **kwargs)
    if done.returncode:
        pytest.fail(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr}")
    return done


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / "bin"

    def python(self, code: str, **env: str) -> Any:
        """Run `code` in the venv; it prints one JSON document, returned decoded."""
        done = _run([self.bin / "python", "-c", textwrap.dedent(code)], env=_clean_env(**env),
                    cwd=self.path)
        return json.loads(done.stdout)

    def backends(self, **env: str) -> dict[str, dict[str, Any]]:
        done = _run([self.bin / "bondctl", "backends", "--json"], env=_clean_env(**env),
                    cwd=self.path)
        data = json.loads(done.stdout)
        return {b["name"]: b for b in data["backends"]} | {"_errors": data["load_errors"]}


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    for needed in ("pyroute2", "setuptools", "pluggy"):
        if not list(WHEELS.glob(f"{needed}-*.whl")):
            pytest.fail(f"no {needed} wheel in {WHEELS}: {HOW_TO_FIX}")
    # bondctl's and the plugin's own wheels are rebuilt (offline) when their sources changed
    # since scripts/plugins.sh built them: the test always exercises the tree it runs in.
    projects = {"bondctl": (ROOT, (ROOT / "bondctl", ROOT / "backends", ROOT / "pyproject.toml")),
                "bondctl_pyroute2": (PLUGIN, (PLUGIN,))}
    for prefix, (project, trees) in projects.items():
        if _fresh(prefix, *trees):
            continue
        # built beside the cache, then renamed in: a parallel run sees the old or the new one
        built = Path(tempfile.mkdtemp(prefix=".build-", dir=WHEELS.parent))
        try:
            _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                  "--find-links", WHEELS, "--wheel-dir", built, project], env=_clean_env())
            for wheel in built.glob("*.whl"):
                os.replace(wheel, WHEELS / wheel.name)
        finally:
            shutil.rmtree(built, ignore_errors=True)
    path = tmp_path_factory.mktemp("plugin-venv")
    # No pip inside (ensurepip costs seconds): this interpreter's pip installs into it.
    _run([sys.executable, "-m", "venv", "--without-pip", path], env=_clean_env())
    venv = Venv(path)
    _run([sys.executable, "-m", "pip", "--python", venv.bin / "python", "install", "-q",
          "--no-index", "--find-links", WHEELS, "bondctl", "bondctl-pyroute2"], env=_clean_env())
    return venv


def _plugin_version() -> str:
    with (PLUGIN / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


# -- discovery, selection, blocking -----------------------------------------------------------
def test_registry_lists_the_plugin_with_its_origin(venv: Venv) -> None:
    listed = venv.backends()
    assert listed["_errors"] == []
    plugin = listed["pyroute2"]
    assert plugin["origin"] == f"bondctl_pyroute2 {_plugin_version()} (entry point pyroute2)"
    assert listed["iproute2"]["origin"].endswith("(entry point iproute2)")
    assert "queue_id" in plugin["slave_options"] and "prio" not in plugin["slave_options"]
    # never picked by accident: below every built-in backend
    builtins = [b for name, b in listed.items() if name not in ("pyroute2", "_errors")]
    assert builtins and all(b["priority"] > plugin["priority"] for b in builtins)


def test_selected_by_name(venv: Venv) -> None:
    code = """
        import json
        from bondctl.errors import BackendUnavailableError
        from bondctl.registry import Registry

        def attempt(name=None):
            try:
                backend = Registry().select(name)
            except BackendUnavailableError as exc:
                return {"error": str(exc)}
            return {"selected": type(backend).__module__ + "." + type(backend).__name__}

        info = Registry().get("pyroute2")
        print(json.dumps({
            "cls": info.cls.__module__ + "." + info.cls.__name__,
            "availability": list(info.availability()),
            "by_argument": attempt("pyroute2"),
            "automatic": attempt(),
        }))
    """
    out = venv.python(code)
    by_env = venv.python(code, BONDCTL_BACKEND="pyroute2")["automatic"]
    assert out["cls"] == "bondctl_pyroute2.backend.Pyroute2Backend"
    ok, reason = out["availability"]
    if ok:  # a host with a bonding driver
        assert out["by_argument"] == by_env == {"selected": out["cls"]}
        assert out["automatic"] != {"selected": out["cls"]}
    else:  # this development machine: the bonding driver is missing
        assert reason == "the bonding driver is not loaded and cannot be loaded"
        assert out["by_argument"] == by_env == {
            "error": f"backend pyroute2 is not available: {reason}"}
        # automatic selection tries it last, after every built-in backend
        assert out["automatic"]["error"].rstrip().endswith(f"pyroute2: {reason}")


def test_disable_and_restrict_plugins(venv: Venv) -> None:
    assert "pyroute2" in venv.backends()
    hidden = venv.backends(BONDCTL_DISABLE_PLUGINS="pyroute2")
    assert "pyroute2" not in hidden and "iproute2" in hidden
    assert set(venv.backends(BONDCTL_PLUGINS="pyroute2")) == {"pyroute2", "_errors"}
    assert set(venv.backends(BONDCTL_PLUGINS="iproute2,pyroute2")) == {
        "iproute2", "pyroute2", "_errors"}
    missing = venv.python("""
        import json
        from bondctl.errors import BackendUnavailableError
        from bondctl.registry import Registry
        try:
            Registry().get("pyroute2")
        except BackendUnavailableError as exc:
            print(json.dumps(str(exc)))
    """, BONDCTL_DISABLE_PLUGINS="pyroute2")
    assert missing.startswith("no backend named 'pyroute2'; installed: ")


def test_loading_and_listing_do_not_import_pyroute2(venv: Venv) -> None:
    out = venv.python("""
        import json, sys
        from bondctl.registry import Registry
        infos = Registry().backends()
        infos["pyroute2"].availability()
        print(json.dumps({"loaded": "bondctl_pyroute2" in sys.modules,
                          "pyroute2": sorted(m for m in sys.modules if m.startswith("pyroute2"))}))
    """)
    assert out == {"loaded": True, "pyroute2": []}


# -- the plugin against pyroute2's tables and wire format --------------------------------------
def test_declared_options_are_what_pyroute2_can_encode(venv: Venv) -> None:
    out = venv.python("""
        import json
        from bondctl.options import OPTIONS
        from bondctl_pyroute2 import Pyroute2Backend, attributes
        print(json.dumps({
            "declared": sorted(Pyroute2Backend.options),
            "pyroute2": sorted(attributes.bond_attributes()),
            "declared_slave": sorted(Pyroute2Backend.slave_options),
            "pyroute2_slave": sorted(attributes.slave_option_attributes()),
            "all": sorted(set(OPTIONS) - {"mode"}),
            "names": attributes.bond_attributes(),
        }))
    """)
    assert out["declared"] == out["pyroute2"]
    assert out["declared_slave"] == out["pyroute2_slave"] == ["queue_id"]
    assert set(out["all"]) - set(out["declared"]) == NOT_IN_PYROUTE2
    # names follow the kernel's, including where bondctl's differ
    assert out["names"]["lacp_rate"] == "IFLA_BOND_AD_LACP_RATE"
    assert out["names"]["num_grat_arp"] == "IFLA_BOND_NUM_PEER_NOTIF"


def test_a_shifted_pyroute2_table_is_not_trusted(venv: Venv) -> None:
    out = venv.python("""
        import json
        from bondctl.options import OPTIONS
        from bondctl_pyroute2.attributes import match
        good = [("IFLA_BOND_UNSPEC", "none"), ("IFLA_BOND_MODE", "uint8"),
                ("IFLA_BOND_ACTIVE_SLAVE", "uint32"), ("IFLA_BOND_MIIMON", "uint32")]
        shifted = [good[0], good[1], good[3], good[2]]
        numbered = [(3, "IFLA_BOND_MIIMON", "uint32")]
        opts = [OPTIONS["miimon"], OPTIONS["active_slave"]]
        print(json.dumps([match(opts, table, "IFLA_BOND_") for table in (good, shifted, numbered)]))
    """)
    assert out == [{"miimon": "IFLA_BOND_MIIMON", "active_slave": "IFLA_BOND_ACTIVE_SLAVE"}, {},
                   {"miimon": "IFLA_BOND_MIIMON"}]


ENCODE = """
    import json
    from pyroute2.iproute.linux import get_arguments_processor
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from bondctl import netlink as rtnl
    from bondctl.options import OPTIONS, mode_number
    from bondctl.steps import CreateBond, SetBond, SetSlave
    from bondctl_pyroute2 import Pyroute2Backend
    from bondctl_pyroute2.backend import Ifindex, request

    INDEX = {"eth1": 7, "bond0": 9}

    def resolve(value):
        if isinstance(value, Ifindex):
            return INDEX[value.name]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    def wire(step):
        # What IPRoute.link() would send, built the way pyroute2's NetlinkRequest does.
        command, kwargs = request(step)
        processor = get_arguments_processor("link", command, resolve(kwargs))
        msg = ifinfmsg()
        for field in msg.fields:
            msg[field[0]] = processor.get_value(field[0], default=0, mode="field")
        for key, value in processor.items():
            nla = ifinfmsg.name2nla(key)
            if msg.valid_nla(nla) and value is not None:
                msg["attrs"].append([nla, value])
        msg["header"]["type"], msg["header"]["flags"] = rtnl.RTM_NEWLINK, 1
        msg.encode()
        raw = bytes(msg.data[:msg["header"]["length"]])
        attrs = rtnl.parse_attrs(raw, 32)
        info = rtnl.parse_attrs(attrs[rtnl.IFLA_LINKINFO])
        return {"index": msg["index"], "kind": info.get(rtnl.IFLA_INFO_KIND, b"").hex(),
                "data": {n: p.hex() for n, p in rtnl.iter_attrs(info.get(2, b""))},
                "slave": {n: p.hex() for n, p in rtnl.iter_attrs(info.get(5, b""))}}

    def sample(opt):
        if opt.kind == "enum":
            return opt.choices[-1]
        if opt.kind == "flag":
            return 1 - int(opt.default)
        if opt.kind == "ifname":
            return "eth1"
        if opt.kind == "mac":
            return "02:00:00:00:00:42"
        if opt.kind == "ipv4list":
            return ("192.0.2.1", "192.0.2.2")
        return 3

    def on_wire(opt, value):
        # the value in the form bondctl's own encoder takes for opt.wire
        if opt.kind == "enum":
            return opt.choices.index(value)
        if opt.kind == "ifname":
            return INDEX[value]
        if opt.kind == "ipv4list":
            return list(value)
        return value

    out = {}
    for name in sorted(Pyroute2Backend.options):
        opt = OPTIONS[name]
        value = sample(opt)
        created = wire(CreateBond("bond0", "active-backup", {name: value}))
        changed = wire(SetBond("bond0", {name: value}))
        want = dict(rtnl.iter_attrs(rtnl.encode(opt.ifla, opt.wire, on_wire(opt, value))))
        want = {str(n): p.hex() for n, p in want.items()}
        out[name] = {"created": created["data"], "changed": changed["data"],
                     "changed_index": changed["index"], "want": want,
                     "mode": str(OPTIONS["mode"].ifla),
                     "mode_payload": bytes([mode_number("active-backup")]).hex(),
                     "decoded": rtnl.decode(opt.wire, bytes.fromhex(created["data"][opt.ifla]))
                     if opt.ifla in created["data"] else None}
    from bondctl.netns import Netns
    from bondctl.steps import MoveLink, SetLink
    out["_render"] = Pyroute2Backend().render([
        CreateBond("bond0", "802.3ad", {"miimon": 100, "lacp_rate": "fast"}, mtu=9000),
        SetLink("eth1", up=False), SetLink("eth1", master="bond0"),
        SetBond("bond0", {"primary": ""}),
        MoveLink("eth2", Netns("/run/netns/pod", "pod"), "net1")], Netns("/run/netns/x", "x"))
    slave = wire(SetSlave("eth1", {"queue_id": 3}))
    out["_slave"] = {"slave": slave["slave"], "index": slave["index"], "want": rtnl.encode(
        5, "u16", 3)[4:6].hex()}
    print(json.dumps(out))
"""


def test_each_option_goes_out_as_the_catalogue_says(venv: Venv) -> None:
    """pyroute2 encodes each option under the catalogue's IFLA_BOND_* number, in its wire
    type, byte for byte as bondctl's own encoder (bondctl.netlink) does."""
    out = venv.python(ENCODE)
    slave = out.pop("_slave")
    assert slave["index"] == 7 and slave["slave"] == {"5": slave["want"]}
    # --dry-run shows the calls execute() makes
    at = "in netns /run/netns/x: IPRoute().link("
    assert out.pop("_render") == [
        f"{at}'add', ifname='bond0', kind='bond', IFLA_BOND_MODE=4, IFLA_BOND_MIIMON=100, "
        "IFLA_BOND_AD_LACP_RATE=1, mtu=9000)",
        f"{at}'set', index=ifindex('eth1'), state='down')",
        f"{at}'set', index=ifindex('eth1'), master=ifindex('bond0'))",
        f"{at}'set', index=ifindex('bond0'), kind='bond', IFLA_BOND_PRIMARY=0)",
        f"{at}'set', index=ifindex('eth2'), net_ns_fd='/run/netns/pod', ifname='net1')"]
    assert len(out) == 25
    for name, seen in out.items():
        (number, payload), = seen["want"].items()
        created = dict(seen["created"])
        assert created.pop(seen["mode"]) == seen["mode_payload"], name
        assert seen["changed_index"] == 9, name
        if name.startswith("arp_ip_target"):
            # a nest of addresses: pyroute2 numbers the entries from 1, iproute2 from 0; the
            # kernel reads them in order and ignores the numbers.
            assert seen["decoded"] == ["192.0.2.1", "192.0.2.2"]
            assert set(created) == set(seen["changed"]) == {number}
            continue
        assert created == seen["changed"] == {number: payload}, name


def test_a_dump_decodes_completely_even_where_pyroute2_has_no_names(venv: Venv) -> None:
    """A bond as the kernel reports it (built with bondctl.netlink), decoded through pyroute2:
    attributes pyroute2 cannot name (peer_notif_delay, arp_missed_max, ns_ip6_target, the
    slave's prio) are decoded with the catalogue's wire types, coupled_control included."""
    # The test helper's source goes along: the venv has bondctl and the plugin, not tests/.
    helper = "from __future__ import annotations\n" + inspect.getsource(state_dict)
    out = venv.python(helper + textwrap.dedent("""
        import json
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
        from bondctl import netlink as rtnl
        from bondctl.netns import Netns
        from bondctl_pyroute2.backend import decode_bond, decode_link

        def message(index, name, *attrs):
            body = rtnl.ifinfomsg(index, rtnl.IFF_UP) + rtnl.nla_string(rtnl.IFLA_IFNAME, name)
            msg = ifinfmsg(rtnl.nlmsg(rtnl.RTM_NEWLINK, 0, 1, body + b"".join(attrs)))
            msg.decode()
            return msg

        bond = message(
            3, "bond0", rtnl.nla_u32(rtnl.IFLA_MTU, 1500),
            rtnl.nla_mac(rtnl.IFLA_ADDRESS, "02:00:00:00:00:0a"),
            rtnl.linkinfo("bond", [
                rtnl.nla_u8(1, 1), rtnl.nla_u32(3, 100), rtnl.nla_u32(11, 4),
                rtnl.encode(8, "in_addr_list", ["192.0.2.1"]),
                rtnl.nla_mac(26, "02:00:00:00:00:42"), rtnl.nla_u32(28, 200), rtnl.nla_u8(30, 5),
                rtnl.nla_u8(32, 0),
                rtnl.encode(31, "in6_addr_list", ["2001:db8::1"]),
                rtnl.nla_nested(23, [rtnl.nla_u16(1, 2), rtnl.nla_mac(5, "00:00:00:00:00:01")]),
            ]))
        slave = message(
            4, "eth0", rtnl.nla_u32(rtnl.IFLA_MASTER, 3), rtnl.nla_u32(rtnl.IFLA_MTU, 1500),
            rtnl.linkinfo("veth", None, slave_kind="bond", slave_data=[
                rtnl.nla_u8(1, 1), rtnl.nla_u8(2, 2), rtnl.nla_u32(3, 7),
                rtnl.nla_mac(4, "02:00:00:00:00:07"), rtnl.nla_u16(5, 3), rtnl.nla_s32(9, -3)]))
        names = {3: "bond0", 4: "eth0"}
        where = Netns("/run/netns/x", "x")
        state = decode_bond(bond, [slave], names, where)
        link = decode_link(slave, names)
        print(json.dumps({"bond": state_dict(state), "link": [link.name, link.master, link.up]}))
    """))
    bond = out["bond"]
    assert (bond["name"], bond["mode"], bond["mtu"], bond["mac"], bond["netns"]) == (
        "bond0", "active-backup", 1500, "02:00:00:00:00:0a", "x")
    assert bond["options"] == {
        "miimon": 100, "primary": "eth0", "arp_ip_target": ["192.0.2.1"],
        "ad_actor_system": "02:00:00:00:00:42", "peer_notif_delay": 200, "arp_missed_max": 5,
        "ns_ip6_target": ["2001:db8::1"], "active_slave": "", "coupled_control": 0,
        # enums the kernel left out read as their defaults, as `ip -j` shows them
        "arp_validate": "none", "arp_all_targets": "any", "primary_reselect": "always",
        "fail_over_mac": "none", "xmit_hash_policy": "layer2", "lacp_rate": "slow",
        "ad_select": "stable"}
    assert bond["ad_info"] == {"aggregator": 2, "partner_mac": "00:00:00:00:00:01"}
    (slave,) = bond["slaves"]
    assert {k: slave[k] for k in ("name", "state", "mii_status", "link_failure_count",
                                  "perm_hwaddr", "queue_id", "prio", "up")} == {
        "name": "eth0", "state": "backup", "mii_status": "down", "link_failure_count": 7,
        "perm_hwaddr": "02:00:00:00:00:07", "queue_id": 3, "prio": -3, "up": True}
    assert out["link"] == ["eth0", "bond0", True]
