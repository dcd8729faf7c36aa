"""Fixtures of the dashboard tests: one network per module, signed-in HTTP and browser clients.

Browser tests drive Debian's ``chromium`` with Playwright (never Playwright's own browser
download: the suite runs offline). Where no browser is installed they skip with one line
saying how to install it; ``make test`` installs it when it can (``make browser``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_network.testing import AgentRunner, BlocksTestNetwork
from tests.support.kit import _no_leaked_threads, blocks_network

__all__ = ["_no_leaked_threads", "blocks_network"]

#: Where the suite looks for Chromium (``DASHBOARD_CHROMIUM`` overrides).
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
INSTALL_HINT = (
    "no Chromium for the dashboard browser tests: run `make browser` "
    "(apt-get install -y chromium) or set DASHBOARD_CHROMIUM=/path/to/chromium"
)


def chromium_path() -> str | None:
    override = os.environ.get("DASHBOARD_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    return found


@pytest.fixture(scope="module")
def dash_agents(blocks_network: BlocksTestNetwork) -> Iterator[AgentRunner]:
    """Agents that live as long as the module (started from module fixtures)."""
    runner = AgentRunner(blocks_network)
    try:
        yield runner
    finally:
        runner.stop_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium shared by the module (browser modules skip, in one line, where
    there is none: see test_browser.py)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    assert executable is not None, INSTALL_HINT
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()
