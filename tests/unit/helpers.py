"""Unit-test helpers shared by several files."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any


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
