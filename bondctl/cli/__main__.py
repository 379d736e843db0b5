"""`python -m bondctl.cli`: how the demo starts itself inside User-Mode Linux."""

from bondctl.cli import main

main()
