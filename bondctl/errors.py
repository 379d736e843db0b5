"""Every error bondctl raises, with the CLI exit code and the CNI error code it maps to.

The CLI documents the exit codes (docs/cli.md); the CNI codes are SPEC.md's, plus the
plugin's own (docs/cni.md): 100 only for an error nothing expected. They are named here, once,
because every error below carries one; bondctl.cni.errors re-exports them for the CNI.
"""

from __future__ import annotations

# CNI error codes (SPEC.md, "Error").
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN = 11
NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
# Plugin-specific codes start at 100.
PLUGIN_FAILURE = 100  # internal error: a bug (and the BONDCTL_FAULT test hook)
LINK_IN_USE = 101  # a link belongs to another attachment
STATE_DIFFERS = 102  # CHECK: the bond, its addresses or routes differ from the configuration


class BondctlError(Exception):
    """Base class: a clear, one-line message meant for a person."""

    exit_code = 1
    cni_code = PLUGIN_FAILURE

    def __init__(self, msg: str, *, details: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


class ValidationError(BondctlError):
    """Input that can never work: a bad option, value, name or combination."""

    exit_code = 2
    cni_code = INVALID_CONFIG


class UnsupportedError(BondctlError):
    """Valid input that the chosen backend or the running kernel cannot carry out."""

    exit_code = 2
    cni_code = UNSUPPORTED_FIELD


class NotFoundError(BondctlError):
    """A bond, link or namespace that does not exist."""

    exit_code = 3
    cni_code = INVALID_CONFIG


class KernelError(BondctlError):
    """The kernel refused a change; the message carries the kernel's own text."""

    exit_code = 4
    cni_code = IO_FAILURE


class BusyError(BondctlError):
    """Someone else holds what we need; retrying later can help."""

    exit_code = 5
    cni_code = TRY_AGAIN


class DriftError(BondctlError):
    """What runs differs from what was asked for."""

    exit_code = 6
    cni_code = STATE_DIFFERS


class BackendUnavailableError(BondctlError):
    """No backend (or not the one asked for) can work on this host."""

    exit_code = 7
    cni_code = NOT_AVAILABLE  # the plugin cannot operate on this node
