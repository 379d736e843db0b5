"""The contract every backend honours, built-in or third-party.

A backend translates steps (bondctl.steps) into kernel changes in a network namespace and reads
bonds and links back into the model. Planning, validation, verification and rollback live in
bondctl.ops, once, for every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from .errors import KernelError, NotFoundError
from .model import BondState, Link
from .netns import Netns
from .steps import Step, describe


class Availability(NamedTuple):
    ok: bool
    reason: str  # why not, or what it uses when it can


class StepError(KernelError):
    """A step the kernel refused. `done` counts the steps that took effect before it."""

    def __init__(self, step: Step, reason: str, done: int) -> None:
        super().__init__(f"{describe(step)}: {reason}")
        self.step = step
        self.reason = reason
        self.done = done


class Backend(ABC):
    """Subclass, fill in the class attributes and the abstract methods, then register the
    class from a `bondctl_register_backends` hook (see bondctl.hookspecs)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    priority: ClassVar[int] = 0  # the best available backend is the one with the highest
    options: ClassVar[frozenset[str]]  # bond options (catalogue names) it can set
    slave_options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Whether this backend can work on this host, and why not."""

    @abstractmethod
    def execute(self, steps: Sequence[Step], netns: Netns) -> None:
        """Carry out the steps in order; stop at the first failure with a StepError."""

    @abstractmethod
    def render(self, steps: Sequence[Step], netns: Netns) -> list[str]:
        """The exact commands, writes or messages `execute` would use, for --dry-run."""

    @abstractmethod
    def list_bonds(self, netns: Netns) -> list[BondState]:
        """Every bond in the namespace, read back from the kernel."""

    @abstractmethod
    def links(self, netns: Netns) -> list[Link]:
        """Every link in the namespace."""

    def read(self, name: str, netns: Netns) -> BondState:
        """One bond; NotFoundError when there is no bond of that name."""
        for bond in self.list_bonds(netns):
            if bond.name == name:
                return bond
        raise NotFoundError(f"no bond named {name} in {netns.label}")

    def link(self, name: str, netns: Netns) -> Link | None:
        return next((link for link in self.links(netns) if link.name == name), None)
