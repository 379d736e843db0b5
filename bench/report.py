"""The goals, judged from the results, and the Markdown tables docs/performance.md carries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
ADD_PATH = "ADD path, -I -S (as dist/bond)"
ADD_PATH_SITE = "ADD path, with site (as .venv/bin/bond)"
NETLINK = "netlink (.venv/bin/bond)"
IPROUTE2 = "iproute2 (.venv/bin/bond)"
IPAM_PROGRAMS = frozenset({"static", "host-local", "dhcp"})
AGENT = "netlink (dist/bond → bondctl agent)"
DIRECT_DIST = "netlink (dist/bond, direct)"
AGENT_ADD = "agent: dist/bond to its first netlink request"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _programs(counted: dict[str, Any] | None) -> str:
    if not counted:
        return "—"
    parts = [f"{name} x{n}" if n > 1 else name for name, n in counted["programs"].items()]
    bare = counted["processes"] - sum(counted["programs"].values())
    if bare > 0:  # forked children that run Python, not a program (sysfs: setns + remount)
        parts.append(f"{bare} fork{'s' if bare > 1 else ''} without exec")
    return f"{counted['processes']}" + (f" ({', '.join(parts)})" if parts else "")


def ip_runs(counted: dict[str, Any]) -> int:
    return sum(n for name, n in counted["programs"].items() if name.split("→")[-1] == "ip")


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def goal(ident: str, name: str, met: bool | None, measured: str) -> None:
        out.append({"id": ident, "goal": name, "met": met, "measured": measured})

    native = results.get("native")
    if native:
        add = native["commands"][ADD_PATH]
        site = native["commands"][ADD_PATH_SITE]
        goal("add_path",
             "ADD path up to the first netlink/ip call ≤ 40 ms over the bare interpreter",
             add["over_floor_ms"] <= 40.0,
             f"{add['over_floor_ms']:+.1f} ms over `python -I -S -c pass` (as dist/bond runs "
             f"it; CPU {add['cpu_over_floor_ms']:+.1f} ms); {site['over_floor_ms']:+.1f} ms "
             f"over `python -c pass` with site (.venv/bin/bond)")
        goal("add_path_cpu",
             "direct ADD path (imports, parsing, validation) ≤ 15 ms CPU over "
             "`python -I -S -c pass`",
             add["cpu_over_floor_ms"] <= 15.0,
             f"{add['cpu_over_floor_ms']:+.1f} ms CPU (wall {add['over_floor_ms']:+.1f} ms)")
        agent = native["commands"].get(AGENT_ADD)
        if agent:
            goal("agent_first_netlink",
                 "agent mode: exec of `bond` to its first netlink request ≤ 5 ms (median)",
                 agent["median_ms"] <= 5.0,
                 f"{agent['median_ms']:.1f} ms median (p90 {agent['p90_ms']:.1f})")
        nl = native["imports"]["netlink_backend_alone_ms"]
        after = native["imports"]["netlink_backend_after_add_path_ms"]
        goal("netlink_import",
             "netlink backend module import ≤ 10 ms (cumulative, -X importtime, median)",
             nl["median_ms"] <= 10.0,
             f"{nl['median_ms']:.1f} ms imported alone; {after['median_ms']:.1f} ms after "
             f"the ADD path's own imports (n={nl['n']})")
    kernel = results.get("kernel")
    if kernel:
        variants = kernel["latency"]["variants"]
        bare = kernel["latency"]["floor_python"]["median_ms"]
        for label, limit, ident in ((AGENT, 1.6, "agent_add_del"),
                                    (DIRECT_DIST, 4.0, "dist_add_del")):
            pair = variants.get(label, {}).get("add_del")
            if pair:
                goal(ident, f"{label}: ADD+DEL ≤ {limit}x one bare `python3 -I -S -c pass` "
                     "(same boot)", pair["x_python"] <= limit,
                     f"{_x(pair['x_python'])}: {_ms(pair['median_ms'])} ms vs "
                     f"{_ms(bare)} ms")
        spawns = variants.get(NETLINK, {}).get("spawns")
        if spawns:
            extra = {p for c in spawns.values() for p in c["programs"]
                     if p.split("→")[-1] not in IPAM_PROGRAMS}
            forks = sum(c["processes"] - sum(c["programs"].values()) for c in spawns.values())
            goal("netlink_spawns", "netlink backend spawns no process but IPAM",
                 not extra and forks == 0,
                 f"ADD {_programs(spawns['add'])}; DEL {_programs(spawns['del'])}")
        spawns = variants.get(IPROUTE2, {}).get("spawns")
        if spawns:
            n = ip_runs(spawns["add"])
            run_ns = variants[IPROUTE2].get("spawns_run_netns")
            also = f"; with a /run/netns path: {ip_runs(run_ns['add'])}" if run_ns else ""
            goal("iproute2_ip", "iproute2 runs at most 2 `ip` per ADD", n <= 2,
                 f"{n} `ip` per ADD with a /var/run/netns path{also}")
        many = kernel.get("many_bonds")
        if many is None:  # a run of some parts only (--parts); merged later
            return out
        listing = many["commands"]["bondctl list --json"]
        goal("list_bonds",
             f"`bondctl list --json` ({many['bonds']} bonds) ≤ 1.5x `ip -d -j link show`",
             listing["x_ip"] is not None and listing["x_ip"] <= 1.5,
             f"{_x(listing['x_ip'])} ({_ms(listing['median_ms'])} ms vs "
             f"{_ms(many['commands']['ip -d -j link show']['median_ms'])} ms, in UML)")
    return out


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    native = results.get("native")
    if native:
        add(f"### Start-up, natively (median of {native['runs']} interleaved runs, "
            f"Python {native['python']})\n")
        add("| command | median ms | p10 | p90 | over its floor | CPU ms (user+sys) | CPU over "
            "floor |")
        add("|---|---|---|---|---|---|---|")
        for label, r in native["commands"].items():
            floor = "" if "floor" in label else f"{r['over_floor_ms']:+.1f} ms ({r['floor']})"
            cpu = "" if "floor" in label else f"{r['cpu_over_floor_ms']:+.1f}"
            add(f"| {label} | {_ms(r['median_ms'])} | {_ms(r['p10_ms'])} | "
                f"{_ms(r['p90_ms'])} | {floor} | {_ms(r['cpu']['median_ms'])} | {cpu} |")
        imp = native["imports"]
        add("")
        if imp.get("add_path_modules"):
            add("Modules the direct ADD path imports beyond the bare interpreter's: "
                + ", ".join(f"`{m}`" for m in imp["add_path_modules"]) + ".\n")
        add(f"Imports of the ADD path (`-X importtime`, median of {imp['add_path_total_ms']['n']}"
            f"; modules the bare interpreter imports anyway left out): "
            f"{_ms(imp['add_path_total_ms']['median_ms'])} ms in all. netlink backend "
            f"module: {_ms(imp['netlink_backend_alone_ms']['median_ms'])} ms cumulative "
            f"imported alone, {_ms(imp['netlink_backend_after_add_path_ms']['median_ms'])} ms "
            f"after the ADD path's imports. Loading the backend registry (pluggy, entry points, "
            f"every backend), which ADD does after validation: "
            f"{_ms(imp['registry_load_ms']['median_ms'])} ms.\n")
        add("| imported by the ADD path (cumulative) | ms | heaviest by self time | ms |")
        add("|---|---|---|---|")
        for a, b in zip(imp["add_path_top_cumulative"], imp["add_path_top_self"], strict=False):
            add(f"| `{a['module']}` | {a['median_ms']:.1f} | `{b['module']}` | "
                f"{b['median_ms']:.1f} |")
        add("")
    kernel = results.get("kernel")
    if kernel:
        lat = kernel["latency"]
        where = "User-Mode Linux" if kernel["in_uml"] else "natively"
        settle = lat.get("settle_s")
        pause = "" if settle is None else (
            ", back to back" if not settle else f", each command after {settle:g} s of quiet")
        add(f"### ADD+DEL latency per backend ({where}, kernel {kernel['kernel']}, median of "
            f"{kernel['runs']} interleaved runs in one boot{pause})\n")
        add(f"Bond of two veths already in the pod (`linksInContainer`), active-backup, "
            f"miimon 100, one address from the `static` IPAM plugin; `CNI_NETNS` "
            f"`{lat['netns_path']}`. Floors: the same bond by hand with one `ip -batch` "
            f"(ADD) and one `ip -batch` releasing and deleting it (DEL); bare interpreter "
            f"`python -I -S -c pass`: {_ms(lat['floor_python']['median_ms'])} ms.\n")
        add("| variant | ADD ms | p90 | x ip -batch | DEL ms | p90 | x ip -batch | ADD+DEL ms "
            "| ADD+DEL x python | processes per ADD | per DEL |")
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        bare = lat["floor_python"]["median_ms"]
        if "floor_true" in lat:
            t = lat["floor_true"]["median_ms"]
            add(f"| `/bin/true` (floor: one static exec) | {_ms(t)} | | | {_ms(t)} | | | "
                f"{_ms(2 * t)} | {_x(2 * t / bare)} | 1 | 1 |")
        add(f"| `python3 -I -S -c pass` (floor) | {_ms(bare)} | | | {_ms(bare)} | | | "
            f"{_ms(2 * bare)} | 2.00x | 1 | 1 |")
        if "floor_ipam" in lat:
            i_del = lat["floor_ipam"]["median_ms"]
            i_add = lat.get("floor_ipam_add", lat["floor_ipam"])["median_ms"]
            add(f"| `static` IPAM alone (floor: the Go plugin ADD and DEL each run) | "
                f"{_ms(i_add)} | | | {_ms(i_del)} | | | {_ms(i_add + i_del)} | "
                f"{_x((i_add + i_del) / bare)} | 1 | 1 |")
        for label, v in lat["variants"].items():
            a, d = v["add"], v["del"]
            both = v.get("add_del", {})
            sp, floor = v.get("spawns", {}), label.startswith("ip -batch")
            # strace sees the shim only: the agent forks its child (which runs IPAM) itself
            procs = {what: "— (one ip)" if floor else "1 + a fork of the agent"
                     if "agent" in label else _programs(sp.get(what)) for what in ("add", "del")}
            add(f"| {label} | {_ms(a['median_ms'])} | {_ms(a['p90_ms'])} | "
                f"{_x(a['x_ip_batch'])} | {_ms(d['median_ms'])} | "
                f"{_ms(d['p90_ms'])} | {_x(d['x_ip_batch'])} | "
                f"{_ms(both.get('median_ms'))} | {_x(both.get('x_python'))} | "
                f"{procs['add']} | {procs['del']} |")
        floor = lat["variants"].get("ip -batch (floor)", {}).get("add_del", {}).get("median_ms")
        if "floor_ipam" in lat and floor:
            least = floor + lat["floor_ipam"]["median_ms"] + lat.get(
                "floor_ipam_add", lat["floor_ipam"])["median_ms"]
            add(f"\nWhat no plugin that runs its IPAM can go below here: the `ip -batch` floors "
                f"plus `static`'s ADD and DEL, {_ms(least)} ms ADD+DEL, {_x(least / bare)} one "
                f"bare interpreter start.")
        for command, seen in lat.get("agent_phases", {}).items():
            steps = ", ".join(f"{name} {ms:.1f}" for name, ms in seen["median"].items()
                              if not name.startswith("faults"))
            add(f"\nThrough the agent, {command}: where its request child's time goes (median "
                f"ms of {seen['requests']}, from the zygote's accept; its debug log): {steps}; "
                f"page faults {seen['median']['faults after the handover']:.0f} after the "
                f"handover, {seen['median']['faults in all']:.0f} in all.")
        for label, v in lat["variants"].items():
            if "spawns_run_netns" in v:
                s = v["spawns_run_netns"]
                add(f"\n{label} with a `/run/netns/NAME` path (podman's; `ip -n NAME` needs "
                    f"no nsenter): ADD {_programs(s['add'])}; DEL {_programs(s['del'])}.")
        earlier = kernel.get("parts_from", {})
        par = kernel.get("parallel")
    if kernel and par:
        when = f"; measured {earlier['parallel']} in an earlier boot" \
            if "parallel" in earlier else ""
        add(f"\n### {par['parallel']} parallel ADDs ({par['backend']}, links from the host, "
            f"{par['rounds']} round(s){when})\n")
        add("| | batch wall ms | per second | each: median | p95 | alone: median |")
        add("|---|---|---|---|---|---|")
        for what in ("add", "del"):
            r = par[what]
            add(f"| {what.upper()} | {_ms(r['wall']['median_ms'])} | {r['per_second']:.1f} | "
                f"{_ms(r['each']['median_ms'])} | {_ms(r['each']['p95_ms'])} | "
                f"{_ms(r['alone']['median_ms'])} |")
    many = (kernel or {}).get("many_bonds")
    if kernel and many:
        when = f"; measured {earlier['many_bonds']} in an earlier boot" \
            if "many_bonds" in earlier else ""
        add(f"\n### Listing {many['bonds']} bonds (one dummy slave each; default backend "
            f"{many['default_backend']}{when})\n")
        add("| command | median ms | p90 | x ip -d -j link show |")
        add("|---|---|---|---|")
        for label, r in many["commands"].items():
            add(f"| `{label}` | {_ms(r['median_ms'])} | {_ms(r['p90_ms'])} | "
                f"{_x(r['x_ip'])} |")
        api = many["api_list_in_process"]
        add(f"\n`Bonds(backend, netns).list()` in process, without the interpreter and imports: "
            f"{_ms(api['median_ms'])} ms (p90 {_ms(api['p90_ms'])}).\n")
    judged = goals(results)
    if judged:
        add("### Goals\n")
        add("| goal | met | measured |")
        add("|---|---|---|")
        for g in judged:
            met = {True: "yes", False: "**no**", None: "—"}[g["met"]]
            add(f"| {g['goal']} | {met} | {g['measured']} |")
        add("")
    return "\n".join(lines).rstrip() + "\n"


def rewrite_section(path: Path, body: str) -> None:
    """Replace what lies between the bench markers in `path` (appending them if absent)."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{body}{END}"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)
