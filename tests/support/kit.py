"""The testing kit's fixtures, scoped for this suite (imported by some conftest.py files).

The ``blocks_network`` pytest plugin offers a session-scoped network. Here it is narrowed to
one network per test package, because the suite's ``_no_leaked_threads`` check
(tests/conftest.py) fails any test that ends with a ``blocks-*`` thread running, and a
session network's server thread would run through every later test. Inside a package that
uses the network, the check below ignores threads that were running before the test
started (the network's), and still fails on any thread a test leaves behind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from blocks_network.testing import BlocksTestNetwork


@pytest.fixture(scope="package")
def blocks_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlocksTestNetwork]:
    """The kit's network, one per test package (see the module docstring)."""
    with BlocksTestNetwork.start(tmp_path_factory.mktemp("blocks-network")) as network:
        yield network


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Threads named blocks-* that a test started must not outlive it."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t.name.startswith("blocks-") and t.is_alive() and t not in before
    ]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads still running after the test: {still}"
