"""Files travel byte for byte both ways, whatever their bytes look like (protocol §5.6, §7).

Each payload is random bytes with multipart-looking lines planted inside: an upload body
whose boundary occurred in the file used to be cut there and the task still completed. One
agent (module-scoped) receives each payload as an input file and returns it as an artifact.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from blocks_network.consumer import TaskClient, file_part
from blocks_network.protocol.artifacts import FileArtifactRef, InlineArtifactRef
from blocks_network.protocol.constants import ARTIFACT_INLINE_LIMIT_BYTES
from blocks_network.testing import AgentRunner, BlocksTestNetwork
from blocks_network.types import StartTaskMessage, TaskContext
from tests.support.backend_client import make_card

WAIT_S = 60.0
AGENT = "mirror"
#: Lines a multipart parser treats specially, and the boundary the SDK used to send.
PLANTED = (
    b"\r\n--",
    b"--\r\n",
    b"\r\n------BlocksUploadBoundary",
    b"\r\n------BlocksUploadBoundary--\r\n",
    b"\r\n\r\n",
    b"\x00",
    b'Content-Disposition: form-data; name="file"\r\n\r\n',
)
IO = {
    "inputs": [
        {
            "id": "doc",
            "description": "Any bytes.",
            "contentType": "application/octet-stream",
            "required": True,
        }
    ],
}
SIZES = (1, 16_383, 16_384, 16_385, 100_000, 3 * 1024 * 1024)


def payload(size: int) -> bytes:
    """``size`` seeded random bytes with PLANTED lines every few KiB (wherever they fit)."""
    rng = random.Random(size)
    data = bytearray(rng.randbytes(size))
    offset = 0
    for index in range(size):
        marker = PLANTED[index % len(PLANTED)]
        if offset + len(marker) > size:
            break
        data[offset : offset + len(marker)] = marker
        offset += len(marker) + rng.randrange(0, 4096)
    return bytes(data)


def digest(data: bytes) -> tuple[str, int]:
    return hashlib.sha256(data).hexdigest(), len(data)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> None:
    """Overrides the suite's per-test check: the network and agent serve every test of this
    module on purpose, and ``network`` checks their threads are gone at the module's end."""


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlocksTestNetwork]:
    """One network for this module's tests (see ``mirror`` for the thread check)."""
    before = set(threading.enumerate())
    with BlocksTestNetwork.start(tmp_path_factory.mktemp("file-bytes")) as network:
        yield network
    leaked = [t for t in threading.enumerate() if t.name.startswith("blocks-") and t not in before]
    for thread in leaked:
        thread.join(timeout=5)
    assert not [t.name for t in leaked if t.is_alive()]


@pytest.fixture(scope="module")
def mirror(network: BlocksTestNetwork) -> Iterator[dict[str, tuple[str, int]]]:
    """An agent that returns its input file as an artifact; maps task id → what it received."""
    received: dict[str, tuple[str, int]] = {}

    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        got = ctx.download_input_artifact(task.request_parts[0])
        received[task.task_id] = digest(got.data)
        return {
            "artifacts": [
                {"data": got.data, "mimeType": "application/octet-stream", "fileName": "back.bin"}
            ]
        }

    runner = AgentRunner(network)
    runner.start(handler, AGENT, card=make_card(AGENT, io=IO))
    yield received
    runner.stop_all()


@pytest.fixture
def consumer(network: BlocksTestNetwork) -> Iterator[TaskClient]:
    client = network.client()
    yield client
    client.destroy()


@pytest.mark.parametrize("size", SIZES)
def test_file_round_trip_is_byte_exact(
    size: int, mirror: dict[str, tuple[str, int]], consumer: TaskClient
) -> None:
    data = payload(size)
    assert b"\r\n------BlocksUploadBoundary" in data or size < 64
    parts = [file_part(data, part_id="doc", file_name="in.bin")]
    with consumer.send_message(AGENT, parts) as session:
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        assert terminal.state == "completed", terminal.data
        (ref,) = session.list_artifacts()
        back = session.download_artifact(ref).data
    assert mirror[session.task_id] == digest(data), "consumer → agent input file"
    assert digest(back) == digest(data), "agent → consumer artifact"
    uploaded = size > ARTIFACT_INLINE_LIMIT_BYTES
    assert isinstance(ref, FileArtifactRef if uploaded else InlineArtifactRef)
