"""Unit-test helpers shared by several files."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any


def spec_dict(spec: Any) -> dict[str, Any]:
    """A BondSpec as plain JSON-ready data (what tests compare and print; bondctl itself never
    needs it)."""
    return {
        "name": spec.name,
        "mode": spec.mode,
        "options": dict(spec.options),
        "slaves": [{"name": s.name, **s.options} for s in spec.slaves],
        "mtu": spec.mtu,
        "mac": spec.mac,
    }


def state_dict(state: Any) -> dict[str, Any]:
    """A BondState as plain JSON-ready data."""
    return {
        "name": state.name,
        "netns": state.netns,
        "mode": state.mode,
        "up": state.up,
        "operstate": state.operstate,
        "mtu": state.mtu,
        "mac": state.mac,
        "active_slave": state.active_slave,
        "options": {k: list(v) if isinstance(v, tuple) else v
                    for k, v in sorted(state.options.items())},
        "ad_info": dict(state.ad_info) if state.ad_info else None,
        "slaves": [s._asdict() for s in state.slaves],
    }


def within(seconds: int, call: Callable[[], Any]) -> Any:
    """`call()`, failing the test instead of hanging when it blocks (a FIFO opened without a
    peer would block forever)."""
    def expired(*_: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        return call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
