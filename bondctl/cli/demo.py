"""`bondctl demo`: a newcomer's first run, start to finish in seconds, leaving nothing behind.

A throw-away namespace gets two veth links and an active-backup bond over them; a second
namespace is the switch (a bridge) with a peer host on it. Pings cross the bond, the active
slave's switch port goes down, the live view shows the failover, pings go on through the
other slave, and both namespaces are deleted, also on Ctrl-C. Without a bonding driver the
same tour runs inside User-Mode Linux when it is installed.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from bondctl.cli.session import FORCE_TERMINAL_ENV, Session, console
from bondctl.errors import BackendUnavailableError

if TYPE_CHECKING:
    from rich.console import Console

    from bondctl.cli.sandbox import Pinger

BOND_IP, PEER_IP, PREFIX = "10.77.0.1", "10.77.0.2", 24
# The demo's bond as a person asks for it; every line the demo prints about it is made from
# the spec built from this, so the words cannot drift from what runs.
BOND = {"name": "bond0", "mode": "active-backup", "options": {"miimon": 100},
        "slaves": ["eth0", "eth1"]}
STEPS = 6


def run(session: Session, *, here: bool, force_uml: bool, pace: float) -> None:
    from bondctl.cli import uml
    from bondctl.cli.hostinfo import _CAP_NET_ADMIN, capabilities

    out = console()
    if not capabilities() >> _CAP_NET_ADMIN & 1:
        raise BackendUnavailableError("the demo makes network namespaces: run it as root "
                                      "(sudo bondctl demo)")
    if here or uml.in_guest():
        tour(session, out, pace)
        return
    if not force_uml:
        from bondctl.cli.sandbox import native_bonding

        native, why = native_bonding()
        if native:
            tour(session, out, pace)
            return
    else:
        why = "--uml asked for it"
    fallback = uml.require(why)
    out.print(f"[bold]This kernel cannot make bonds[/] ({why}).", highlight=False)
    out.print(f"Running the demo inside User-Mode Linux instead ({fallback.reason}); booting "
              "takes a few seconds…\n", highlight=False)
    argv = uml.bondctl_argv()
    if session.backend:
        argv += ["--backend", session.backend]
    argv += ["demo", "--here", "--pace", str(pace)]
    started = time.monotonic()
    try:
        status = uml.run(argv, env=_guest_env(out), timeout=180)
    except KeyboardInterrupt:
        out.print("\ninterrupted: User-Mode Linux stopped; nothing was left on this host")
        raise
    out.print(f"\n(User-Mode Linux session ended after {time.monotonic() - started:.1f} s)")
    if status != 0:
        from bondctl.errors import BondctlError

        error = BondctlError(f"the demo inside User-Mode Linux failed (status {status})")
        error.exit_code = status if 0 < status < 126 else 1
        raise error


def _guest_env(out: Console) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("TERM", "NO_COLOR", "LANG", "LC_ALL")}
    env["COLUMNS"] = str(out.width)
    env["LINES"] = str(out.height)
    env[FORCE_TERMINAL_ENV] = "1" if out.is_terminal else "0"
    if not out.is_terminal or out.no_color:
        env["NO_COLOR"] = "1"
    env.setdefault("TERM", "xterm-256color" if out.is_terminal else "dumb")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _step(out: Console, number: int, text: str, pace: float) -> None:
    if number > 1 and pace:
        time.sleep(pace)
    out.print(f"\n[bold cyan]{number}/{STEPS}[/] [bold]{text}[/]")


def _pings(out: Console, pinger: Pinger, count: int) -> int:
    times = [pinger.ping(1.0) for _ in range(count)]
    got = [t for t in times if t is not None]
    average = f", average {sum(got) / len(got):.2f} ms" if got else ""
    style = "green" if len(got) == count else "bold red"
    out.print(f"    ping {PEER_IP}: [{style}]{len(got)}/{count} replies[/]{average}")
    return len(got)


def tour(session: Session, out: Console, pace: float) -> None:
    from bondctl.cli.flags import flag_name
    from bondctl.cli.render import header, slaves_table
    from bondctl.cli.sandbox import Pinger, Sandbox, batch, ip
    from bondctl.cli.views import bond_view
    from bondctl.document import from_mapping
    from bondctl.ops import Bonds
    from bondctl.options import OPTIONS

    started = time.monotonic()
    backend = session.select_backend()
    where = "inside User-Mode Linux" if _in_uml() else f"on Linux {os.uname().release}"
    out.print(f"[bold]bondctl demo[/] {where}, backend [bold]{backend.name}[/]")
    with Sandbox() as box:
        _step(out, 1, "Two throw-away network namespaces", pace)
        host = box.netns()
        switch = box.netns("sw")
        batch(switch, [
            "link add br0 up type bridge",
            f"addr add {PEER_IP}/{PREFIX} dev br0",
            *(f"link add sw{i} up type veth peer name eth{i} netns {host}" for i in (0, 1)),
            *(f"link set sw{i} master br0" for i in (0, 1)),
        ])
        out.print(f"    {host}: eth0 and eth1, cabled to the switch\n"
                  f"    {switch}: the switch (bridge br0 with ports sw0, sw1) and the peer "
                  f"host {PEER_IP}")

        spec = from_mapping(BOND).spec
        asked = [(OPTIONS[k], v) for k, v in spec.options.items()]
        _step(out, 2, f"A bond over {' and '.join(spec.slave_names)}: {spec.mode}, "
                      + ", ".join(f"{opt.name} {v}" for opt, v in asked), pace)
        out.print(f"    bondctl --netns {host} create {spec.name} --mode {spec.mode} "
                  + " ".join([f"{flag_name(opt)} {v}" for opt, v in asked]
                             + [f"--slave {s}" for s in spec.slave_names]),
                  style="dim", highlight=False)
        bonds = Bonds(backend, host)
        state = bonds.create(spec).state
        ip("addr", "add", f"{BOND_IP}/{PREFIX}", "dev", "bond0", netns=host)
        assert state is not None
        out.print(header(bond_view(state)))
        out.print(slaves_table(bond_view(state)))

        _step(out, 3, f"Traffic: ping the peer host {PEER_IP} from the bond", pace)
        pinger = Pinger(host, PEER_IP)
        try:
            _pings(out, pinger, 3)
            active = bonds.show("bond0").active_slave or "eth0"
            port = f"sw{active[-1]}"
            _step(out, 4, f"Failure: the switch port of the active slave {active} ({port}) "
                          "goes down", pace)
            _failover(session, out, host, switch, port, pinger)
            after = bonds.show("bond0").active_slave
            _step(out, 5, f"Traffic again, now through {after}", pace)
            _pings(out, pinger, 3)
        finally:
            pinger.close()
        _step(out, 6, "Cleaning up: both namespaces are deleted, with everything in them", 0)
    out.print(f"    done in {time.monotonic() - started:.1f} s; nothing is left behind.\n")
    out.print("Next: [bold]bondctl doctor[/] checks this host; [bold]bondctl create --help"
              "[/] lists every option; [bold]bondctl watch BOND[/] is the live view.")
    if _in_uml():
        out.print("This host's kernel has no bonding: [bold]bondctl sandbox[/] opens a shell "
                  "inside User-Mode Linux where every command works.")


def _failover(session: Session, out: Console, host: str, switch: str, port: str,
              pinger: Pinger) -> None:
    """Pull the cable while pings run, and watch the bond move to the other slave."""
    from bondctl.cli.sandbox import ip
    from bondctl.cli.watch import Watcher, event_line, screen, wait
    watcher = Watcher(Session(netns=host, backend=session.backend), "bond0")
    results: list[bool] = []
    stop = threading.Event()

    def keep_pinging() -> None:
        while not stop.is_set():
            results.append(pinger.ping(0.2) is not None)
            stop.wait(0.1)

    thread = threading.Thread(target=keep_pinging, daemon=True)
    live = None
    try:
        watcher.read()
        thread.start()
        time.sleep(0.5)
        if out.is_terminal:
            from rich.live import Live

            live = Live(screen(watcher.tracker, watcher.source), console=out,
                        auto_refresh=False)
            live.start()
        ip("link", "set", port, "down", netns=switch)
        out.print(f"    ip -n {switch} link set {port} down", style="dim", highlight=False)
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            wait(watcher.sock, 0.3)
            events = watcher.read()
            if live is not None:
                live.update(screen(watcher.tracker, watcher.source), refresh=True)
            else:
                for event in events:
                    out.print(event_line(event))
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(2)
        if live is not None:
            live.stop()
        watcher.close()
    if live is None:
        out.print(screen(watcher.tracker, watcher.source))
    lost = results.count(False)
    style = "green" if lost <= 2 else "yellow"
    out.print(f"    pings during the failover: [{style}]{len(results) - lost} of {len(results)}"
              f" answered[/] (miimon notices the failure within 100 ms)")


def _in_uml() -> bool:
    from bondctl.cli import uml

    return uml.in_guest()
