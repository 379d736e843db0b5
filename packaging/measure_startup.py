"""Start-up time of a CNI plugin executable: the median of N runs of `CNI_COMMAND=VERSION CMD`.

Usage: python packaging/measure_startup.py [--runs N] LABEL=CMD [LABEL=CMD ...]
CMD is split on spaces (no shell). Each run gets stdin from /dev/null, as a runtime's VERSION
probe effectively does, and its stdout is discarded after checking the exit status.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def run_once(argv: list[str], env: dict[str, str]) -> float:
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)])
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter() - start
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} exited with status {status}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("commands", nargs="+", metavar="LABEL=CMD")
    args = parser.parse_args()
    env = {**os.environ, "CNI_COMMAND": "VERSION"}
    commands = []
    for spec in args.commands:
        label, _, cmd = spec.partition("=")
        argv = cmd.split()
        argv[0] = os.path.abspath(argv[0]) if os.sep in argv[0] else argv[0]
        run_once(argv, env)  # warm the page cache: nodes run the plugin hot, too
        commands.append((label, argv, []))
    # Round-robin, so a burst of load on a shared machine hits every command alike.
    for _ in range(args.runs):
        for _label, argv, times in commands:
            times.append(run_once(argv, env))
    for label, _argv, times in commands:
        times.sort()
        print(f"{label:<34} median {statistics.median(times) * 1000:6.1f} ms   "
              f"min {times[0] * 1000:6.1f}   max {times[-1] * 1000:6.1f}   (n={args.runs})")


if __name__ == "__main__":
    main()
