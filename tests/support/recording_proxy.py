"""A real HTTP proxy (``proxy.py``) in a subprocess, recording every request it forwards.

:class:`RecordingProxy` starts ``python -m proxy`` on a free loopback port with
:class:`RecordingPlugin`, which appends ``METHOD host:port path`` to a file for each request
(each ``CONNECT`` tunnel, each absolute-form request on a kept-alive connection) before
forwarding it, so a test reads what went through the proxy while connections stay open.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from proxy.http.proxy import HttpProxyBasePlugin

__all__ = ["RecordingPlugin", "RecordingProxy"]

_LOG_ENV = "BLOCKS_TEST_PROXY_LOG"
_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class RecordingPlugin(HttpProxyBasePlugin):  # type: ignore[misc]
    """Runs in the proxy process: one line per forwarded request, flushed at once."""

    def handle_client_request(self, request: Any) -> Any:
        method = (request.method or b"").decode()
        host = (request.host or b"").decode()
        path = (request.path or b"").decode() if method != "CONNECT" else ""
        with open(os.environ[_LOG_ENV], "a", encoding="utf-8") as log:
            log.write(f"{method} {host}:{request.port} {path}\n")
        return request


class RecordingProxy:
    """``proxy.py`` on ``127.0.0.1:port`` until :meth:`stop`; :meth:`requests` lists what
    it forwarded so far."""

    def __init__(self, directory: Path) -> None:
        self._log = directory / "proxy-requests.log"
        self._log.touch()
        port_file = directory / "proxy.port"
        self._output = (directory / "proxy.out").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxy",
                "--hostname",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--threaded",
                "--num-acceptors",
                "1",
                # Long-polls are held open for seconds without a byte: not idle for us.
                "--timeout",
                "300",
                "--plugins",
                f"{__name__}.RecordingPlugin",
            ],
            cwd=_ROOT,
            env={**os.environ, _LOG_ENV: str(self._log), "PYTHONPATH": str(_ROOT)},
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"proxy.py did not start: {self.output()}")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        return self._log.read_text(encoding="utf-8").splitlines()

    def output(self) -> str:
        if not self._output.closed:
            self._output.flush()
        return Path(self._output.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        self._output.close()
