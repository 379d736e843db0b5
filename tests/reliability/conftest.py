"""Fixtures of the reliability suite: the CNI world (tests/kernel/test_cni_support.py) and the
summary recorder behind docs/reliability.md."""

from tests.kernel.test_cni_support import cni  # noqa: F401
from tests.reliability.summary import summary  # noqa: F401
