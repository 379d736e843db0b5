"""Where kernel tests run: natively, in User-Mode Linux, or nowhere (skip; fail in CI).

Kernel tests are those marked `kernel`, plus everything under tests/kernel and
tests/reliability. BONDCTL_KERNEL=native|uml forces a mode.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.kernel import (
    in_uml,
    is_ci,
    kernel_info,
    native_bonding,
    uml_binary,
    uml_release,
)
from tests.harness.proxy import KernelProxyItem
from tests.harness.uml import UmlRun

KERNEL_DIRS = ("tests/kernel", "tests/reliability")
MODE_ENV = "BONDCTL_KERNEL"
TIMEOUT_ENV = "BONDCTL_UML_TIMEOUT"
SHARDS_ENV = "BONDCTL_UML_SHARDS"  # guests booted side by side; default: one per CPU, up to 2
CHUNK = 40  # a file with more kernel tests than this may be spread over several guests
KEEP_ENV = "BONDCTL_KEEP_RUN"
# Options the inner run must not inherit: they were resolved into node ids already, or they
# belong to the outer process.
DROPPED_ENV = ("PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST", MODE_ENV)


@dataclass(frozen=True)
class Mode:
    kind: str  # "native" | "uml" | "none"
    reason: str = ""


def choose_mode() -> Mode:
    forced = os.environ.get(MODE_ENV, "").strip().lower()
    if forced not in ("", "native", "uml"):
        raise pytest.UsageError(f"{MODE_ENV} must be 'native' or 'uml', not {forced!r}")
    if in_uml() or forced == "native":
        return Mode("native")
    if forced == "uml":
        if uml_binary():
            return Mode("uml", f"forced by {MODE_ENV}=uml")
        return Mode("none", f"{MODE_ENV}=uml but linux.uml is not installed")
    ok, why = native_bonding()
    if ok:
        return Mode("native")
    if uml_binary():
        return Mode("uml", why)
    return Mode(
        "none",
        f"no bonding driver: {why}; and no linux.uml "
        "(apt-get install user-mode-linux kmod, or run scripts/setup.sh)",
    )


def shard_count() -> int:
    raw = os.environ.get(SHARDS_ENV, "")
    if raw:
        return max(1, int(raw))
    return max(1, min(2, os.cpu_count() or 1))


def partition(nodeids: list[str], shards: int,
              weights: dict[str, int] | None = None) -> dict[str, int]:
    """Spread tests over guests: whole files where they are small (their module fixtures then
    run once), in chunks where they are large, the heaviest first to the least loaded guest.
    A test weighs 1 unless marked `uml_weight(n)` (n typical tests' time)."""
    weigh = (weights or {}).get
    by_file: dict[str, list[str]] = {}
    for nodeid in nodeids:
        by_file.setdefault(nodeid.split("::", 1)[0], []).append(nodeid)
    units = [ids[i:i + CHUNK] for ids in by_file.values() for i in range(0, len(ids), CHUNK)]
    load = [0] * shards
    owner: dict[str, int] = {}
    for unit in sorted(units, key=lambda u: sum(weigh(n, 1) for n in u), reverse=True):
        index = load.index(min(load))
        load[index] += sum(weigh(n, 1) for n in unit)
        owner.update(dict.fromkeys(unit, index))
    return owner


def skipped_result(reason: str) -> dict[str, Any]:
    return {"outcome": "skipped", "reason": reason, "longrepr": ""}


def inner_options(config: pytest.Config) -> list[str]:
    """The outer command line's options that shape how tests run, for the inner pytest.
    Selection (-k, -m, --lf, paths) is already resolved into the node ids."""
    opt = config.option
    args = ["-p", "no:cacheprovider", "-v", "--color=no", f"--rootdir={config.rootpath}"]
    if config.inipath:
        args += ["-c", str(config.inipath)]
    if opt.maxfail:
        args.append(f"--maxfail={opt.maxfail}")
    if getattr(opt, "tbstyle", "auto") != "auto":
        args.append(f"--tb={opt.tbstyle}")
    if getattr(opt, "capture", None):
        args.append(f"--capture={opt.capture}")
    if getattr(opt, "importmode", None):
        args.append(f"--import-mode={opt.importmode}")
    if getattr(opt, "runxfail", False):
        args.append("--runxfail")
    for override in getattr(opt, "override_ini", None) or ():
        args += ["-o", override]
    for name, flag in (
        ("hypothesis_profile", "--hypothesis-profile"),
        ("hypothesis_seed", "--hypothesis-seed"),
    ):
        value = getattr(opt, name, None)
        if value is not None:
            args.append(f"{flag}={value}")
    return args


def inner_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")])
    env["BONDCTL_IN_UML"] = "1"
    return env


class KernelSuite:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.mode: Mode | None = None  # decided only when kernel tests are selected
        self.umls: list[UmlRun] = []
        self.owner: dict[str, int] = {}  # node id -> index of the guest that runs it
        self.outcomes: dict[str, str] = {}

    def is_kernel(self, item: pytest.Item) -> bool:
        return item.get_closest_marker("kernel") is not None

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        root = self.config.rootpath
        if any(item.path.is_relative_to(root / d) for d in KERNEL_DIRS):
            item.add_marker(pytest.mark.kernel)

    @pytest.hookimpl(trylast=True)  # after -k/-m deselection
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        kernel = [item for item in items if self.is_kernel(item)]
        if not kernel:
            return
        self.mode = choose_mode()
        if self.mode.kind == "native":
            return
        ci = is_ci()
        weights = {item.nodeid: int(mark.args[0]) for item in kernel
                   for mark in [item.get_closest_marker("uml_weight")] if mark}
        self.owner = partition([item.nodeid for item in kernel], shard_count(), weights)
        proxies = {
            item.nodeid: KernelProxyItem.wrap(item, fetch=fetch, missing=missing, ci=ci)
            for item in kernel
            for fetch, missing in [self._sources(item.nodeid)]
        }
        if self.mode.kind == "uml":
            # Proxies go last: the local tests then run while the guest boots and works,
            # instead of waiting behind the first proxy. They take turns between the guests,
            # each guest's in the order it runs them, so the outer run reports every result
            # soon after its guest wrote it.
            queues = [[n for n in proxies if self.owner[n] == g]
                      for g in range(max(self.owner.values(), default=0) + 1)]
            ordered = [q[i] for i in range(max(map(len, queues), default=0))
                       for q in queues if i < len(q)]
            items[:] = ([i for i in items if i.nodeid not in proxies]
                        + [proxies[n] for n in ordered])
        else:
            items[:] = [proxies.get(item.nodeid, item) for item in items]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Boot the guest now, in the background: it runs while the unit tests run here."""
        if self.mode is None or self.mode.kind != "uml" or self.config.option.collectonly:
            return
        if session.testsfailed and not self.config.option.continue_on_collection_errors:
            return
        nodeids = [i.nodeid for i in session.items if isinstance(i, KernelProxyItem)]
        if not nodeids:
            return
        for index in range(max(self.owner.values(), default=0) + 1):
            self.umls.append(UmlRun(
                binary=uml_binary() or "linux.uml",
                rootdir=self.config.rootpath,
                python=sys.executable,
                pytest_options=inner_options(self.config),
                nodeids=[n for n in nodeids if self.owner.get(n) == index],
                env=inner_env(),
                timeout=float(os.environ.get(TIMEOUT_ENV, "4800")),
            ))
        for uml in self.umls:
            uml.start()

    def _sources(self, nodeid: str) -> tuple[Callable[[str], dict[str, Any] | None],
                                             Callable[[], str]]:
        if self.mode is None or self.mode.kind == "none":
            return self._no_kernel_result, self._no_kernel_reason
        index = self.owner[nodeid]
        return (lambda n: self.umls[index].result(n),
                lambda: self.umls[index].diagnosis())

    def _no_kernel_result(self, _nodeid: str) -> dict[str, Any]:
        return skipped_result(self._no_kernel_reason())

    def _no_kernel_reason(self) -> str:
        return self.mode.reason if self.mode else ""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if (
            self.mode is not None
            and self.mode.kind == "native"
            and report.skipped
            and not hasattr(report, "wasxfail")
            and is_ci()
            and self.is_kernel(item)
        ):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            reason = reason.removeprefix("Skipped: ")
            report.outcome = "failed"
            report.longrepr = f"kernel test skipped in CI (CI=true makes that a failure): {reason}"
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.mode is None or "kernel" not in report.keywords:
            return
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and report.nodeid not in self.outcomes:
            self.outcomes[report.nodeid] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        elif report.when == "call" and report.nodeid not in self.outcomes:
            self.outcomes[report.nodeid] = "passed"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.mode is None or self.config.option.collectonly:
            return
        counts = Counter(self.outcomes.values())
        tally = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        if self.mode.kind == "native":
            info = kernel_info()
            where = f"natively on {info.release_str}" + (
                " (inside User-Mode Linux)" if info.in_uml else ""
            )
            line = f"kernel tests: {len(self.outcomes)} ran {where}: {tally}"
        elif self.mode.kind == "uml" and not self.umls:
            line = "kernel tests: none ran, User-Mode Linux was not started"
        elif self.mode.kind == "uml":
            ran = sum(len(uml.results()) for uml in self.umls)
            release = self.umls[0].release or uml_release() or "?"
            boots = [u.boot_seconds for u in self.umls if u.boot_seconds is not None]
            runs = [u.run_seconds for u in self.umls if u.run_seconds is not None]
            timing = ""
            if boots and runs:
                timing = f" (boot {max(boots):.1f} s, run {max(runs):.1f} s)"
            guests = f"{len(self.umls)} guests of " if len(self.umls) > 1 else ""
            line = (f"kernel tests: {ran} ran in {guests}User-Mode Linux {release}{timing}: "
                    f"{tally}")
            for uml in self.umls:
                if uml.error:
                    line += f"; {uml.error} (logs in {uml.run_dir})"
        else:
            verdict = "failed (CI)" if is_ci() else "skipped"
            line = f"kernel tests: none ran, {len(self.outcomes)} {verdict}: {self.mode.reason}"
        terminalreporter.write_sep("-", line)

    def pytest_unconfigure(self) -> None:
        for uml in self.umls:
            uml.kill()
            if uml.error is None and uml.exit_status() in (0, 1) and not os.environ.get(KEEP_ENV):
                uml.remove()
