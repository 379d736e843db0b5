"""The kernel harness's own logic, without a kernel: how inner results are recorded and
replayed into the outer run, and how the mode is chosen."""

from __future__ import annotations

import json

import pytest

from tests.harness import plugin
from tests.harness.proxy import InnerFailure, replay
from tests.harness.report import ResultWriter, load_results


def report(when: str, outcome: str, longrepr=None, **extra) -> pytest.TestReport:
    rep = pytest.TestReport("t.py::test_x", ("t.py", 1, "test_x"), {}, outcome, longrepr, when)
    for key, value in extra.items():
        setattr(rep, key, value)
    return rep


def record(tmp_path, *reports) -> dict:
    writer = ResultWriter(tmp_path / "results.jsonl")
    for rep in reports:
        writer.pytest_runtest_logreport(rep)
    writer.pytest_runtest_logfinish("t.py::test_x")
    return load_results(tmp_path / "results.jsonl")["t.py::test_x"]


def never_called() -> str:
    raise AssertionError("diagnosis requested for a test that has a result")


def test_passed_replays_as_pass(tmp_path) -> None:
    result = record(
        tmp_path, report("setup", "passed"), report("call", "passed"), report("teardown", "passed")
    )
    assert result["outcome"] == "passed"
    replay(result, ci=True, missing=never_called)


def test_failure_carries_inner_text_and_teardown_errors(tmp_path) -> None:
    result = record(
        tmp_path,
        report("setup", "passed"),
        report("call", "failed", "boom"),
        report("teardown", "failed", "leak"),
    )
    with pytest.raises(InnerFailure) as err:
        replay(result, ci=False, missing=never_called)
    assert "boom" in str(err.value) and "[error in teardown]\nleak" in str(err.value)


def test_skip_is_a_skip_locally_and_a_failure_in_ci(tmp_path) -> None:
    result = record(
        tmp_path,
        report("setup", "skipped", ("t.py", 3, "Skipped: no team")),
        report("teardown", "passed"),
    )
    assert result["reason"] == "no team"
    with pytest.raises(pytest.skip.Exception, match="no team"):
        replay(result, ci=False, missing=never_called)
    with pytest.raises(InnerFailure, match=r"skipped in CI.*no team"):
        replay(result, ci=True, missing=never_called)


def test_xfail_survives_the_round_trip(tmp_path) -> None:
    result = record(tmp_path, report("call", "skipped", ("t.py", 3, "x"), wasxfail="known"))
    assert result["outcome"] == "xfailed"
    with pytest.raises(pytest.xfail.Exception, match="known"):
        replay(result, ci=True, missing=never_called)


def test_missing_result_fails_with_the_diagnosis() -> None:
    with pytest.raises(InnerFailure, match="guest died"):
        replay(None, ci=False, missing=lambda: "guest died")


def test_truncated_result_line_is_ignored(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"nodeid": "a", "outcome": "passed"}) + '\n{"nodeid": "b", "outc')
    assert list(load_results(path)) == ["a"]


@pytest.mark.parametrize(
    ("forced", "native", "uml", "expected"),
    [
        ("", (True, ""), "/usr/bin/linux.uml", "native"),
        ("", (False, "no bond"), "/usr/bin/linux.uml", "uml"),
        ("", (False, "no bond"), None, "none"),
        ("uml", (True, ""), "/usr/bin/linux.uml", "uml"),
        ("uml", (True, ""), None, "none"),
        ("native", (False, "no bond"), None, "native"),
    ],
)
def test_mode_choice(monkeypatch, forced, native, uml, expected) -> None:
    monkeypatch.setenv("BONDCTL_KERNEL", forced)
    monkeypatch.setattr(plugin, "in_uml", lambda: False)
    monkeypatch.setattr(plugin, "native_bonding", lambda: native)
    monkeypatch.setattr(plugin, "uml_binary", lambda: uml)
    assert plugin.choose_mode().kind == expected


def test_inside_uml_always_native(monkeypatch) -> None:
    monkeypatch.setenv("BONDCTL_KERNEL", "uml")
    monkeypatch.setattr(plugin, "in_uml", lambda: True)
    assert plugin.choose_mode().kind == "native"


def test_bad_forced_mode_is_a_usage_error(monkeypatch) -> None:
    monkeypatch.setenv("BONDCTL_KERNEL", "kvm")
    with pytest.raises(pytest.UsageError):
        plugin.choose_mode()


def test_partition_keeps_small_files_whole_and_balances():
    from tests.harness.plugin import CHUNK, partition

    big = [f"tests/kernel/test_big.py::t{i}" for i in range(CHUNK * 2 + 5)]
    small = [f"tests/kernel/test_small.py::t{i}" for i in range(7)]
    owner = partition(big + small, 2)
    assert set(owner) == set(big + small)
    assert len({owner[n] for n in small}) == 1
    loads = [sum(1 for g in owner.values() if g == i) for i in (0, 1)]
    assert abs(loads[0] - loads[1]) <= CHUNK
    assert partition(big, 1) == dict.fromkeys(big, 0)


def test_partition_spreads_heavy_tests():
    from tests.harness.plugin import partition

    heavy = [f"tests/reliability/test_c.py::r{i}" for i in range(4)]
    light = [f"tests/kernel/test_l{i}.py::t" for i in range(20)]
    owner = partition(heavy + light, 2, dict.fromkeys(heavy, 45))
    assert {owner[n] for n in light} == {1 - owner[heavy[0]]}
