"""Boot User-Mode Linux once, run a pytest job inside it, collect what it left on the host fs.

The guest's root is the live host filesystem, so the job, its results and its logs are plain
files in a run directory both sides see. linux.uml's exit status says nothing about the guest:
only the files count.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bondctl.cli.uml import boot_command, ensure_module_symlinks
from tests.harness.report import RESULTS_ENV, load_results

HARNESS_DIR = Path(__file__).resolve().parent
INIT_SCRIPT = HARNESS_DIR / "init.sh"
GUEST_LAUNCHER = HARNESS_DIR / "guest.py"
RUN_ROOT_NAME = ".kernel-run"


def prune_old_runs(root: Path, max_age: float = 86400.0) -> None:
    """Run dirs are kept when a run went wrong; drop the stale ones."""
    try:
        old = [p for p in root.iterdir() if time.time() - p.stat().st_mtime > max_age]
    except OSError:
        return
    for path in old:
        shutil.rmtree(path, ignore_errors=True)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path.name}: missing)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class UmlRun:
    binary: str
    rootdir: Path
    python: str
    pytest_options: list[str]
    nodeids: list[str]
    env: dict[str, str]
    timeout: float
    boot_timeout: float = 600.0
    mem: str = "1024M"
    run_dir: Path = field(init=False)
    error: str | None = field(default=None, init=False)
    release: str | None = field(default=None, init=False)
    boot_seconds: float | None = field(default=None, init=False)
    run_seconds: float | None = field(default=None, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _started: float = field(default=0.0, init=False)
    _wall: float = field(default=0.0, init=False)
    _results: dict[str, dict[str, Any]] | None = field(default=None, init=False)
    _seen: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    _offset: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.run_dir = self.rootdir / RUN_ROOT_NAME / uuid.uuid4().hex[:12]

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"

    @property
    def output_log(self) -> Path:
        return self.run_dir / "output.log"

    def _write_job(self) -> None:
        self.run_dir.mkdir(parents=True)
        # Node ids go through a file (pytest's @FILE argument, one per line), not argv.
        tests_file = self.run_dir / "tests.txt"
        tests_file.write_text("".join(f"{nodeid}\n" for nodeid in self.nodeids))
        argv = [
            self.python,
            "-m",
            "pytest",
            *self.pytest_options,
            f"--basetemp={self.run_dir / 'basetemp'}",
            f"@{tests_file}",
        ]
        env = dict(self.env, **{RESULTS_ENV: str(self.run_dir / "results.jsonl")})
        job = {"cwd": str(self.rootdir), "argv": argv, "env": env}
        # The job carries the caller's environment: keep it private to root.
        fd = os.open(self.run_dir / "job.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(job, out)

    def command(self) -> list[str]:
        return boot_command(self.run_dir, INIT_SCRIPT, self.mem, uml=self.binary,
                            params={"BONDCTL_RUN_DIR": str(self.run_dir),
                                    "BONDCTL_PYTHON": self.python,
                                    "BONDCTL_GUEST": str(GUEST_LAUNCHER)})

    def start(self) -> None:
        ensure_module_symlinks()
        prune_old_runs(self.rootdir / RUN_ROOT_NAME)
        try:
            self._write_job()
            with self.console_log.open("wb") as console:
                self._started = time.monotonic()
                self._proc = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except (OSError, ValueError) as err:
            self.error = f"cannot start User-Mode Linux: {err}"

    def wait(self) -> None:
        """Block until the guest is done (or given up on); idempotent."""
        if self._results is not None:
            return
        if self._proc is not None:
            self._poll_until_exit()
        self._collect()

    def _poll_until_exit(self) -> None:
        assert self._proc is not None
        while self._proc.poll() is None and not self._given_up():
            time.sleep(0.2)
        self._wall = time.monotonic() - self._started

    def _given_up(self) -> bool:
        """Past a deadline: the guest is killed and self.error says why."""
        elapsed = time.monotonic() - self._started
        if elapsed > self.timeout:
            self.error = f"User-Mode Linux run timed out after {self.timeout:.0f} s"
        elif elapsed > self.boot_timeout and not (self.run_dir / "booted").exists():
            self.error = f"User-Mode Linux did not boot within {self.boot_timeout:.0f} s"
        if self.error:
            self.kill()
        return self.error is not None

    def result(self, nodeid: str) -> dict[str, Any] | None:
        """One test's result as soon as the guest has written it (the guest goes on with the
        others): the outer run reports each kernel test as it finishes, not all at the end."""
        while self._results is None and self._proc is not None and self._proc.poll() is None:
            self._read_new()
            if nodeid in self._seen:
                return self._seen[nodeid]
            if self._given_up():
                break
            time.sleep(0.2)
        return self.results().get(nodeid)

    def _read_new(self) -> None:
        """The complete lines appended to results.jsonl since the last call."""
        try:
            with (self.run_dir / "results.jsonl").open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        self._offset += end
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self._seen[entry["nodeid"]] = entry

    def _collect(self) -> None:
        self._results = load_results(self.run_dir / "results.jsonl")
        booted, status = self.run_dir / "booted", self.run_dir / "status"
        try:
            release, uptime = booted.read_text().split()
            self.release, self.boot_seconds = release, float(uptime)
            self.run_seconds = self._wall - self.boot_seconds
        except (OSError, ValueError):
            pass
        if self.error is None:
            if not booted.exists():
                rc = self._proc.returncode if self._proc else None
                self.error = f"User-Mode Linux did not boot (linux.uml exited {rc}, no init ran)"
            elif not status.exists():
                self.error = "the guest stopped before the test job finished"

    def results(self) -> dict[str, dict[str, Any]]:
        self.wait()
        assert self._results is not None
        return self._results

    def exit_status(self) -> int | None:
        try:
            return int((self.run_dir / "status").read_text().strip())
        except (OSError, ValueError):
            return None

    def diagnosis(self) -> str:
        """What to show for a test without a result: why, plus the logs' tails."""
        return (
            f"{self.error or 'the inner pytest run reported no result for this test'}\n"
            f"run dir: {self.run_dir}\n"
            f"{' inner pytest output (tail) ':-^78}\n{tail(self.output_log)}\n"
            f"{' UML console (tail) ':-^78}\n{tail(self.console_log)}"
        )

    def remove(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
