"""`export` and `import`: bonds to and from other tools' files (bondctl.formats).

On stdout, each file starts with a `# file: NAME` line; `import -` splits its input at the
same lines, so `bondctl export ... | bondctl import --format F -` round-trips.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from bondctl.cli.session import Session, note
from bondctl.document import Bond
from bondctl.errors import NotFoundError, ValidationError

HEADER = re.compile(r"^# file: (\S+)\s*$", re.MULTILINE)


def running(session: Session, name: str | None) -> list[Bond]:
    """The bonds that run (one, or all in the namespace) as desired state, without the
    options that sit at the kernel default."""
    from bondctl import ipconfig
    from bondctl.document import from_state
    from bondctl.links import Links

    bonds = session.bonds()
    states = [bonds.show(name)] if name else bonds.list()
    if not states:
        raise NotFoundError(f"no bond in {bonds.netns.label}")
    links = Links(bonds.backend, bonds.netns)
    return [from_state(s, ipconfig.read(links, s.name), defaults=False) for s in states]


def export(session: Session, fmt: str, name: str | None, file: Path | None,
           out: Path | None) -> None:
    from bondctl import formats

    if file is not None and name is not None:
        raise ValidationError("give a bond name or -f FILE, not both")
    if file is not None:
        from bondctl.cli.desired import load

        bonds = [Bond(e.spec, None, e.ip) for e in load(file)]
    else:
        bonds = running(session, name)
    result = formats.export(fmt, bonds)
    for warning in result.warnings:
        note(f"warning: {warning}")
    if out is None:
        for fname, text in result.files.items():
            sys.stdout.write(f"# file: {fname}\n{text.rstrip()}\n")
        return
    out.mkdir(parents=True, exist_ok=True)
    for fname, text in result.files.items():
        target = out / fname
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text.rstrip() + "\n")
    note(f"wrote {len(result.files)} file(s) to {out}: {', '.join(result.files)}")


def split(text: str, default: str) -> dict[str, str]:
    """Files out of one text with `# file: NAME` lines; all of it is `default` without them."""
    marks = list(HEADER.finditer(text))
    if not marks:
        return {default: text}
    return {m.group(1): text[m.end():marks[i + 1].start() if i + 1 < len(marks) else None]
            for i, m in enumerate(marks)}


def read_files(path: Path) -> dict[str, str]:
    if str(path) == "-":
        return split(sys.stdin.read(), "stdin")
    if path.is_dir():
        return {p.name: p.read_text(encoding="utf-8") for p in sorted(path.iterdir())
                if p.is_file()}
    try:
        return split(path.read_text(encoding="utf-8"), path.name)
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file or directory") from None


def import_(fmt: str, path: Path) -> None:
    from bondctl import formats
    from bondctl.document import dump

    result = formats.parse(fmt, read_files(path))
    for warning in result.warnings:
        note(f"warning: {warning}")
    if not result.bonds:
        raise NotFoundError(f"{path}: no bond found in these {fmt} files")
    sys.stdout.write(dump(result.bonds))
