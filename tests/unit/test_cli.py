"""bondctl's command line without a kernel: parsing, rendering, JSON, exit codes, goldens.

A fake backend stands in for the kernel (pure logic only: what the CLI asks of a backend and
how it renders the answers). The kernel side is tests/kernel/test_cli.py.

Golden screens live in tests/golden/; BONDCTL_UPDATE_GOLDEN=1 rewrites them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bondctl.backend import Availability, Backend, StepError
from bondctl.cli.app import app
from bondctl.cli.session import Session
from bondctl.cli.views import bond_view
from bondctl.cli.watch import Tracker, compare, screen, sparkline
from bondctl.errors import BusyError, KernelError, NotFoundError
from bondctl.health import health
from bondctl.model import BondState, Link, SlaveState
from bondctl.netns import Netns
from bondctl.options import OPTIONS
from bondctl.steps import SetBond, Step, describe

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE_GOLDEN = os.environ.get("BONDCTL_UPDATE_GOLDEN") == "1"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# -- a fake backend: fixed bonds, recorded steps -------------------------------------------------
def slave(name, state="backup", mii="up", failures=0, mac="02:00:00:00:00:01", agg=None):
    return SlaveState(name, state, mii, failures, mac, ad_aggregator_id=agg, mtu=1500, mac=mac)


def ab_bond(active="eth0", eth1_mii="up"):
    options = {name: opt.default for name, opt in OPTIONS.items() if name != "mode"}
    options |= {"miimon": 100, "active_slave": active or "", "primary": "eth0",
                "arp_ip_target": ()}
    return BondState(
        "bond0", "active-backup", options,
        (slave("eth0", "active" if active == "eth0" else "backup", mac="02:00:00:00:00:01"),
         slave("eth1", "backup", eth1_mii, failures=0 if eth1_mii == "up" else 2,
               mac="02:00:00:00:00:02")),
        True, "UP", 1500, "02:00:00:00:00:01", index=7, netns=None,
    )


def lacp_bond(partner="00:00:00:00:00:00"):
    options = {name: opt.default for name, opt in OPTIONS.items() if name != "mode"}
    options |= {"miimon": 100, "lacp_rate": "fast", "min_links": 2, "arp_ip_target": ()}
    return BondState(
        "bond1", "802.3ad", options,
        (slave("eth2", "active", mac="02:00:00:00:00:03", agg=1),
         slave("eth3", "backup", "down", 1, mac="02:00:00:00:00:04", agg=2)),
        True, "UP", 9000, "02:00:00:00:00:03", index=9,
        ad_info={"aggregator": 1, "num_ports": 1, "actor_key": 15, "partner_key": 1,
                 "partner_mac": partner},
    )


class FakeBackend(Backend):
    name = "fake"
    summary = "in memory"
    options = frozenset(n for n in OPTIONS if n != "mode")
    slave_options = frozenset({"queue_id", "prio"})

    def __init__(self, bonds: Sequence[BondState] = (), links: Sequence[str] = (),
                 fail: Exception | None = None) -> None:
        self.bonds = list(bonds)
        self.extra = list(links)
        self.executed: list[Step] = []
        self.fail = fail

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True, "fake")

    def execute(self, steps: Sequence[Step], netns: Netns) -> None:
        if self.fail:
            raise self.fail
        self.executed.extend(steps)
        for step in steps:  # enough of a kernel for read-back: bond options change
            if isinstance(step, SetBond):
                self.bonds = [self._set(b, step.options) if b.name == step.name else b
                              for b in self.bonds]

    @staticmethod
    def _set(bond: BondState, options) -> BondState:
        active = options.get("active_slave", bond.active_slave)
        slaves = tuple(s._replace(state="active" if s.name == active else "backup")
                       for s in bond.slaves)
        mode = options.get("mode", bond.mode)
        rest = {k: v for k, v in options.items() if k != "mode"}
        return bond._replace(mode=mode, options={**bond.options, **rest}, slaves=slaves)

    def render(self, steps: Sequence[Step], netns: Netns) -> list[str]:
        return [f"fake: {describe(step)}" for step in steps]

    def list_bonds(self, netns: Netns) -> list[BondState]:
        if isinstance(self.fail, BusyError):
            raise self.fail
        return list(self.bonds)

    def links(self, netns: Netns) -> list[Link]:
        names = [s.name for b in self.bonds for s in b.slaves]
        masters = {s.name: b.name for b in self.bonds for s in b.slaves}
        out = [Link(b.name, i + 1, b.mtu, b.mac, b.up, b.operstate, "bond")
                for i, b in enumerate(self.bonds)]
        out += [Link(n, 10 + i, 1500, f"02:00:00:00:01:{i:02x}", True, "UP", "veth",
                     masters.get(n), rx_bytes=1000 * i, tx_bytes=500 * i)
                for i, n in enumerate(names + self.extra)]
        return out


@pytest.fixture
def fake(monkeypatch):
    backend = FakeBackend([ab_bond()], links=["eth5", "eth6"])
    calls = []

    def select(self):
        calls.append(self.backend)
        return backend

    monkeypatch.setattr(Session, "select_backend", select)
    backend.calls = calls
    return backend


def invoke(*args, env=None):
    runner = CliRunner()
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "100",
                                               **(env or {})}, prog_name="bondctl")


# -- parsing and help ----------------------------------------------------------------------------
def test_create_help_lists_every_catalogue_option_and_its_values():
    result = invoke("create", "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name, opt in OPTIONS.items():
        if name == "mode":
            continue
        assert "--" + name.replace("_", "-") in result.output, name
        for choice in opt.choices:
            assert choice in result.output, (name, choice)
    assert "802.3ad (4)" in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("bondctl 0.")


def test_invalid_value_is_refused_before_any_backend(fake):
    result = invoke("create", "bond9", "--mode", "active-backup", "--miimon", "fast",
                    "-s", "eth5")
    assert result.exit_code == 2
    assert "miimon: invalid value 'fast'" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert fake.calls == [] and fake.executed == []


@pytest.mark.parametrize(("args", "message"), [
    (["--mode", "active-backup", "--lacp-rate", "fast"], "not supported in mode"),
    (["--mode", "active-backup", "-o", "lacp_rat=fast"], "did you mean lacp_rate"),
    (["--mode", "active-backup", "--miimon", "100", "-o", "miimon=200"], "given twice"),
    (["--mode", "bogus"], "mode: invalid value"),
    (["--mode", "active-backup", "-o", "novalue"], "expected KEY=VALUE"),
])
def test_validation_errors_exit_2(fake, args, message):
    result = invoke("create", "bond9", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake.executed == []


def test_create_dry_run_prints_the_backends_rendering(fake):
    result = invoke("--dry-run", "create", "bond9", "--mode", "802.3ad", "--lacp-rate",
                    "fast", "--xmit-hash-policy", "layer3+4", "-s", "eth5", "-s", "eth6")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("fake: create bond bond9 (mode 802.3ad)")
    assert "fake: enslave eth5 to bond9" in lines
    assert fake.executed == []


def test_catalogue_flags_and_any_spelling_reach_the_spec(fake):
    result = invoke("create", "bond9", "--mode", "active-backup", "--arp-interval", "100",
                    "--arp-ip-target", "192.0.2.1", "--arp-ip-target", "192.0.2.2,192.0.2.3",
                    "-o", "numGratArp=3", "-o", "miimon=0", "--dry-run", "-s", "eth5")
    assert result.exit_code == 0, result.stderr
    created = result.stdout.splitlines()[0]
    assert "create bond bond9" in created


def test_write_command_reports_kernel_refusal_with_exit_4(fake):
    fake.fail = StepError(describe_step(), "Operation not permitted", 0)
    result = invoke("set", "bond0", "miimon=200")
    assert result.exit_code == 4
    assert result.stderr.startswith("bondctl: error: set miimon=200 on bond0")


def describe_step():
    return SetBond("bond0", {"miimon": 200})


@pytest.mark.parametrize(("error", "code"), [
    (NotFoundError("no such"), 3), (KernelError("refused"), 4), (BusyError("busy"), 5),
    (RuntimeError("boom"), 1),
])
def test_exit_codes_and_one_line_errors(fake, monkeypatch, error, code):
    def broken(self, netns):
        raise error

    monkeypatch.setattr(FakeBackend, "list_bonds", broken)
    result = invoke("list")
    assert result.exit_code == code
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    verbose = invoke("-v", "list")
    assert verbose.exit_code == code and "Traceback" in verbose.stderr


def test_unknown_bond_exits_3(fake):
    result = invoke("show", "nope0")
    assert result.exit_code == 3 and "no bond named nope0" in result.stderr


def test_bad_netns_name_is_refused():
    result = invoke("--netns", "../etc", "list")
    assert result.exit_code in (2, 3)
    assert "Traceback" not in result.stderr


def test_set_prints_notes(fake):
    fake.bonds = [lacp_bond()]
    result = invoke("set", "bond1", "lacp_rate=slow")
    assert result.exit_code == 0, result.stderr
    assert "taken down to change lacp_rate" in result.stderr
    assert "bond1: set lacp_rate=slow" in result.stdout


def test_failover_and_release_and_delete_plan(fake):
    assert "active slave eth0 -> eth1" in invoke("failover", "bond0").stdout
    result = invoke("--dry-run", "release", "bond0", "eth1")
    assert result.stdout.splitlines() == ["fake: release eth1", "fake: set eth1 up"]
    result = invoke("delete", "bond0", "--slaves-down", "--dry-run")
    assert result.stdout.splitlines() == ["fake: release eth0", "fake: release eth1",
                                          "fake: delete bond0"]


# -- reading and rendering -----------------------------------------------------------------------
def test_list_table_and_json(fake):
    fake.bonds = [ab_bond(), lacp_bond()]
    table = invoke("list")
    assert table.exit_code == 0
    assert re.search(r"bond0\s+active-backup\s+up\s+eth0\s+2/2\s+1500", table.stdout)
    assert re.search(r"bond1\s+802.3ad\s+degraded\s+-\s+1/2\s+9000", table.stdout)
    data = json.loads(invoke("list", "--json").stdout)
    assert [b["name"] for b in data] == ["bond0", "bond1"]
    assert data[1]["slaves_up"] == 1 and data[1]["problems"]


def test_json_is_never_styled_or_wrapped(fake):
    result = invoke("--json", "show", "bond0", env={"COLUMNS": "20", "FORCE_COLOR": "1"})
    assert not ANSI.search(result.stdout)
    data = json.loads(result.stdout)
    assert data["options"]["miimon"] == 100
    assert "lacp_rate" in data["ineffective_options"]


def test_show_hides_options_without_effect_unless_all(fake):
    plain = invoke("show", "bond0").stdout
    assert "miimon" in plain and "lacp_rate" not in plain and "--all shows them" in plain
    everything = invoke("show", "bond0", "--all").stdout
    assert re.search(r"lacp_rate\s+slow\s+no effect in active-backup", everything)


COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7])m")


def test_colours_only_for_a_terminal_and_never_with_no_color(fake):
    fake.bonds = [ab_bond(eth1_mii="down")]
    assert not ANSI.search(invoke("show", "bond0", env={"NO_COLOR": ""}).stdout)
    forced = invoke("show", "bond0", env={"NO_COLOR": "", "FORCE_COLOR": "1",
                                          "TERM": "xterm"})
    assert COLOUR.search(forced.stdout)  # a degraded slave is red
    no_color = invoke("show", "bond0", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert not COLOUR.search(no_color.stdout)


@pytest.mark.parametrize(("state", "expected"), [
    (ab_bond(), []),
    (ab_bond(eth1_mii="down"), ["error: slave eth1 is down"]),
    (ab_bond(active=""), ["error: no active slave: the bond carries no traffic"]),
    (lacp_bond(), ["error: slave eth3 is down",
                   "error: 1 slave(s) up, fewer than min_links 2",
                   "warning: no LACP partner (partner MAC is all zero)",
                   "warning: not in the active aggregator: eth3"]),
])
def test_health(state, expected):
    assert [f"{p.level}: {p.text}" for p in health(state)] == expected


def test_backends_json_lists_the_registry():
    from bondctl.registry import Registry

    result = invoke("backends", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {b["name"] for b in data["backends"]} == set(Registry().backends())
    for entry in data["backends"]:
        assert entry["option_count"] == len(entry["options"]) > 0
        assert entry["origin"] and isinstance(entry["available"], bool)


# -- apply / diff / check on the fake ------------------------------------------------------------
def write(tmp_path, data, name="bonds.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_check_passes_when_equal_and_exits_6_on_drift(fake, tmp_path):
    same = write(tmp_path, {"name": "bond0", "mode": "active-backup",
                            "options": {"miimon": 100, "primary": "eth0"},
                            "slaves": ["eth0", "eth1"]})
    result = invoke("check", "-f", same)
    assert result.exit_code == 0, result.stderr
    assert "FAIL" not in result.stdout
    drift = write(tmp_path, {"name": "bond0", "mode": "active-backup",
                             "options": {"miimon": 200}, "slaves": ["eth0"]}, "drift.json")
    result = invoke("check", "-f", drift, "--json")
    assert result.exit_code == 6
    checks = {c["what"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["miimon"] == {"bond": "bond0", "what": "miimon", "want": 200, "have": 100,
                                "ok": False}
    assert not checks["slaves"]["ok"] and checks["mode"]["ok"]


def test_apply_changes_nothing_when_nothing_differs(fake, tmp_path):
    same = write(tmp_path, [{"name": "bond0", "mode": "active-backup",
                             "options": {"MIIMon": 100}, "slaves": ["eth0", "eth1"]}])
    result = invoke("apply", "-f", same)
    assert result.exit_code == 0, result.stderr
    assert fake.executed == []
    assert "up to date" in result.stdout


def test_apply_dry_run_plans_only_the_difference(fake, tmp_path):
    path = write(tmp_path, {"name": "bond0", "mode": "active-backup",
                            "options": {"miimon": 200, "downdelay": 400},
                            "slaves": ["eth0", "eth1", "eth5"], "mtu": 9000})
    result = invoke("apply", "-f", path, "--dry-run")
    assert result.exit_code == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("fake:")]
    assert commands == ["fake: set eth5 down", "fake: enslave eth5 to bond0",
                        "fake: set eth5 up", "fake: set miimon=200, downdelay=400 on bond0",
                        "fake: set bond0 mtu 9000"]
    assert fake.executed == []


def test_diff_shows_creation_and_changes(fake, tmp_path):
    path = write(tmp_path, [
        {"name": "bond0", "mode": "active-backup", "options": {"miimon": 200}},
        {"name": "bond7", "mode": "802.3ad", "options": {"lacpRate": "fast"},
         "slaves": ["eth5"]},
    ])
    result = invoke("diff", "-f", path, "--json")
    plans = {p["bond"]: p for p in json.loads(result.stdout)}
    assert plans["bond7"]["action"] == "create"
    assert {"what": "miimon", "want": 200, "have": 100} in plans["bond0"]["changes"]
    text = invoke("diff", "-f", path).stdout
    assert "~ bond0: change" in text and "miimon: 100 -> 200" in text
    assert "+ bond7: create" in text


def test_yaml_files_and_file_errors(fake, tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("bonds:\n  - name: bond0\n    mode: active-backup\n"
                    "    options: {miimon: 100, primary: eth0}\n    slaves: [eth0, eth1]\n")
    assert invoke("check", "-f", str(path)).exit_code == 0
    path.write_text("- name: bond0\n  mode: active-backup\n  colour: blue\n")
    result = invoke("check", "-f", str(path))
    assert result.exit_code == 2 and "unknown key(s) colour" in result.stderr
    result = invoke("check", "-f", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 3


# -- watch ---------------------------------------------------------------------------------------
def test_sparkline_scales_to_the_largest_sample():
    assert sparkline([0, 1, 2, 4, 8], width=5) == "▁▂▃▅█"
    assert sparkline([], width=3) == "   "
    assert sparkline([0, 0], width=2) == "▁▁"


def test_compare_reports_failover_and_link_changes():
    before, after = ab_bond(), ab_bond(active="eth1", eth1_mii="up")
    after = BondState(after.name, after.mode, after.options,
                      (slave("eth0", "backup", "down", 1), after.slaves[1]), True, "UP",
                      1500, after.mac)
    texts = [(e.level, e.text) for e in compare(before, after, "bond0")]
    assert ("error", "eth0 link down") in texts
    assert ("warning", "failover: active slave eth0 -> eth1") in texts
    assert compare(after, None, "bond0")[0].text == "bond0 disappeared"


# -- golden screens ------------------------------------------------------------------------------
MAC = re.compile(r"\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b")
CLOCK = re.compile(r"\b\d{2}:\d{2}:\d{2}\b")


def normalise(text: str) -> str:
    """Stable across runs: MACs, clock times and trailing spaces masked."""
    text = CLOCK.sub("HH:MM:SS", MAC.sub(lambda m: "xx:xx:xx:xx:xx:" + m.group(0)[-2:], text))
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def rendered(renderable) -> str:
    from rich.console import Console

    console = Console(record=True, width=100, file=open(os.devnull, "w"),  # noqa: SIM115
                      color_system=None, force_terminal=False)
    console.print(renderable)
    return normalise(console.export_text(styles=False))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN or not path.exists():
        if not UPDATE_GOLDEN:
            pytest.fail(f"{path} is missing: run with BONDCTL_UPDATE_GOLDEN=1 to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed: BONDCTL_UPDATE_GOLDEN=1 to accept"


def test_golden_show_active_backup_degraded():
    from bondctl.cli.render import bond_detail

    view = bond_view(ab_bond(eth1_mii="down"), {"eth0": (10000, "full"), "eth1": (None, None)})
    check_golden("show-active-backup.txt", rendered(bond_detail(view)))


def test_golden_show_lacp_all():
    from bondctl.cli.render import bond_detail

    check_golden("show-802.3ad-all.txt", rendered(bond_detail(bond_view(lacp_bond()),
                                                              show_all=True)))


def test_golden_watch_failover():
    tracker = Tracker("bond0")
    links = {"eth0": Link("eth0", 10, 1500, "", True, "UP", rx_bytes=0, tx_bytes=0),
             "eth1": Link("eth1", 11, 1500, "", True, "UP", rx_bytes=0, tx_bytes=0)}
    tracker.update(ab_bond(), links, 0.0)
    for second in range(1, 8):
        links = {n: Link(n, 10, 1500, "", True, "UP", rx_bytes=old.rx_bytes + 1500 * second
                         * (1 if n == "eth0" else 0), tx_bytes=old.tx_bytes + 900 * second)
                 for n, old in links.items()}
        tracker.update(ab_bond(), links, float(second))
    failed = BondState("bond0", "active-backup", ab_bond(active="eth1").options,
                       (slave("eth0", "backup", "down", 1), slave("eth1", "active")),
                       True, "UP", 1500, "02:00:00:00:00:01")
    links = {n: old._replace(rx_bytes=old.rx_bytes + 3000 * (n == "eth1"),
                             tx_bytes=old.tx_bytes + 2000)
             for n, old in links.items()}
    tracker.update(failed, links, 8.0)
    check_golden("watch-failover.txt", rendered(screen(tracker, "link events", clock=0)))


def test_docs_show_the_watch_golden_screen():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    golden = (GOLDEN / "watch-failover.txt").read_text().strip()
    assert golden in docs, "docs/cli.md shows an outdated watch screen"


# -- start-up ------------------------------------------------------------------------------------
def test_help_loads_no_rich_backend_or_plugin_machinery():
    code = ("import sys\nsys.argv = ['bondctl', '--help']\nfrom bondctl.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = ('rich', 'pluggy', 'sh', 'bondctl.registry', 'bondctl.ops', "
            "'bondctl.netlink', 'bondctl.backends.iproute2', 'yaml')\n"
            "sys.stderr.write(repr(sorted(m for m in heavy if m in sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stderr == "[]"
    assert "Commands:" in proc.stdout


def test_cni_install_refuses_a_missing_artifact_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["cni", "install", "--artifact", str(tmp_path / "nope"),
                                      "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("width", [30, 60, 100])
def test_narrow_terminals_never_cut_column_names(width):
    """The first-contact report: "SLAVES UP" came out as "SLA…" in a narrow terminal."""
    from rich.console import Console

    from bondctl.cli.render import bond_table, slaves_table

    view = bond_view(ab_bond(eth1_mii="down"), {"eth0": (10000, "full"), "eth1": (None, None)})
    console = Console(record=True, width=width, file=open(os.devnull, "w"),  # noqa: SIM115
                      color_system=None, force_terminal=False)
    console.print(bond_table([view]))
    console.print(slaves_table(view))
    text = console.export_text(styles=False)
    assert "…" not in text
    assert max(map(len, text.splitlines())) <= width, text  # nothing cropped at the edge
    for header in ("NAME", "MODE", "STATE", "ACTIVE", "SLAVES UP", "MTU", "NETNS", "SLAVE",
                   "MII", "FAILURES", "PERM MAC", "SPEED", "DUPLEX", "QUEUE"):
        assert header in text, (header, text)
    for value in ("active-backup", "(current)", "02:00:00:00:00:02"):
        assert value in text.replace("\n", "").replace(" ", "") or value in text, text
