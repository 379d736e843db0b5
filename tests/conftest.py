"""Test-suite wiring: where kernel tests run (tests/harness/plugin.py) and the namespace
fixtures every kernel test uses (tests/harness/netns.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.kernel import KernelInfo
from tests.harness.kernel import kernel_info as _kernel_info
from tests.harness.netns import LinkFactory, Netns, NetnsPool, PeerNetns
from tests.harness.plugin import KernelSuite
from tests.harness.report import RESULTS_ENV, ResultWriter


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(KernelSuite(config), "bondctl-kernel-suite")
    results = os.environ.get(RESULTS_ENV)
    if results:  # we are the inner run, inside User-Mode Linux
        config.pluginmanager.register(ResultWriter(Path(results)), "bondctl-kernel-results")


@pytest.fixture(scope="session")
def kernel_info() -> KernelInfo:
    """The kernel the test runs on: .release (tuple), .release_str, .in_uml."""
    return _kernel_info()


@pytest.fixture
def netns_pool() -> Iterator[NetnsPool]:
    pool = NetnsPool()
    yield pool
    pool.close()


@pytest.fixture
def netns(netns_pool: NetnsPool) -> Netns:
    """A fresh named network namespace with lo up, deleted (with its links) after the test."""
    return netns_pool.new()


@pytest.fixture
def make_netns(netns_pool: NetnsPool) -> Callable[..., Netns]:
    """Factory for more namespaces in the same test: make_netns(prefix="bt") -> Netns."""
    return netns_pool.new


@pytest.fixture
def _peer_netns_holder(netns_pool: NetnsPool) -> PeerNetns:
    return PeerNetns(netns_pool)


@pytest.fixture
def peer_netns(_peer_netns_holder: PeerNetns) -> Netns:
    """The namespace holding this test's veth peers (the "switch side" for datapath tests)."""
    return _peer_netns_holder.get()


@pytest.fixture
def make_links(_peer_netns_holder: PeerNetns) -> LinkFactory:
    """make_links(ns, n, kind="veth"|"dummy", prefix="eth") -> LinkSet of names in ns."""
    return LinkFactory(_peer_netns_holder)
