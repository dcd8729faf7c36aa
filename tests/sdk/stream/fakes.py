"""Test doubles for stream unit tests: a recording publisher and a frame collector."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from blocks_network.protocol.cdm import Keyset
from blocks_network.transport.http_client import HttpResponse
from blocks_network.transport.publisher import TokenPublisher
from blocks_network.transport.pubnub_factory import RealtimeEndpoint

OK = HttpResponse(200, {}, b'[1,"Sent","17000000000000000"]')

Responder = Callable[[int, bytes], HttpResponse | Exception]


class RecordingPublisher(TokenPublisher):
    """Records every POST; ``responder(attempt_index, body)`` decides each answer."""

    def __init__(self, responder: Responder | None = None) -> None:
        super().__init__(RealtimeEndpoint("127.0.0.1:9", ssl=False), Keyset("pub-c-x", "sub-c-x"))
        self.responder = responder
        self.lock = threading.Condition()
        self.posts: list[tuple[str, bytes]] = []
        self.accepted: list[bytes] = []

    def post(self, url: str, body: bytes, *, timeout: float = 10.0) -> HttpResponse:
        with self.lock:
            index = len(self.posts)
            self.posts.append((url, body))
        answer: HttpResponse | Exception = (
            OK if self.responder is None else self.responder(index, body)
        )
        if isinstance(answer, Exception):
            raise answer
        with self.lock:
            if answer.status == 200:
                self.accepted.append(body)
            self.lock.notify_all()
        return answer

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until ``predicate(accepted frames as dicts)`` holds; return the frames."""
        with self.lock:
            ok = self.lock.wait_for(lambda: predicate(self.frames()), timeout)
            assert ok, f"condition not met; frames so far: {self.frames()}"
            return self.frames()

    def frames(self) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.accepted]
