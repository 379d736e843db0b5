"""CNI error codes (SPEC.md, "Error"; named in bondctl.errors) and the error that carries one
to stdout.

Code 100 means an internal error, a bug in bond, and nothing else: no input may reach it.
Every failure that input, the kernel or a delegated plugin can cause has its own code.
"""

from __future__ import annotations

import errno

# The numbers are named once, in the core's errors (each BondctlError carries one).
from ..errors import DECODE_FAILURE as DECODE_FAILURE
from ..errors import INCOMPATIBLE_VERSION as INCOMPATIBLE_VERSION
from ..errors import INVALID_CONFIG as INVALID_CONFIG
from ..errors import INVALID_ENV as INVALID_ENV
from ..errors import IO_FAILURE as IO_FAILURE
from ..errors import LIMITED_CONNECTIVITY as LIMITED_CONNECTIVITY
from ..errors import LINK_IN_USE as LINK_IN_USE
from ..errors import NOT_AVAILABLE as NOT_AVAILABLE
from ..errors import PLUGIN_FAILURE as PLUGIN_FAILURE
from ..errors import STATE_DIFFERS as STATE_DIFFERS
from ..errors import TRY_AGAIN as TRY_AGAIN
from ..errors import UNKNOWN_CONTAINER as UNKNOWN_CONTAINER
from ..errors import UNSUPPORTED_FIELD as UNSUPPORTED_FIELD
from ..errors import BondctlError

SPEC_CODES = frozenset({INCOMPATIBLE_VERSION, UNSUPPORTED_FIELD, UNKNOWN_CONTAINER, INVALID_ENV,
                        IO_FAILURE, DECODE_FAILURE, INVALID_CONFIG, TRY_AGAIN, NOT_AVAILABLE,
                        LIMITED_CONNECTIVITY})
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
