"""Outer-run stand-ins for kernel tests that really run elsewhere (inside User-Mode Linux).

A proxy keeps the original item's nodeid, location and markers, so -v output, --lf, junitxml
and the summary look as if the test had run here; its runtest replays the inner result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


class InnerFailure(Exception):
    """Carries the text the outer report shows instead of a local traceback."""


def replay(result: dict[str, Any] | None, *, ci: bool, missing: Callable[[], str]) -> None:
    """Pass, fail, skip or xfail the way the inner run did. In CI a skipped kernel test is a
    defect: it fails."""
    if result is None:
        raise InnerFailure(missing())
    outcome = result["outcome"]
    if outcome == "failed":
        raise InnerFailure(result["longrepr"])  # its text already holds the captured output
    if outcome == "skipped":
        if ci:
            raise InnerFailure(
                f"kernel test skipped in CI (CI=true makes that a failure): {result['reason']}"
            )
        # Reported at the test's own location, not at this line.
        raise pytest.skip.Exception(result["reason"], _use_item_location=True)
    if outcome == "xfailed":
        pytest.xfail(result["reason"])


class KernelProxyItem(pytest.Item):
    def __init__(
        self,
        *,
        original: pytest.Item,
        fetch: Callable[[str], dict[str, Any] | None],
        missing: Callable[[], str],
        ci: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.original = original
        self._fetch = fetch
        self._missing = missing
        self._ci = ci
        self.own_markers = list(original.own_markers)
        self.keywords.update(original.keywords)

    @classmethod
    def wrap(cls, item: pytest.Item, **kwargs: Any) -> KernelProxyItem:
        assert item.parent is not None  # a collected test always has its module as parent
        return cls.from_parent(
            item.parent, name=item.name, nodeid=item.nodeid, original=item, **kwargs
        )

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.original.reportinfo()

    def runtest(self) -> None:
        replay(self._fetch(self.nodeid), ci=self._ci, missing=self._missing)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, InnerFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)
