"""The config reference tables of docs/cni.md, rendered from the option catalogue so the
documentation cannot drift from what the plugin accepts (tests/unit/test_cni_docs.py)."""

from __future__ import annotations

from ..options import MODES, SETTINGS, SLAVE_OPTIONS, Option


def _modes(modes: frozenset[int]) -> str:
    return "all" if len(modes) == len(MODES) else ", ".join(MODES[m] for m in sorted(modes))


def _effect(opt: Option) -> str:
    """Where an option works: its modes, and whether the kernel refuses it elsewhere or takes
    it without effect (bondctl.options.ineffective warns of the latter)."""
    modes, effective = opt.modes, opt.effective
    if len(effective) == len(MODES):
        return "all"
    if modes == effective:
        return f"{_modes(effective)} (refused in others)"
    return f"{_modes(effective)} (no effect in others)"


def _default(value: object) -> str:
    if value in ("", ()):
        return "—"
    return f"`{value}`"


def option_table() -> str:
    """One row per bond option: CNI key, kernel name, values, default, modes, meaning."""
    rows = ["| key | kernel option | values | default | takes effect in | meaning |",
            "|---|---|---|---|---|---|"]
    for opt in SETTINGS.values():
        flags = []
        if opt.min_kernel != (0, 0):
            flags.append(f"Linux ≥ {opt.min_kernel[0]}.{opt.min_kernel[1]}")
        if opt.netlink_only:
            flags.append("netlink/iproute2 backends only")
        note = f" ({'; '.join(flags)})" if flags else ""
        rows.append(f"| `{opt.cni_key}` | {opt.name} | {opt.allowed()} | {_default(opt.default)} "
                    f"| {_effect(opt)} | {opt.doc}{note} |")
    return "\n".join(rows) + "\n"


def link_option_table() -> str:
    """Per-link keys, inside each `links` entry."""
    rows = ["| key | kernel option | values | modes | meaning |", "|---|---|---|---|---|"]
    for opt in SLAVE_OPTIONS.values():
        rows.append(f"| `{opt.cni_key}` | {opt.name} | {opt.minimum} to {opt.maximum} "
                    f"| {_modes(opt.modes)} | {opt.doc} |")
    return "\n".join(rows) + "\n"


def mode_list() -> str:
    return ", ".join(f"`{name}` ({number})" for number, name in enumerate(MODES))


if __name__ == "__main__":
    print(option_table())
    print(link_option_table())
