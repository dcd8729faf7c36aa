"""The network SIGKILLed while four threads flood SendMessage: every task a client was
told exists still exists after the restart and ends exactly once."""

from __future__ import annotations

import signal
import threading

import pytest

from blocks_network import BlocksError, text_part
from tests.faults.consumer import Consumer
from tests.faults.harness import POLL_S, Devnet
from tests.support.task_rpc import wait_until

THREADS = 4
#: Acknowledged tasks before the kill.
ACKED_BEFORE_KILL = 100


@pytest.mark.timeout(240)
def test_every_acknowledged_task_survives_a_sigkill_during_a_flood(
    devnet: Devnet, echo_agent: object, consumer: Consumer
) -> None:
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            try:
                session = consumer.client.send_message("echo", [text_part("flood")])
            except BlocksError:
                stop.wait(POLL_S)  # unreachable while killed: not acknowledged, not counted
                continue
            session.close()
            with lock:
                acked.append(session.task_id)

    threads = [
        threading.Thread(target=flood, name=f"test-flood-{i}", daemon=True) for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(acked) >= ACKED_BEFORE_KILL, 60, "the flood to get going")
        devnet.kill(signal.SIGKILL)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not any(t.is_alive() for t in threads)

    devnet.restart()
    with lock:
        task_ids = list(acked)
    consumer.assert_none_gone(task_ids)
    consumer.wait_records_terminal(task_ids)
    consumer.assert_exactly_once(task_ids)
