"""Which HTTP/1.1 wire code for the SDK's short requests (issue 14 §2): CPU per request.

Usage: python bench/transport_choice.py [--requests 3000] [--rounds 3]

One realtime server of the local network in its own process (``bench/_servers.py``); this
process sends ``--requests`` keep-alive ``GET /time/0`` requests on one connection with each
client in turn, ``--rounds`` times, and reports the client thread's CPU per request
(``time.thread_time``, so the server's work is not counted), the best round of each:

- ``Transport``: the SDK's ``Transport.handle_request`` (``PlainConnection`` + pool);
- ``HttpClient``: the SDK's client above it (URL split, header formatting, retries);
- ``http.client``, ``h11`` (over a plain socket), ``urllib3`` and ``httpx``.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h11
import httpx
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import realtime_server_process
from blocks_network.transport.base import Request, Transport
from blocks_network.transport.connections import format_headers
from blocks_network.transport.http_client import HttpClient

PATH = "/time/0"
HEADERS = {"User-Agent": "bench", "Accept-Encoding": "identity"}


def _ours(host: str, port: int) -> Callable[[], int]:
    transport = Transport()
    request = Request("GET", ("http", host, port), PATH, format_headers(HEADERS))
    return lambda: transport.handle_request(request).status


def _http_client(host: str, port: int) -> Callable[[], int]:
    client = HttpClient()
    url = f"http://{host}:{port}{PATH}"
    return lambda: client.request("GET", url, headers=HEADERS).status


def _stdlib(host: str, port: int) -> Callable[[], int]:
    conn = http.client.HTTPConnection(host, port, timeout=10)

    def call() -> int:
        conn.request("GET", PATH, headers=HEADERS)
        response = conn.getresponse()
        response.read()
        return response.status

    return call


def _h11(host: str, port: int) -> Callable[[], int]:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", f"{host}:{port}"), *HEADERS.items()]

    def call() -> int:
        data = conn.send(h11.Request(method="GET", target=PATH, headers=headers))
        sock.sendall(data + conn.send(h11.EndOfMessage()))
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                conn.start_next_cycle()
                return status

    return call


def _urllib3(host: str, port: int) -> Callable[[], int]:
    pool = urllib3.HTTPConnectionPool(host, port, maxsize=1, retries=False)
    return lambda: pool.request("GET", PATH, headers=HEADERS).status


def _httpx(host: str, port: int) -> Callable[[], int]:
    client = httpx.Client(base_url=f"http://{host}:{port}", trust_env=False)
    return lambda: client.get(PATH, headers=HEADERS).status_code


CLIENTS: dict[str, Callable[[str, int], Callable[[], int]]] = {
    "Transport": _ours,
    "HttpClient": _http_client,
    "http.client": _stdlib,
    "h11": _h11,
    "urllib3": _urllib3,
    "httpx": _httpx,
}


def measure(call: Callable[[], int], requests: int) -> float:
    """Client-thread CPU µs per request."""
    for _ in range(50):  # connect and warm up
        assert call() == 200
    start = time.thread_time()
    for _ in range(requests):
        call()
    return (time.thread_time() - start) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with realtime_server_process() as server:
        host, _, port = server.origin.rpartition(":")
        best: dict[str, float] = {}
        for _ in range(args.rounds):  # rounds interleave the clients, so load drifts evenly
            for name, make in CLIENTS.items():
                cpu = measure(make(host, int(port)), args.requests)
                best[name] = min(cpu, best.get(name, cpu))
    for name, cpu in best.items():
        print(f"{name:12s} {cpu:7.1f} µs CPU/request")


if __name__ == "__main__":
    main()
