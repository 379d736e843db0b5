"""python -m bench [--short] [--uml] [--native-only | --kernel-only] [--out FILE]
[--markdown FILE]: run the benchmarks, write JSON, print the tables."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results.json"
FULL = {"native_runs": 30, "runs": 20, "parallel": 32, "parallel_rounds": 3, "bonds": 256}
SHORT = {"native_runs": 5, "runs": 3, "parallel": 4, "parallel_rounds": 1, "bonds": 8}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def kernel_has_bonding() -> bool:
    from bondctl.kernel import bonding_loaded

    return bonding_loaded()


def kernel_in_uml(args: argparse.Namespace, sizes: dict[str, int]) -> dict[str, Any]:
    from bondctl.cli import uml

    why = uml.availability()
    if not why.ok:
        raise SystemExit(f"--uml: {why.reason}")
    with tempfile.TemporaryDirectory(prefix="bondctl-bench-uml-") as tmp:
        out = Path(tmp) / "kernel.json"
        argv = [sys.executable, "-m", "bench", "--kernel-only", "--out", str(out),
                "--parts", ",".join(args.parts)]
        if args.short:
            argv.append("--short")
        if args.runs:
            argv += ["--runs", str(args.runs)]
        if args.settle is not None:
            argv += ["--settle", str(args.settle)]
        os.chdir(ROOT)  # the guest starts in our cwd and runs `-m bench` from there
        log("booting User-Mode Linux for the kernel part")
        status = uml.run(argv, env={"PYTHONUNBUFFERED": "1"}, timeout=args.uml_timeout,
                         output=sys.stderr.buffer, mem="1536M")
        if status != 0 or not out.exists():
            raise SystemExit(f"the benchmark inside User-Mode Linux failed (status {status})")
        result: dict[str, Any] = json.loads(out.read_text())["kernel"]
        return result


def kernel_parts() -> tuple[str, ...]:
    return ("latency", "parallel", "many_bonds")


def keep_earlier_parts(results: dict[str, Any], out: Path) -> None:
    """Kernel parts this run left out come from the earlier results in `out`, marked with the
    date they were measured (a part is always one boot's own figures)."""
    kernel = results.get("kernel")
    if not kernel or not out.exists():
        return
    earlier = json.loads(out.read_text())
    for part in kernel_parts():
        if part not in kernel and part in earlier.get("kernel", {}):
            kernel[part] = earlier["kernel"][part]
            kernel.setdefault("parts_from", {})[part] = earlier["kernel"].get(
                "parts_from", {}).get(part, earlier.get("date"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--short", action="store_true", help="few runs, small scale (CI)")
    parser.add_argument("--uml", action="store_true",
                        help="run the kernel part inside User-Mode Linux")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--native-only", action="store_true")
    part.add_argument("--kernel-only", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    parser.add_argument("--markdown", type=Path,
                        help="rewrite the marked section of this file with the tables")
    parser.add_argument("--uml-timeout", type=float, default=3600.0)
    parser.add_argument("--parts", type=lambda v: v.split(","), default=list(kernel_parts()),
                        help="kernel parts to run: latency,parallel,many_bonds (default all); "
                        "the others are kept from the results already in --out, with their "
                        "date")
    parser.add_argument("--runs", type=int, help="rounds of the kernel part (default 20, or "
                        "3 with --short)")
    parser.add_argument("--settle", type=float, help="seconds of quiet before each timed "
                        "command of the latency part (default 1; 0: back to back)")
    parser.add_argument("--render", type=Path, metavar="RESULTS",
                        help="measure nothing: judge and print earlier results (JSON)")
    args = parser.parse_args(argv)
    if args.render:
        earlier = json.loads(args.render.read_text())
        earlier["goals"] = report.goals(earlier)
        args.render.write_text(json.dumps(earlier, indent=2) + "\n")
        table = report.markdown(earlier)
        print(table)
        if args.markdown:
            report.rewrite_section(args.markdown, table)
        return 0
    sizes = dict(SHORT if args.short else FULL)
    if args.runs:
        sizes["runs"] = args.runs
    started = time.monotonic()
    results: dict[str, Any] = {"short": args.short, "sizes": sizes,
                               "date": time.strftime("%Y-%m-%d %H:%M %Z"),
                               "cpus": os.cpu_count(), "load": list(os.getloadavg())}
    if not args.kernel_only:
        from . import startup

        log("native start-up")
        results["native"] = startup.run(sizes["native_runs"], log)
    if not args.native_only:
        if args.uml:
            results["kernel"] = kernel_in_uml(args, sizes)
        elif kernel_has_bonding() or args.kernel_only:
            from . import kernel

            results["kernel"] = kernel.run(runs=sizes["runs"], parallel=sizes["parallel"],
                                           parallel_rounds=sizes["parallel_rounds"],
                                           bonds=sizes["bonds"], log=log, parts=args.parts,
                                           **({} if args.settle is None
                                              else {"settle": args.settle}))
        else:
            results["kernel_skipped"] = "this kernel has no bonding driver: pass --uml"
            log("kernel part skipped: no bonding driver here (pass --uml)")
    keep_earlier_parts(results, args.out)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["goals"] = report.goals(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results)
    print(table)
    if args.markdown:
        report.rewrite_section(args.markdown, table)
    log(f"results: {args.out} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
