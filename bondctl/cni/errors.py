"""CNI error codes (SPEC.md, "Error") and the error that carries one to stdout.

Code 100 means an internal error, a bug in bond, and nothing else: no input may reach it.
Every failure that input, the kernel or a delegated plugin can cause has its own code.
"""

from __future__ import annotations

import errno

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
SPEC_CODES = frozenset({INCOMPATIBLE_VERSION, UNSUPPORTED_FIELD, UNKNOWN_CONTAINER, INVALID_ENV,
                        IO_FAILURE, DECODE_FAILURE, INVALID_CONFIG, TRY_AGAIN, NOT_AVAILABLE,
                        LIMITED_CONNECTIVITY})
# Plugin-specific codes start at 100.
PLUGIN_FAILURE = 100  # internal error: a bug (and the BONDCTL_FAULT test hook)
LINK_IN_USE = 101  # a link belongs to another attachment
STATE_DIFFERS = 102  # CHECK: the bond, its addresses or routes differ from the configuration
OUR_CODES = frozenset({PLUGIN_FAILURE, LINK_IN_USE, STATE_DIFFERS})

# A kernel refusal that the configuration provoked (it asks what this kernel or namespace
# cannot do), one that may pass, and the rest (5: the kernel failed us).
_CONFIG_ERRNOS = frozenset({errno.EINVAL, errno.ERANGE, errno.EOPNOTSUPP, errno.EAFNOSUPPORT,
                            errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EEXIST,
                            errno.EADDRNOTAVAIL, errno.ENODEV})
_TRANSIENT_ERRNOS = frozenset({errno.EBUSY, errno.EAGAIN, errno.ENOBUFS, errno.ENOMEM,
                               errno.EINTR})


class CniError(BondctlError):
    """An error with an explicit CNI code (other BondctlErrors carry theirs as cni_code)."""

    def __init__(self, code: int, msg: str, *, details: str = "") -> None:
        super().__init__(msg, details=details)
        self.cni_code = code


def cni_code(exc: BaseException) -> int:
    return int(getattr(exc, "cni_code", PLUGIN_FAILURE))


def kernel_error(exc: OSError, what: str) -> CniError:
    """A kernel refusal (rtnl.NetlinkError or any OSError) as "WHAT: the kernel's message":
    code 7 when the configuration asked for it, 11 when retrying may help, else 5."""
    code = exc.errno or 0
    if code in _CONFIG_ERRNOS:
        cni = INVALID_CONFIG
    elif code in _TRANSIENT_ERRNOS:
        cni = TRY_AGAIN
    else:
        cni = IO_FAILURE
    return CniError(cni, f"{what}: {exc.strerror or exc}")
