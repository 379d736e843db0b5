"""CNI error codes (SPEC.md, "Error") and the error that carries one to stdout."""

from __future__ import annotations

from ..errors import BondctlError

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
PLUGIN_FAILURE = 100
LINK_IN_USE = 101


class CniError(BondctlError):
    """An error with an explicit CNI code (other BondctlErrors carry theirs as cni_code)."""

    def __init__(self, code: int, msg: str, *, details: str = "") -> None:
        super().__init__(msg, details=details)
        self.cni_code = code


def cni_code(exc: BaseException) -> int:
    return int(getattr(exc, "cni_code", PLUGIN_FAILURE))
