"""Every error bondctl raises, with the CLI exit code and the CNI error code it maps to.

The CLI documents the exit codes (docs/cli.md); the CNI codes are SPEC.md's, plus the
plugin's own (bondctl/cni/errors.py, docs/cni.md): 100 only for an error nothing expected.
"""

from __future__ import annotations


class BondctlError(Exception):
    """Base class: a clear, one-line message meant for a person."""

    exit_code = 1
    cni_code = 100

    def __init__(self, msg: str, *, details: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


class ValidationError(BondctlError):
    """Input that can never work: a bad option, value, name or combination."""

    exit_code = 2
    cni_code = 7


class UnsupportedError(BondctlError):
    """Valid input that the chosen backend or the running kernel cannot carry out."""

    exit_code = 2
    cni_code = 2


class NotFoundError(BondctlError):
    """A bond, link or namespace that does not exist."""

    exit_code = 3
    cni_code = 7


class KernelError(BondctlError):
    """The kernel refused a change; the message carries the kernel's own text."""

    exit_code = 4
    cni_code = 5


class BusyError(BondctlError):
    """Someone else holds what we need; retrying later can help."""

    exit_code = 5
    cni_code = 11


class DriftError(BondctlError):
    """What runs differs from what was asked for."""

    exit_code = 6
    cni_code = 102  # STATE_DIFFERS


class BackendUnavailableError(BondctlError):
    """No backend (or not the one asked for) can work on this host."""

    exit_code = 7
    cni_code = 50  # NOT_AVAILABLE: the plugin cannot operate on this node
