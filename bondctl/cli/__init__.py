"""The bondctl command-line interface."""
