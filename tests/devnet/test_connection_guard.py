"""The connection guard's rules, on fake transports and a clock the test moves."""

from __future__ import annotations

import pytest

from blocks_devnet.connection_guard import (
    ConnectionGuard,
    ConnectionTimeouts,
    GuardedConnection,
    Phase,
)

TIMEOUTS = ConnectionTimeouts(
    head_seconds=10, idle_seconds=75, body_min_bytes=1000, body_window_seconds=10
)


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False
        self.reading = True

    def abort(self) -> None:
        self.aborted = True

    def is_reading(self) -> bool:
        return self.reading


def _connection(guard: ConnectionGuard, phase: Phase, at: float) -> GuardedConnection:
    guard.now = at
    connection = guard.watch(FakeTransport())  # type: ignore[arg-type]
    connection.enter(phase)
    return connection


def _aborted(connection: GuardedConnection) -> bool:
    transport = connection.transport
    assert isinstance(transport, FakeTransport)
    return transport.aborted


@pytest.mark.parametrize(
    ("phase", "limit"), [(Phase.HEAD, 10), (Phase.IDLE, 75)], ids=["head", "idle"]
)
def test_a_waiting_connection_is_closed_once_its_phase_lasted_too_long(
    phase: Phase, limit: float
) -> None:
    guard = ConnectionGuard(TIMEOUTS)
    connection = _connection(guard, phase, at=0)
    guard.now = limit - 0.1
    assert not guard.sweep() and not _aborted(connection)
    guard.now = limit
    assert guard.sweep() == {phase: 1} and _aborted(connection)


def test_an_answer_restarts_the_idle_clock() -> None:
    guard = ConnectionGuard(TIMEOUTS)
    connection = _connection(guard, Phase.IDLE, at=0)
    guard.now = 70
    connection.enter(Phase.IDLE)  # answered another request
    guard.now = 140
    assert not guard.sweep() and not _aborted(connection)


def test_a_busy_connection_is_never_closed() -> None:
    guard = ConnectionGuard(TIMEOUTS)
    connection = _connection(guard, Phase.BUSY, at=0)
    guard.now = 10_000
    assert not guard.sweep() and not _aborted(connection)
    assert guard.evict() == 0 and not _aborted(connection)


def test_a_body_must_keep_the_minimum_rate_unless_we_stopped_reading() -> None:
    guard = ConnectionGuard(TIMEOUTS)
    connection = _connection(guard, Phase.BODY, at=0)
    connection.received += 1000  # the minimum in the first window
    guard.now = 10
    assert not guard.sweep()
    connection.received += 999  # below it in the second, but reading was paused by us
    transport = connection.transport
    assert isinstance(transport, FakeTransport)
    transport.reading = False
    guard.now = 20
    assert not guard.sweep()
    transport.reading = True
    connection.received += 999  # below it, reading
    guard.now = 30
    assert guard.sweep() == {Phase.BODY: 1} and _aborted(connection)


def test_at_the_limit_the_longest_waiting_connections_are_closed_first() -> None:
    guard = ConnectionGuard(TIMEOUTS)
    busy = _connection(guard, Phase.BUSY, at=0)
    idle_newer = _connection(guard, Phase.IDLE, at=5)
    half_sent = _connection(guard, Phase.HEAD, at=3)
    idle_older = _connection(guard, Phase.IDLE, at=1)
    assert guard.evict(limit=2) == 2
    assert [_aborted(c) for c in (busy, idle_newer, half_sent, idle_older)] == [
        False,
        False,
        True,
        True,
    ]
    # Closed connections are no longer watched: the next eviction takes the next oldest.
    assert guard.evict(limit=2) == 1 and _aborted(idle_newer) and not _aborted(busy)


def test_an_answer_the_client_does_not_read_closes_even_a_busy_connection() -> None:
    guard = ConnectionGuard(TIMEOUTS)
    read_again = _connection(guard, Phase.BUSY, at=0)
    read_again.writing_paused(True)
    stalled = _connection(guard, Phase.BUSY, at=0)
    stalled.writing_paused(True)
    guard.now = 59
    read_again.writing_paused(False)  # the client read some: its clock stops
    assert not guard.sweep()
    guard.now = 60
    assert guard.sweep() == {Phase.SEND: 1} and _aborted(stalled) and not _aborted(read_again)
