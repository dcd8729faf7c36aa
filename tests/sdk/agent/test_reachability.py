"""An outage in the log: one warning naming the host, debug while down, one "reconnected"."""

from __future__ import annotations

import logging

import pytest

from blocks_network.agent.reachability import Reachability


def test_one_warning_per_outage_and_one_reconnected_line(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    reach = Reachability("127.0.0.1:4280", clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="blocks_network.agent.reachability"):
        reach.answered()  # no outage: nothing to say
        for _ in range(5):
            reach.failed("presence update on c", "could not reach http://127.0.0.1:4280")
            now[0] += 1.5
        assert reach.down
        reach.answered()
        reach.answered()
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [lvl for lvl, _ in levels] == [logging.WARNING] + [logging.DEBUG] * 4 + [logging.INFO]
    assert levels[0][1].startswith("lost the connection to the network at 127.0.0.1:4280 (")
    assert levels[-1][1] == "reconnected to the network at 127.0.0.1:4280 after 7.5 s"
    assert not reach.down
