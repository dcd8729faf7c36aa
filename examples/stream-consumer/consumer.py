"""A stream consumer: send a task with streaming and print every stream as it arrives.

    python examples/stream-consumer/consumer.py echo_stream "to be or not to be"

Works with any agent: streams are opened from ``session.on_stream`` as they are
announced, each read on its own thread, bytes printed as text and events as JSON lines.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from blocks_network import TaskClient, text_part
from blocks_network.stream import StreamClient, StreamError, StreamRef

TIMEOUT_S = 30.0


def run(client: TaskClient, agent: str, text: str, *, echo: bool = False) -> dict[str, Any]:
    """Send ``text`` with ``stream=True``; returns each stream's data and the artifacts."""
    received: dict[str, list[Any]] = {}
    errors: list[StreamError] = []
    readers: list[threading.Thread] = []
    lock = threading.Lock()

    def read(name: str, stream: StreamClient) -> None:
        items = stream.events() if stream.format == "events" else stream.bytes()
        for item in items:
            with lock:
                received.setdefault(name, []).append(item)
                if echo:
                    shown = item.decode() if isinstance(item, bytes) else json.dumps(item) + "\n"
                    print(shown, end="", flush=True)

    def on_stream(ref: StreamRef) -> None:
        if not ref.descriptor.readable:
            return  # a stream the consumer writes to (the agent reads it)
        stream = ref.open()
        stream.on_error(errors.append)  # fatal errors also end the loop in read()
        name = ref.descriptor.declared_stream or ref.stream_id
        reader = threading.Thread(
            target=read, args=(name, stream), name=f"reader-{name}", daemon=True
        )
        readers.append(reader)
        reader.start()

    with client.send_message(agent, [text_part(text)], stream=True) as session:
        session.on_stream(on_stream)
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
        for reader in readers:
            reader.join(TIMEOUT_S)  # each ends with its stream (stream_end, or the drain window)
        artifacts = [session.download_artifact(ref).data for ref in session.list_artifacts()]
    if echo:
        print()
    return {"state": terminal.state, "streams": received, "artifacts": artifacts, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    agent = args[0] if args else "echo_stream"
    text = " ".join(args[1:]) or "to be or not to be"
    with TaskClient.create(billing_mode="free") as client:
        result = run(client, agent, text, echo=True)
    print(
        f"task {result['state']}; artifacts: {[a.decode(errors='replace') for a in result['artifacts']]}"
    )
    return 0 if result["state"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
