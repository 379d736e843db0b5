"""The steps a change is made of, independent of the backend that carries them out.

The orchestration in bondctl.ops plans a list of steps; a backend executes them (as one
`ip -batch`, a series of sysfs writes, or netlink messages) or renders them for --dry-run.
Options inside a step are ordered as in the catalogue, so the mode always comes first.
"""

from __future__ import annotations

from .record import Record

TYPE_CHECKING = False  # typing costs milliseconds: the CNI plans steps on every pod start
if TYPE_CHECKING:
    from collections.abc import Mapping

    from .netns import Netns
    from .options import Value


class CreateBond(Record):
    name: str
    mode: str
    options: Mapping[str, Value]
    mtu: int | None = None
    mac: str | None = None


class SetBond(Record):
    name: str
    options: Mapping[str, Value]  # may hold the mode


class SetLink(Record):
    """Link attributes; None leaves one alone. master "" releases the link from its bond."""

    name: str
    up: bool | None = None
    mtu: int | None = None
    mac: str | None = None
    new_name: str | None = None
    master: str | None = None


class SetSlave(Record):
    name: str
    options: Mapping[str, int]  # per-slave, keyed as SLAVE_OPTIONS


class DeleteLink(Record):
    name: str


class MoveLink(Record):
    name: str
    to: Netns
    new_name: str | None = None


Step = CreateBond | SetBond | SetLink | SetSlave | DeleteLink | MoveLink


def describe(step: Step) -> str:
    """A backend-neutral line for logs and for errors that name the failing step."""
    if isinstance(step, CreateBond):
        return f"create bond {step.name} (mode {step.mode})"
    if isinstance(step, SetBond):
        return f"set {', '.join(f'{k}={v}' for k, v in step.options.items())} on {step.name}"
    if isinstance(step, SetLink):
        if step.master is not None:
            return (f"enslave {step.name} to {step.master}" if step.master
                    else f"release {step.name}")
        parts = [("up" if step.up else "down") if step.up is not None else "",
                 f"mtu {step.mtu}" if step.mtu else "", f"mac {step.mac}" if step.mac else "",
                 f"name {step.new_name}" if step.new_name else ""]
        return f"set {step.name} {' '.join(p for p in parts if p)}"
    if isinstance(step, SetSlave):
        return f"set slave {step.name} {', '.join(f'{k}={v}' for k, v in step.options.items())}"
    if isinstance(step, DeleteLink):
        return f"delete {step.name}"
    return f"move {step.name} to {step.to.label}" + (
        f" as {step.new_name}" if step.new_name else "")
