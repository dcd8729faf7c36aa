"""The realtime error middleware: every refusal and every bug is answered in JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from blocks_devnet.realtime.app import error_middleware
from blocks_devnet.server_thread import ServerThread
from tests.devnet.fuzz.raw_http import RawRequest, send


async def crash(_request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


@pytest.fixture
def port() -> Iterator[int]:
    def app() -> web.Application:
        application = web.Application(middlewares=[error_middleware], client_max_size=1024)
        application.router.add_get("/crash", crash)
        application.router.add_post("/echo", echo)
        return application

    thread = ServerThread(app)
    thread.start()
    yield thread.port
    thread.stop()


def test_a_bug_is_a_logged_json_500(port: int, caplog: pytest.LogCaptureFixture) -> None:
    answer = send(port, RawRequest(b"GET", (b"crash",)))
    assert answer.status == 500
    assert answer.json()["error"] is True and "logged" in answer.json()["message"]
    assert "a bug" in caplog.text


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (RawRequest(b"GET", (b"nowhere",)), 404),
        (RawRequest(b"DELETE", (b"crash",)), 405),
        (RawRequest(b"POST", (b"echo",), body=b"x" * 2048), 413),
    ],
    ids=["no-route", "wrong-method", "too-large"],
)
def test_http_refusals_are_json(port: int, request_: RawRequest, status: int) -> None:
    answer = send(port, request_)
    assert answer.status == status
    body = answer.json()
    assert body["status"] == status and body["error"] is True and body["service"] == "Balancer"


async def _broken_body(_request: web.Request) -> web.StreamResponse:
    raise web.RequestPayloadError("Invalid character in chunk size")


def test_a_body_that_breaks_off_midway_is_a_json_400() -> None:
    """aiohttp reports a body whose framing broke while the route read it this way."""
    request = make_mocked_request("POST", "/echo")
    answer = asyncio.run(error_middleware(request, _broken_body))
    assert isinstance(answer, web.Response) and answer.status == 400
    assert answer.body is not None
    assert json.loads(bytes(answer.body))["message"].startswith("Malformed request body")
