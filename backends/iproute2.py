"""The iproute2 backend: the `ip` command through `sh`.

Changes go to one `ip -batch -` process per call, one line per step, so a failed line tells
which step the kernel refused. Reading is one `ip -s -d -j link show` of the whole namespace;
the batch ends with that dump too, so the read-back after a change needs no second process.
A namespace with a name uses `ip -n NAME`; a bare path goes through `nsenter --net=PATH`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bondctl.backend import Availability, Backend, StepError
from bondctl.errors import KernelError
from bondctl.kernel import kernel_can_bond
from bondctl.markers import hookimpl
from bondctl.model import BondState, Link, SlaveState
from bondctl.netns import Netns
from bondctl.options import MODE, OPTIONS, SETTINGS, SLAVE_OPTIONS, Value
from bondctl.steps import CreateBond, DeleteLink, SetBond, SetLink, SetSlave, Step

_FAILED_LINE = re.compile(r"Command failed -:(\d+)")
_DUMP_FLAGS = ["-s", "-d", "-j"]


def _ip() -> Any:
    import sh  # about 100 ms to import: only when a command really runs

    return sh.Command("ip")


def _prefix(netns: Netns) -> list[str]:
    if netns.name:
        return ["-n", netns.name]
    return []


def _run(netns: Netns, args: list[str], stdin: str | None = None) -> str:
    """Run ip with argv `args` in `netns`; raise KernelError with ip's own message."""
    import sh

    command = _ip()
    argv = [*_prefix(netns), *args]
    if netns.path and not netns.name:
        command = sh.Command("nsenter")
        argv = [f"--net={netns.path}", "ip", *args]
    try:
        result = command(*argv, _in=stdin, _err_to_out=False, _tty_out=False)
    except sh.ErrorReturnCode as exc:
        raise KernelError(exc.stderr.decode(errors="replace").strip()) from None
    return str(result)


def _value(name: str, value: Value) -> str:
    return OPTIONS[name].render(value)


def _bond_args(options: Mapping[str, Value]) -> list[str]:
    args: list[str] = []
    for name, value in options.items():
        opt = OPTIONS[name]
        if opt.transient and not value:  # ip has no empty value: clear_active_slave
            args.append("clear_" + (opt.ip or name))
            continue
        args += [opt.ip or name, _value(name, value)]
    return args


def _caller_netns() -> str:
    # Seen from inside `ip -n NS`, /proc/self is ip itself: name our own process instead.
    return f"/proc/{os.getpid()}/ns/net"


def step_argv(step: Step) -> list[str]:
    """One `ip` argv (without the leading "ip") for one step."""
    if isinstance(step, CreateBond):
        args = ["link", "add", "name", step.name]
        if step.mtu:
            args += ["mtu", str(step.mtu)]
        if step.mac:
            args += ["address", step.mac]
        return [*args, "type", "bond", *_bond_args({MODE.name: step.mode, **step.options})]
    if isinstance(step, SetBond):
        return ["link", "set", "dev", step.name, "type", "bond", *_bond_args(step.options)]
    if isinstance(step, SetLink):
        args = ["link", "set", "dev", step.name]
        if step.master is not None:
            args += ["master", step.master] if step.master else ["nomaster"]
        if step.mtu:
            args += ["mtu", str(step.mtu)]
        if step.mac:
            args += ["address", step.mac]
        if step.new_name:
            args += ["name", step.new_name]
        if step.up is not None:
            args.append("up" if step.up else "down")
        return args
    if isinstance(step, SetSlave):
        args = ["link", "set", "dev", step.name, "type", "bond_slave"]
        for name, number in step.options.items():
            args += [name, str(number)]
        return args
    if isinstance(step, DeleteLink):
        return ["link", "del", "dev", step.name]
    target = step.to.name or step.to.path or _caller_netns()
    args = ["link", "set", "dev", step.name, "netns", target]
    return [*args, "name", step.new_name] if step.new_name else args


class Iproute2Backend(Backend):
    name = "iproute2"
    summary = "the ip command (iproute2), one batch per change"
    priority = 20
    options = frozenset(name for name, opt in SETTINGS.items() if opt.ip)
    slave_options = frozenset(SLAVE_OPTIONS)

    @classmethod
    def availability(cls) -> Availability:
        path = shutil.which("ip")
        if not path:
            return Availability(False, "the ip command (iproute2) is not installed")
        why = kernel_can_bond()
        if why is not None:
            return Availability(False, why)
        return Availability(True, f"uses {path}")

    # The dump the last batch ended with: the read-back that follows every change (ops
    # verifies what it applied) is taken by the same `ip` process, not a second one.
    _after: tuple[Netns, str] | None = None

    def execute(self, steps: Sequence[Step], netns: Netns) -> None:
        self._after = None
        if not steps:
            return
        lines = [" ".join(step_argv(step)) for step in steps]
        try:
            # Without -force, ip stops at the first failed line: the dump runs only when
            # every step took effect.
            out = _run(netns, [*_DUMP_FLAGS, "-batch", "-"],
                       stdin="\n".join([*lines, "link show"]) + "\n")
        except KernelError as exc:
            failed = _FAILED_LINE.search(exc.msg)
            index = min(int(failed.group(1)) - 1 if failed else 0, len(steps) - 1)
            reason = _FAILED_LINE.sub("", exc.msg).strip() or "failed"
            raise StepError(steps[index], reason, index) from None
        self._after = (netns, out)

    def render(self, steps: Sequence[Step], netns: Netns) -> list[str]:
        if netns.path and not netns.name:
            head = ["nsenter", f"--net={netns.path}", "ip"]
        else:
            head = ["ip", *_prefix(netns)]
        return [" ".join([*head, *step_argv(step)]) for step in steps]

    def links(self, netns: Netns) -> list[Link]:
        return [_link(item) for item in self._dump(netns)]

    def list_bonds(self, netns: Netns) -> list[BondState]:
        items = self._dump(netns)
        by_master: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if item.get("master"):
                by_master.setdefault(item["master"], []).append(item)
        return [
            _bond(item, by_master.get(item["ifname"], []), netns)
            for item in items
            if item.get("linkinfo", {}).get("info_kind") == "bond"
        ]

    def _dump(self, netns: Netns) -> list[dict[str, Any]]:
        after, self._after = self._after, None  # good for the one read right after a batch
        if after is not None and after[0] == netns:
            out = after[1]
        else:
            out = _run(netns, [*_DUMP_FLAGS, "link", "show"])
        data: list[dict[str, Any]] = json.loads(out or "[]")
        return data


def _link(item: Mapping[str, Any]) -> Link:
    info = item.get("linkinfo", {})
    stats = item.get("stats64", {})
    return Link(
        name=item["ifname"],
        index=item["ifindex"],
        mtu=item.get("mtu", 0),
        mac=item.get("address", ""),
        up="UP" in item.get("flags", []),
        operstate=item.get("operstate", "UNKNOWN"),
        kind=info.get("info_kind", ""),
        master=item.get("master"),
        perm_mac=item.get("permaddr"),
        rx_bytes=stats.get("rx", {}).get("bytes", 0),
        tx_bytes=stats.get("tx", {}).get("bytes", 0),
    )


def _bond_options(data: Mapping[str, Any]) -> dict[str, Value]:
    options: dict[str, Value] = {}
    for name, opt in SETTINGS.items():
        raw = data.get(opt.json_key, opt.when_absent)
        if raw is None and opt.kind == "enum":
            raw = opt.default  # ip prints an unset arp_validate as null
        if raw is None:
            continue
        options[name] = opt.parse(raw)
    return options


def _slave(item: Mapping[str, Any]) -> SlaveState:
    data = item.get("linkinfo", {}).get("info_slave_data", {})
    return SlaveState(
        name=item["ifname"],
        state=str(data.get("state", "")).lower(),
        mii_status=str(data.get("mii_status", "")).lower(),
        link_failure_count=int(data.get("link_failure_count", 0)),
        perm_hwaddr=str(data.get("perm_hwaddr", "")),
        ad_aggregator_id=data.get("ad_aggregator_id"),
        up="UP" in item.get("flags", []),
        operstate=item.get("operstate", "UNKNOWN"),
        mtu=item.get("mtu", 0),
        mac=item.get("address", ""),
        **{opt.name: int(data[opt.json_key]) for opt in SLAVE_OPTIONS.values()
           if data.get(opt.json_key) is not None},
    )


def _bond(item: Mapping[str, Any], slaves: Iterable[Mapping[str, Any]], netns: Netns
          ) -> BondState:
    data = item["linkinfo"].get("info_data", {})
    ad_info = data.get("ad_info")
    return BondState(
        name=item["ifname"],
        mode=str(MODE.parse(data.get(MODE.json_key, MODE.default))),
        options=_bond_options(data),
        slaves=tuple(_slave(s) for s in sorted(slaves, key=lambda s: int(s["ifindex"]))),
        up="UP" in item.get("flags", []),
        operstate=item.get("operstate", "UNKNOWN"),
        mtu=item.get("mtu", 0),
        mac=item.get("address", ""),
        index=item["ifindex"],
        ad_info=dict(ad_info) if ad_info else None,
        netns=netns.name or netns.path,
    )


@hookimpl
def bondctl_register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(Iproute2Backend)

