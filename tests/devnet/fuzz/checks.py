"""What every fuzzed answer must satisfy, and the :class:`Fuzzer` that checks them.

Every answer is below 500 and JSON where the route answers JSON (requests aiohttp's HTTP
parser refuses get its plain-text 400); a refused request leaves no row behind; after a
round the server still tells the time and accepts a valid publish.
"""

from __future__ import annotations

from collections.abc import Callable

from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.store.database import Database
from blocks_network.protocol.constants import API_PATH_RPC
from blocks_network.protocol.errors import RPC_INTERNAL_ERROR
from tests.devnet.fuzz.dashboard_targets import is_dashboard
from tests.devnet.fuzz.mutator import Mutator, Template
from tests.devnet.fuzz.raw_http import RawRequest, RawResponse, segments, send
from tests.devnet.fuzz.realtime_targets import make_signer

Snapshot = dict[str, int]


#: Methods HTTP/1.1 parsers know; anything else never reaches a route.
_KNOWN_METHODS = (b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD")


def breaks_http_grammar(request: RawRequest) -> bool:
    """Bytes no HTTP/1.1 request line may hold (raw non-ASCII, an unknown method).

    aiohttp's parser refuses these with its own plain-text 400 before any route or
    middleware sees them; the fuzzer checks the status and that the server lives on.
    """
    return request.method not in _KNOWN_METHODS or any(
        byte < 0x21 or byte > 0x7E for byte in request.target
    )


def expects_json(request: RawRequest, response: RawResponse) -> bool:
    """Every answer is JSON except 204/307, bodiless HEADs, the file bytes themselves and
    the dashboard's pages."""
    if response.status in (204, 307) or request.method == b"HEAD" or is_dashboard(request):
        return False
    is_download = request.segments[:3] == (b"v1", b"files", b"download")
    return not (is_download and response.status == 200)


def check_answer(request: RawRequest, response: RawResponse) -> None:
    where = f"{response.status} for {request.describe()}: {response.body[:200]!r}"
    if breaks_http_grammar(request):
        assert response.status == 400, where
        return
    assert response.status < 500, where
    if not expects_json(request, response):
        return
    assert response.headers.get("content-type", "").startswith("application/json"), where
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"not JSON: {where}") from None
    # JSON-RPC answers its errors with HTTP 200; an internal error there is the 500.
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        assert body["error"].get("code") != RPC_INTERNAL_ERROR, where


def counts(db: Database, tables: tuple[str, ...]) -> Snapshot:
    return {t: int(db.query_one(f"SELECT COUNT(*) AS n FROM {t}")["n"]) for t in tables}


def realtime_rows_ok(request: RawRequest, response: RawResponse, delta: Snapshot) -> bool:
    """Rows appear only for what succeeded: one message per publish, one file per upload."""
    seg = request.segments + (b"",) * 6
    ok = response.status == 200
    publishes = seg[0] in (b"publish", b"signal") or seg[:3] == (b"v1", b"files", b"publish-file")
    deletes_history = request.method == b"DELETE" and seg[0] == b"v3" and ok
    deletes_file = request.method == b"DELETE" and seg[:2] == (b"v1", b"files") and ok
    expected_messages = 1 if publishes and ok else 0
    if deletes_history:
        return delta["messages"] <= 0 and delta["files"] == delta["file_uploads"] == 0
    if deletes_file:
        return delta["messages"] == 0 and delta["files"] == -1 and delta["file_uploads"] <= 0
    # An upload answers 204, and so does its preflight (OPTIONS), which stores nothing.
    uploaded = response.status == 204 and seg[2] == b"upload" and request.method == b"POST"
    generated = ok and seg[5] == b"generate-upload-url"
    return delta == {
        "messages": expected_messages,
        "files": int(uploaded),
        "file_uploads": int(generated),
    }


def refused(request: RawRequest, response: RawResponse) -> bool:
    """A 4xx, or a JSON-RPC error (the RPC route answers errors with HTTP 200)."""
    if response.status >= 400:
        return True
    if request.path == API_PATH_RPC.encode() and response.status == 200:
        return "error" in response.json()
    return False


class Fuzzer:
    """Sends mutated templates to one server and checks every answer and the database."""

    def __init__(
        self,
        port: int,
        call: Callable[[Callable[[], Snapshot]], Snapshot],
        db: Callable[[], Database],
        tables: tuple[str, ...],
        rows_ok: Callable[[RawRequest, RawResponse, Snapshot], bool],
        healthy_publish: RawRequest,
    ) -> None:
        self.port = port
        self._snapshot = lambda: call(lambda: counts(db(), tables))
        self._rows_ok = rows_ok
        self._healthy_publish = healthy_publish
        self.sent = 0
        self.failures: list[str] = []

    def run(self, templates: list[Template], mutator: Mutator, per_template: int) -> None:
        """Per template: the valid request first (it must succeed), then its mutations."""
        for template in templates:
            self.check_valid(template)
            for _ in range(per_template):
                self.check(mutator.mutate(template))
        self.check_healthy()

    def check_valid(self, template: Template) -> None:
        response = self.check(template.request)
        if response is None:
            return
        valid = response.status in template.expect
        if valid and template.rpc_result:
            valid = "result" in response.json()
        if not valid:
            self.failures.append(
                f"template of {template.route} is not valid: {response.status} "
                f"{response.body[:300]!r} for {template.request.describe()}"
            )

    def check(self, request: RawRequest) -> RawResponse | None:
        """Send one request; a broken invariant is recorded (all are reported at the end)."""
        before = self._snapshot()
        self.sent += 1
        try:
            response = send(self.port, request)
        except OSError as exc:  # a hang (TimeoutError) or a dropped connection
            self.failures.append(f"no answer ({exc!r}) to {request.describe()}")
            return None
        after = self._snapshot()
        try:
            check_answer(request, response)
            delta = {table: after[table] - before[table] for table in before}
            assert self._rows_ok(request, response, delta), (
                f"rows changed by {delta} for {response.status} {request.describe()}: "
                f"{response.body[:200]!r}"
            )
        except AssertionError as exc:
            self.failures.append(str(exc).splitlines()[0])
        return response

    def assert_clean(self) -> None:
        shown = "\n".join(self.failures[:25])
        assert not self.failures, (
            f"{len(self.failures)} of {self.sent} answers broke a rule:\n{shown}"
        )

    def check_healthy(self) -> None:
        """The server still tells the time and accepts a valid publish."""
        clock = send(self.port, RawRequest(b"GET", (b"time", b"0")))
        assert clock.status == 200 and isinstance(clock.json()[0], int)
        published = send(self.port, self._healthy_publish)
        assert published.status == 200, published.body
        assert published.json()[:2] == [1, "Sent"]


def healthy_publish(keyset: Keyset) -> RawRequest:
    request = RawRequest(
        b"GET",
        segments(f"/publish/{keyset.publish_key}/{keyset.subscribe_key}/0/health/0/%22ok%22"),
        ((b"uuid", b"health"),),
    )
    return make_signer(keyset)(request) if keyset.access_enabled else request
