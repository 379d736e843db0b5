"""bondctl, the operator's command line (typer + rich). `main` is the console script."""

from __future__ import annotations


def main() -> None:
    # The app module is imported here, not at package import: `import bondctl.cli` stays free.
    from bondctl.cli.app import run

    run()
