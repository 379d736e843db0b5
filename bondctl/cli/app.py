"""The typer application: global options and every command's arguments.

Command bodies import what they need when they run: `bondctl --help` loads only typer, the
catalogue and this module (rich, the backends, pluggy and sh load inside commands).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bondctl import __version__
from bondctl.cli import complete
from bondctl.cli.flags import collect, mode_help, with_catalogue_flags
from bondctl.cli.session import EXIT_INTERRUPTED, Session, error_line, handled, session_of

app = typer.Typer(
    name="bondctl",
    help="Create, inspect and change Linux bonds (link aggregation), over pluggable backends.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain click help: rich must not load for --help
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Below 0.1 s the redraw loop spins a CPU; above an hour a typo is likelier than intent.
WATCH_INTERVAL = (0.1, 3600)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (never styled) instead.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the commands, change nothing.")]
NameArg = Annotated[str, typer.Argument(help="The bond's name.", show_default=False,
                                         metavar="NAME", autocompletion=complete.bonds)]
NewNameArg = Annotated[str, typer.Argument(help="The new bond's name.", show_default=False,
                                            metavar="NAME")]
FileOpt = Annotated[Path, typer.Option("-f", "--file", help="YAML or JSON file ('-': stdin).",
                                       show_default=False, metavar="FILE")]


def _version(value: bool) -> None:
    if value:
        print(f"bondctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    netns: Annotated[str | None, typer.Option(
        "--netns", "-n", envvar="BONDCTL_NETNS", show_envvar=False, metavar="NAME|PATH",
        autocompletion=complete.namespaces,
        help="Network namespace: a name under /run/netns or a path (env BONDCTL_NETNS).")] = None,
    backend: Annotated[str | None, typer.Option(
        "--backend", "-b", metavar="NAME", autocompletion=complete.backends,
        help="Backend to use (see `bondctl backends`); "
        "default: the best available (env BONDCTL_BACKEND).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="JSON output for read commands.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="For write commands: print the commands, change nothing.")] = False,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, show_default=False,
                                         help="More detail; tracebacks on errors.")] = 0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Create, inspect and change Linux bonds (link aggregation), over pluggable backends.

    Exit codes: 0 ok, 1 unexpected, 2 usage or invalid value, 3 not found, 4 kernel refused,
    5 busy, 6 drift, 7 backend unavailable.
    """
    ctx.obj = Session(netns=netns, backend=backend, json=json_, dry_run=dry_run,
                      verbose=verbose)


def _session(ctx: typer.Context, *, json_: bool = False, dry_run: bool = False) -> Session:
    session = session_of(ctx)
    session.json = session.json or json_
    session.dry_run = session.dry_run or dry_run
    return session


# -- changing bonds ------------------------------------------------------------------------------
@app.command()
@handled
@with_catalogue_flags
def create(
    ctx: typer.Context,
    name: NewNameArg,
    mode: Annotated[str, typer.Option("--mode", "-m", help=mode_help(), show_default=False,
                                      metavar="MODE", autocompletion=complete.modes)],
    slave: Annotated[list[str] | None, typer.Option(
        "--slave", "-s", help="A link to enslave (repeat for more).", show_default=False,
        metavar="IF", autocompletion=complete.slave_candidates)] = None,
    opt: Annotated[list[str] | None, typer.Option(
        "--opt", "-o", help="Any option as KEY=VALUE, under any of its spellings (kernel, "
        "ip, CNI camelCase).", show_default=False, metavar="KEY=VALUE",
        autocompletion=complete.option_pairs)] = None,
    mtu: Annotated[str | None, typer.Option(help="MTU of the bond.", show_default=False,
                                            metavar="MTU")] = None,
    mac: Annotated[str | None, typer.Option(help="MAC address of the bond.",
                                            show_default=False, metavar="MAC")] = None,
    down: Annotated[bool, typer.Option("--down", help="Leave the bond down.")] = False,
    dry_run: DryRunOpt = False,
    json_: JsonOpt = False,
    **flags: object,
) -> None:
    """Create a bond, enslave its links and read it back.

    In the option help, "Modes:" lists the only modes the kernel accepts an option in (in
    any other mode it is an error, exit 2); "Takes effect in:" lists the modes where an
    option the kernel accepts in every mode changes anything (in any other it is applied,
    with a warning on stderr).
    """
    from bondctl.cli import change

    session = _session(ctx, json_=json_, dry_run=dry_run)
    options = collect(flags, opt or [])
    change.create(session, name, mode, options, slave or [], mtu, mac, up=not down)


@app.command()
@handled
def delete(
    ctx: typer.Context,
    name: NameArg,
    slaves_down: Annotated[bool, typer.Option(
        "--slaves-down", help="Leave the released slaves down (default: up).")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Release the slaves and delete the bond."""
    from bondctl.cli import change

    change.delete(_session(ctx, dry_run=dry_run), name, slaves_up=not slaves_down)


@app.command()
@handled
def enslave(
    ctx: typer.Context,
    name: NameArg,
    links: Annotated[list[str], typer.Argument(help="Links to add.", show_default=False,
                                               metavar="IF...",
                                               autocompletion=complete.slave_candidates)],
    dry_run: DryRunOpt = False,
) -> None:
    """Add links to a bond (each is taken down first, as the kernel needs)."""
    from bondctl.cli import change

    change.enslave(_session(ctx, dry_run=dry_run), name, links)


@app.command()
@handled
def release(
    ctx: typer.Context,
    name: NameArg,
    links: Annotated[list[str], typer.Argument(help="Slaves to release.",
                                               show_default=False, metavar="IF...",
                                               autocompletion=complete.slaves)],
    down: Annotated[bool, typer.Option("--down", help="Leave them down (default: up).")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Release slaves from a bond."""
    from bondctl.cli import change

    change.release(_session(ctx, dry_run=dry_run), name, links, up=not down)


@app.command("set")
@handled
def set_(
    ctx: typer.Context,
    name: NameArg,
    pairs: Annotated[list[str], typer.Argument(
        metavar="KEY=VALUE...", help="Options to change, under any spelling (see create "
        "--help for every option and its values).", show_default=False,
        autocompletion=complete.set_pairs)],
    dry_run: DryRunOpt = False,
) -> None:
    """Change options of a live bond, disturbing it only where the kernel needs it."""
    from bondctl.cli import change

    change.set_options(_session(ctx, dry_run=dry_run), name, pairs)


@app.command()
@handled
def failover(
    ctx: typer.Context,
    name: NameArg,
    to: Annotated[str | None, typer.Option(
        "--to", metavar="IF", autocompletion=complete.slaves,
        help="The slave to make active (default: the next one that is up).")] = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Move traffic to another slave (active-backup, balance-tlb, balance-alb)."""
    from bondctl.cli import change

    change.failover(_session(ctx, dry_run=dry_run), name, to)


# -- reading -------------------------------------------------------------------------------------
@app.command("list")
@handled
def list_(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Every bond in the namespace: mode, state, active slave, slaves up, MTU."""
    from bondctl.cli import reading

    reading.list_bonds(_session(ctx, json_=json_))


@app.command()
@handled
def show(
    ctx: typer.Context,
    name: NameArg,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Also show options that have no "
                                       "effect in the bond's mode.")] = False,
    json_: JsonOpt = False,
) -> None:
    """One bond in detail: options, slaves, 802.3ad state, problems."""
    from bondctl.cli import reading

    reading.show(_session(ctx, json_=json_), name, show_all=all_)


@app.command()
@handled
def watch(
    ctx: typer.Context,
    name: NameArg,
    interval: Annotated[float, typer.Option(
        min=WATCH_INTERVAL[0], max=WATCH_INTERVAL[1],
        help="Seconds between redraws when no link event comes "
             f"({WATCH_INTERVAL[0]} to {WATCH_INTERVAL[1]}).")] = 1.0,
    count: Annotated[int, typer.Option(help="Stop after this many redraws (0: never).")] = 0,
    once: Annotated[bool, typer.Option("--once", help="Draw once and exit.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print events as JSON lines.")] = False,
) -> None:
    """A live view of a bond: slave states, failovers as they happen, traffic rates."""
    from bondctl.cli import watch as watching

    watching.run(_session(ctx, json_=json_), name, interval=interval,
                 count=1 if once else count)


@app.command()
@handled
def backends(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Installed backends: origin, availability, options they can set."""
    from bondctl.cli import hostinfo

    hostinfo.backends(_session(ctx, json_=json_))


@app.command()
@handled
def doctor(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Can this host make bonds? Each check with a fix for what fails."""
    from bondctl.cli import hostinfo

    hostinfo.doctor(_session(ctx, json_=json_))


# -- desired state from a file -------------------------------------------------------------------
@app.command()
@handled
def apply(ctx: typer.Context, file: FileOpt, dry_run: DryRunOpt = False,
          json_: JsonOpt = False,
          rollback_after: Annotated[float | None, typer.Option(
              "--rollback-after", metavar="SECONDS", show_default=False,
              help="Keep a checkpoint and restore it after SECONDS unless `bondctl commit` "
              "(or --probe) confirms the change.")] = None,
          probe: Annotated[str | None, typer.Option(
              "--probe", metavar="ping:ADDR|cmd:COMMAND", show_default=False,
              help="With --rollback-after: the change stands while this keeps answering; "
              "three failures in a row restore at once.")] = None) -> None:
    """Make bonds match a file: create what is missing, change only what differs."""
    from bondctl.cli import desired

    desired.apply(_session(ctx, json_=json_, dry_run=dry_run), file,
                  rollback_after=rollback_after, probe=probe)


@app.command()
@handled
def commit(ctx: typer.Context) -> None:
    """Confirm the change of `apply --rollback-after`: it stays."""
    from bondctl.cli import checkpoint

    data = checkpoint.commit()
    print(f"committed checkpoint {data['id']} (apply of {data['source']})")


@app.command()
@handled
def rollback(ctx: typer.Context) -> None:
    """Undo the change of `apply --rollback-after` now, without waiting."""
    from bondctl.cli import checkpoint

    data, said = checkpoint.rollback_now()
    print(f"rolled back checkpoint {data['id']}: " + "; ".join(said))


@app.command()
@handled
def diff(ctx: typer.Context, file: FileOpt, json_: JsonOpt = False) -> None:
    """Show what `apply` would change."""
    from bondctl.cli import desired

    desired.show_diff(_session(ctx, json_=json_), file)


@app.command()
@handled
def check(ctx: typer.Context, file: FileOpt, json_: JsonOpt = False) -> None:
    """Compare running bonds with a file, setting by setting; exit 6 on drift."""
    from bondctl.cli import desired

    desired.check(_session(ctx, json_=json_), file)


# -- other tools' files -------------------------------------------------------------------------
FormatOpt = Annotated[str, typer.Option(
    "--format", "-F", metavar="networkd|netplan|nmstate|nm-keyfile|ifupdown2",
    help="The other tool's format.", show_default=False)]


@app.command()
@handled
def export(
    ctx: typer.Context,
    fmt: FormatOpt,
    name: Annotated[str | None, typer.Argument(
        help="The running bond (default: every bond in the namespace).", show_default=False,
        metavar="[NAME]")] = None,
    file: Annotated[Path | None, typer.Option(
        "-f", "--file", help="Export the bonds of this desired-state file instead.",
        show_default=False, metavar="FILE")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the files into DIR (default: stdout, each after a "
        "'# file: NAME' line).", show_default=False, metavar="DIR")] = None,
) -> None:
    """Write what recreates bonds at boot in another tool's format; warn about every
    setting that format cannot carry."""
    from bondctl.cli import persist

    persist.export(_session(ctx), fmt, name, file, out)


@app.command("import")
@handled
def import_(
    ctx: typer.Context,
    fmt: FormatOpt,
    path: Annotated[Path, typer.Argument(help="A file, a directory of files, or '-' (stdin).",
                                         show_default=False, metavar="PATH")],
) -> None:
    """Read bonds from another tool's files; print them as a desired-state file."""
    from bondctl.cli import persist

    persist.import_(fmt, path)


# -- first steps ---------------------------------------------------------------------------------
@app.command()
@handled
def demo(
    ctx: typer.Context,
    here: Annotated[bool, typer.Option("--here", help="Run on this kernel; never boot "
                                       "User-Mode Linux.")] = False,
    uml: Annotated[bool, typer.Option("--uml", help="Run inside User-Mode Linux even if this "
                                      "kernel can make bonds.")] = False,
    pace: Annotated[float, typer.Option(help="Seconds to pause between steps.")] = 1.0,
) -> None:
    """A guided tour: a throw-away bond, traffic, a failover, then everything cleaned up."""
    from bondctl.cli import demo as tour

    tour.run(_session(ctx), here=here, force_uml=uml, pace=pace)


@app.command(context_settings={"allow_interspersed_args": False,
                                "ignore_unknown_options": True})
@handled
def sandbox(
    ctx: typer.Context,
    command: Annotated[list[str] | None, typer.Argument(
        help="The command and its arguments, after `--` (default: your $SHELL).",
        show_default=False, metavar="[-- CMD...]")] = None,
    uml: Annotated[bool, typer.Option("--uml", help="Use User-Mode Linux even if this "
                                      "kernel can make bonds.")] = False,
) -> None:
    """A shell, or one command, where bonds can be made: here if this kernel has bonding,
    else inside User-Mode Linux. Its output and exit status are the command's."""
    from bondctl.cli import shell

    status = shell.run(_session(ctx), list(command or []), force_uml=uml)
    raise typer.Exit(status)


# -- the node's pods ----------------------------------------------------------------------------
StateDirOpt = Annotated[str, typer.Option(
    "--state-dir", metavar="DIR", help="The CNI plugin's state directory (its stateDir).")]
NoHostOpt = Annotated[bool, typer.Option("--no-host", help="Leave out the node's own bonds.")]


@app.command()
@handled
def pods(
    ctx: typer.Context,
    state_dir: StateDirOpt = "/var/lib/cni/bond",
    no_host: NoHostOpt = False,
    watch: Annotated[bool, typer.Option(
        "--watch", "-w", help="Keep watching: failovers and health changes as they happen "
        "(with --json: one JSON line per event).")] = False,
    interval: Annotated[float, typer.Option(
        min=WATCH_INTERVAL[0], max=WATCH_INTERVAL[1],
        help="--watch: seconds between readings of the state records.")] = 2.0,
    count: Annotated[int, typer.Option(help="--watch: stop after this many rounds "
                                       "(0: never).")] = 0,
    json_: JsonOpt = False,
) -> None:
    """Every bond the CNI made on this node, read in its pod: slaves, 802.3ad partner and a
    health verdict (ok, degraded, down, stale, gone) with the reason; host bonds too."""
    from bondctl.cli import pods as pod_view

    session = _session(ctx, json_=json_)
    if watch:
        pod_view.watch(session, state_dir, host=not no_host, interval=interval, count=count)
    else:
        pod_view.show(session, state_dir, host=not no_host)


@app.command()
@handled
def monitor(
    ctx: typer.Context,
    metrics_address: Annotated[str | None, typer.Option(
        "--metrics-address", metavar="HOST:PORT", show_default=False,
        help="Serve Prometheus metrics here, e.g. 127.0.0.1:9465 (default: none).")] = None,
    state_dir: StateDirOpt = "/var/lib/cni/bond",
    no_host: NoHostOpt = False,
) -> None:
    """Watch every pod's bond until stopped: one JSON line per failover, slave or health
    change on stdout, and Prometheus metrics if asked."""
    from bondctl.cli import pods as pod_view

    pod_view.monitor(metrics_address, state_dir, host=not no_host)


@app.command()
def agent(
    socket_path: Annotated[str, typer.Option(
        "--socket", metavar="PATH", envvar="BONDCTL_AGENT_SOCKET",
        help="The unix socket the native bond shim connects to.")] = "/run/bondctl/agent.sock",
    timeout: Annotated[float, typer.Option(help="Seconds a request may run before it is "
                                           "killed.")] = 300.0,
    log_file: Annotated[str | None, typer.Option(
        "--log-file", metavar="PATH", help="Append the agent's log here (a file under "
        "BONDCTL_LOG_DIR); default stderr.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    probe: Annotated[bool, typer.Option("--probe", help="Exit 0 if an agent answers on the "
                                        "socket, 1 if not.")] = False,
    metrics_address: Annotated[str | None, typer.Option(
        "--metrics-address", metavar="HOST:PORT", help="Serve Prometheus metrics of every "
        "pod's bond here and log failover events (docs/observability.md); default off.")] = None,
    state_dir: Annotated[str, typer.Option(
        "--state-dir", metavar="DIR", help="The CNI state dir the monitor reads.")
    ] = "/var/lib/cni/bond",
) -> None:
    """Serve the bond CNI plugin's requests from one resident process (docs/deploy.md)."""
    from bondctl.cni.agent import main as agent_main

    argv = ["--socket", socket_path, "--timeout", str(timeout), "--log-level", log_level,
            "--state-dir", state_dir]
    argv += ["--log-file", log_file] if log_file else []
    argv += ["--metrics-address", metrics_address] if metrics_address else []
    argv += ["--probe"] if probe else []
    raise typer.Exit(agent_main(argv))


cni_app = typer.Typer(help="The bond CNI plugin on this node.", no_args_is_help=True)
app.add_typer(cni_app, name="cni")


@cni_app.command("install")
@handled
def cni_install(
    ctx: typer.Context,
    dest: Annotated[Path, typer.Option("--dir", "-d", metavar="DIR",
                                       help="The CNI bin dir.")] = Path("/opt/cni/bin"),
    artifact: Annotated[Path | None, typer.Option(
        "--artifact", metavar="PATH", show_default=False,
        help="A self-contained build (dist/bond of packaging/build-artifact.sh, with its "
             ".bond-runtime next to it), for nodes without Python. Default: the plugin made "
             "from this installed bondctl, run by this host's Python.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a `bond` that is not ours "
                                        "(bond-cni's Go plugin).")] = False,
) -> None:
    """Install the bond CNI plugin atomically (the same plugin again: no change)."""
    from bondctl.cni.install import install, install_pair

    if artifact is not None:
        result = install(artifact, dest, force=force)
    else:
        from bondctl.cni.runtime import built

        with built() as (launcher, runtime, manifest):
            result = install_pair(launcher, runtime, manifest, dest, force=force)
    print(result.message)


def run() -> None:
    """The console script: typer's usage errors become one line on stderr, like every other
    error (docs/cli.md), instead of click's usage block."""
    import sys

    try:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError
    except ImportError:  # typer before it vendored click
        from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore

    try:
        status = app(prog_name="bondctl", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()  # `bondctl` alone prints the help
        status = exc.exit_code
    except ClickException as exc:
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see `{ctx.command_path} --help`)"
        error_line(exc.format_message().rstrip(".") + hint)
        status = exc.exit_code
    except typer.Abort:
        error_line("interrupted")
        status = EXIT_INTERRUPTED
    sys.exit(status if isinstance(status, int) else 0)
