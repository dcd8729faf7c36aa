"""Fixtures for tests that run ``blocks devnet`` as a child process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.devnet_process import Devnet


@pytest.fixture
def devnet_factory() -> Iterator[list[Devnet]]:
    started: list[Devnet] = []
    yield started
    for devnet in started:
        devnet.kill()
