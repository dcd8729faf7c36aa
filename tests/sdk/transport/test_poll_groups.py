"""Sessions whose tokens read each other's channels share one subscribe poll.

Against the real local realtime server (with the official ``pubnub`` client publishing)
for delivery, and against a scripted server where the test must see each poll's channel
list, token and cursor, or answer with a 403.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from blocks_devnet.backend.grants import org_task_channels_pattern
from blocks_devnet.realtime.access_tokens import READ, TokenGrant, issue_token
from blocks_devnet.realtime.server import RealtimeServer
from blocks_network.transport.poll_groups import PollGroups
from blocks_network.transport.poll_loop import MultiplexedSubscription, PollLoop, SubscriptionMember
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import PollConnections, SubscriptionSink
from tests.conftest import SECURE_KEYSET, PubNubFactory
from tests.sdk.stub_server import Recorded, StubServer, stub_server

WAIT = 10.0
ORG = "o"


def _token(*, channels: tuple[str, ...] = (), org_wide: bool = False, left_s: int = 3600) -> str:
    """A read token on ``channels`` (and every task channel of ORG if ``org_wide``) that
    expires in about ``left_s`` seconds."""
    now = int(time.time())
    grant = TokenGrant(
        issued_at=now + left_s - 3600,
        ttl_minutes=60,
        channels=dict.fromkeys(channels, READ),
        channel_patterns={org_task_channels_pattern(ORG): READ} if org_wide else {},
    )
    return issue_token(grant, SECURE_KEYSET.secret_key)


def _wait_until(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.01)


class _Inbox:
    """One member's sink: the messages it got, and whether it was denied."""

    def __init__(self) -> None:
        self.messages: list[tuple[object, int | None]] = []
        self.denials = 0
        self._changed = threading.Condition()

    def sink(self) -> SubscriptionSink:
        return SubscriptionSink(self._message, self._denied)

    def _message(self, data: object, tt: int | None, _meta: object, _who: str | None) -> None:
        with self._changed:
            self.messages.append((data, tt))
            self._changed.notify_all()

    def _denied(self) -> None:
        with self._changed:
            self.denials += 1
            self._changed.notify_all()

    def wait_for(self, data: object) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: any(d == data for d, _ in self.messages), WAIT), (
                f"{data!r} never arrived; got {self.messages}"
            )

    def data(self) -> list[object]:
        with self._changed:
            return [d for d, _ in self.messages]


@dataclass
class _Rig:
    """One client's poll groups over one pool, closed at teardown."""

    groups: PollGroups
    loop: PollLoop
    connections: PollConnections
    inboxes: dict[str, _Inbox] = field(default_factory=dict)

    def member(self, channel: str, token: str, cursor: int = 1000) -> SubscriptionMember:
        inbox = self.inboxes[channel] = _Inbox()
        return self.groups.subscription(
            SECURE_KEYSET.subscribe_key, channel, token, cursor, inbox.sink()
        )

    @property
    def checked_out(self) -> int:
        return self.connections.transport.pool.checked_out


@pytest.fixture
def make_rig() -> Iterator[Callable[..., _Rig]]:
    rigs: list[_Rig] = []

    def make(
        origin: str, *, threads: PollThreads | None = None, max_target_bytes: int | None = None
    ) -> _Rig:
        endpoint = RealtimeEndpoint(origin=origin, ssl=False)
        loop = PollLoop(threads)
        connections = PollConnections(endpoint)
        groups = PollGroups(endpoint, "session-user", loop, connections, max_target_bytes)
        rigs.append(_Rig(groups, loop, connections))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.loop.close()
        rig.connections.close()


# --- a scripted server that holds each poll until the test answers it ------------------------


@dataclass
class _Poll:
    request: Recorded
    answered: threading.Event = field(default_factory=threading.Event)
    answer: tuple[int, Any] = (200, None)

    @property
    def channels(self) -> list[str]:
        return [unquote(c) for c in urlsplit(self.request.path).path.split("/")[4].split(",")]

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.request.path).query).items()}

    def reply(self, status: int, body: Any) -> None:
        self.answer = (status, body)
        self.answered.set()


class _Holding:
    def __init__(self) -> None:
        self.polls: list[_Poll] = []
        self._changed = threading.Condition()

    def respond(self, request: Recorded) -> tuple[int, Any]:
        poll = _Poll(request)
        with self._changed:
            self.polls.append(poll)
            self._changed.notify_all()
        if not poll.answered.wait(WAIT):
            return 200, _envelope(int(poll.query["tt"]), [])
        return poll.answer

    def poll_where(self, condition: Callable[[_Poll], bool], *, anywhere: bool = False) -> _Poll:
        """The newest poll, once it meets ``condition``; ``anywhere``: the newest that does
        (other groups' polls may arrive after it)."""

        def found() -> _Poll | None:
            polls = self.polls if anywhere else self.polls[-1:]
            return next((p for p in reversed(polls) if condition(p)), None)

        with self._changed:
            assert self._changed.wait_for(lambda: found() is not None, WAIT), (
                f"polls: {[p.request.path[:120] for p in self.polls]}"
            )
            poll = found()
            assert poll is not None
            return poll

    def release_all(self) -> None:
        with self._changed:
            polls = list(self.polls)
        for poll in polls:
            if not poll.answered.is_set():
                poll.reply(200, _envelope(int(poll.query["tt"]), []))


def _envelope(tt: int, messages: list[tuple[str, int, Any]]) -> dict[str, Any]:
    return {
        "t": {"t": str(tt), "r": 1},
        "m": [{"c": c, "d": d, "p": {"t": str(t), "r": 1}} for c, t, d in messages],
    }


@pytest.fixture
def holding() -> Iterator[tuple[_Holding, StubServer]]:
    script = _Holding()
    with stub_server(script.respond) as server:
        yield script, server
        script.release_all()


def _origin(server: StubServer) -> str:
    return urlsplit(server.url).netloc


# --- against the real realtime server ----------------------------------------------------------


def _two_sharing(
    script: _Holding, rig: _Rig
) -> tuple[SubscriptionMember, SubscriptionMember, _Poll]:
    """Members on u.o.a and u.o.b sharing one token, and their shared poll (held)."""
    token = _token(org_wide=True)
    first, second = rig.member("u.o.a", token), rig.member("u.o.b", token)
    first.start()
    second.start()
    return first, second, script.poll_where(lambda p: sorted(p.channels) == ["u.o.a", "u.o.b"])


def test_a_joiner_gets_its_channel_after_its_cursor_once_in_order_while_publishes_go_on(
    realtime_server: RealtimeServer, pubnub_factory: PubNubFactory, make_rig: Callable[..., _Rig]
) -> None:
    publisher = pubnub_factory("publisher", SECURE_KEYSET, secret=True)

    def publish(channel: str, message: object) -> int:
        return int(publisher.publish().channel(channel).message(message).sync().result.timetoken)

    rig = make_rig(realtime_server.origin)
    token = _token(org_wide=True)
    first = rig.member("u.o.a", token, cursor=publish("u.o.a", "before"))
    first.start()
    _wait_until(lambda: rig.loop.watched == 1, lambda: f"{rig.loop.watched} polls waiting")

    b_timetokens: list[int] = []
    ten_published = threading.Event()

    def publish_both() -> None:
        for n in range(40):
            publish("u.o.a", n)
            b_timetokens.append(publish("u.o.b", n))
            if n == 10:
                ten_published.set()

    thread = threading.Thread(target=publish_both, daemon=True)
    thread.start()
    assert ten_published.wait(WAIT)
    # Joins while messages keep coming, from a cursor the group's poll is already past.
    joiner = rig.member("u.o.b", token, cursor=b_timetokens[5])
    joiner.start()
    thread.join(WAIT)
    publish("u.o.a", "end")
    publish("u.o.b", "end")
    rig.inboxes["u.o.a"].wait_for("end")
    rig.inboxes["u.o.b"].wait_for("end")

    assert rig.inboxes["u.o.a"].data() == [*range(40), "end"]
    assert rig.inboxes["u.o.b"].data() == [*range(6, 40), "end"]
    assert rig.groups.channel_counts == [2] and rig.checked_out == 1
    first.stop()
    joiner.stop()
    _wait_until(
        lambda: rig.checked_out == 0 and rig.loop.watched == 0,
        lambda: f"{rig.checked_out} connections out, {rig.loop.watched} polls waiting",
    )


def test_a_token_reading_only_its_own_channel_polls_alone(
    realtime_server: RealtimeServer, pubnub_factory: PubNubFactory, make_rig: Callable[..., _Rig]
) -> None:
    publisher = pubnub_factory("publisher", SECURE_KEYSET, secret=True)
    rig = make_rig(realtime_server.origin)
    members = [rig.member(c, _token(channels=(c,))) for c in ("u.o.a", "u.o.b")]
    for member in members:
        member.start()
    _wait_until(lambda: rig.loop.watched == 2, lambda: f"{rig.loop.watched} polls waiting")
    assert sorted(rig.groups.channel_counts) == [1, 1]
    for channel in ("u.o.a", "u.o.b"):
        publisher.publish().channel(channel).message(channel).sync()
        rig.inboxes[channel].wait_for(channel)
    for member in members:
        member.stop()


# --- against a scripted server -----------------------------------------------------------------


def test_a_member_that_leaves_gets_nothing_more_and_leaves_the_next_poll(
    holding: tuple[_Holding, StubServer], make_rig: Callable[..., _Rig]
) -> None:
    script, server = holding
    rig = make_rig(_origin(server))
    staying, leaving, poll = _two_sharing(script, rig)
    leaving.stop()
    poll.reply(200, _envelope(3000, [("u.o.b", 2000, "for b"), ("u.o.a", 3000, "for a")]))
    rig.inboxes["u.o.a"].wait_for("for a")
    # The left channel's message reaches no one, not even the group's one member left.
    assert rig.inboxes["u.o.b"].data() == [] and rig.inboxes["u.o.a"].data() == ["for a"]
    nxt = script.poll_where(lambda p: p is not poll)
    assert nxt.channels == ["u.o.a"] and nxt.query["tt"] == "3000"
    staying.stop()  # the last member: its poll is abandoned and its connection closed
    _wait_until(lambda: rig.checked_out == 0, lambda: f"{rig.checked_out} connections out")


def test_a_403_denies_only_the_channels_it_names_and_one_naming_none_denies_all(
    holding: tuple[_Holding, StubServer], make_rig: Callable[..., _Rig]
) -> None:
    script, server = holding
    rig = make_rig(_origin(server))
    token = _token(org_wide=True)
    members = [rig.member(c, token) for c in ("u.o.a", "u.o.b", "u.o.c")]
    for member in members:
        member.start()
    poll = script.poll_where(lambda p: len(p.channels) == 3)
    forbidden = {"message": "Forbidden", "payload": {"channels": ["u.o.b"]}, "status": 403}
    poll.reply(403, forbidden)
    poll = script.poll_where(lambda p: p.channels == ["u.o.a", "u.o.c"])
    _wait_until(
        lambda: [rig.inboxes[c].denials for c in ("u.o.a", "u.o.b", "u.o.c")] == [0, 1, 0],
        lambda: f"denials: {[i.denials for i in rig.inboxes.values()]}",
    )
    assert members[1].stopped and not members[0].stopped
    poll.reply(200, _envelope(2000, [("u.o.a", 2000, "still here")]))
    rig.inboxes["u.o.a"].wait_for("still here")

    expired = {"status": 403, "error": {"message": "Token is expired", "source": "authz"}}
    script.poll_where(lambda p: p is not poll).reply(403, expired)
    _wait_until(
        lambda: [rig.inboxes[c].denials for c in ("u.o.a", "u.o.b", "u.o.c")] == [1, 1, 1],
        lambda: f"denials: {[i.denials for i in rig.inboxes.values()]}",
    )
    _wait_until(lambda: rig.checked_out == 0, lambda: f"{rig.checked_out} connections out")


def test_joins_while_the_poll_waits_take_it_back_once_and_ride_one_new_poll(
    holding: tuple[_Holding, StubServer],
    make_rig: Callable[..., _Rig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script, server = holding
    threads = PollThreads(max_threads=1)
    rig = make_rig(_origin(server), threads=threads)
    taken_back: list[object] = []
    interrupt = PollLoop.interrupt
    monkeypatch.setattr(
        PollLoop, "interrupt", lambda loop, *a: (taken_back.append(a), interrupt(loop, *a))[1]
    )
    token = _token(org_wide=True)
    rig.member("u.o.first", token, cursor=5000).start()
    first_poll = script.poll_where(lambda p: p.channels == ["u.o.first"])
    _wait_until(lambda: rig.loop.watched == 1, lambda: "the first poll never waited")
    # Hold the only worker: the joins below all happen before the poll can be re-sent.
    release = threading.Event()
    threads.submit(lambda: release.wait(WAIT))
    joiners = [rig.member(f"u.o.j{i}", token, cursor=4000 + i) for i in range(200)]
    for joiner in joiners:
        joiner.start()
    release.set()
    poll = script.poll_where(lambda p: len(p.channels) == 201)
    assert len(taken_back) == 1
    assert [p.request.path for p in script.polls] == [first_poll.request.path, poll.request.path]
    # From the earliest joiner's cursor, so none misses what followed its own.
    assert poll.query["tt"] == "4000" and "tr" not in poll.query
    for joiner in joiners:
        joiner.stop()
    threads.close()


def test_polls_stay_under_the_url_cap_and_more_sessions_open_more_polls(
    holding: tuple[_Holding, StubServer], make_rig: Callable[..., _Rig]
) -> None:
    script, server = holding
    cap = 800  # the path, cursor and token leave room for some 35 channels of 15 bytes
    rig = make_rig(_origin(server), max_target_bytes=cap)
    token = _token(org_wide=True)
    members = [rig.member(f"u.o.task{i:04d}", token) for i in range(60)]
    for member in members:
        member.start()
    counts = rig.groups.channel_counts
    assert sum(counts) == 60 and len(counts) == math.ceil(60 / max(counts)) > 1
    _wait_until(
        lambda: rig.loop.watched == len(counts) and rig.checked_out == len(counts),
        lambda: f"{rig.loop.watched} polls waiting for {len(counts)} groups",
    )
    for poll in script.polls:
        assert len(poll.request.path) <= cap
    for member in members:
        member.stop()


def test_a_token_near_expiry_takes_no_joiner_and_a_token_reading_all_takes_over(
    holding: tuple[_Holding, StubServer], make_rig: Callable[..., _Rig]
) -> None:
    script, server = holding
    rig = make_rig(_origin(server))
    old = _token(org_wide=True, left_s=30)  # under the groups' minute of margin
    rig.member("u.o.a", old).start()
    script.poll_where(lambda p: p.channels == ["u.o.a"])
    # Its token reads only its channel, and the group's is about to expire: a group of its own.
    rig.member("u.o.b", _token(channels=("u.o.b",))).start()
    assert sorted(rig.groups.channel_counts) == [1, 1]
    # This one reads every channel of the first group and lives longer: the group polls with it.
    fresh = _token(org_wide=True)
    rig.member("u.o.c", fresh).start()
    poll = script.poll_where(lambda p: sorted(p.channels) == ["u.o.a", "u.o.c"], anywhere=True)
    assert poll.query["auth"] == fresh
    assert sorted(rig.groups.channel_counts) == [1, 2]
    for channel in ("u.o.a", "u.o.b", "u.o.c"):
        assert rig.inboxes[channel].denials == 0


def test_polls_name_at_most_the_channel_cap(
    holding: tuple[_Holding, StubServer],
    make_rig: Callable[..., _Rig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from blocks_network.transport import poll_groups

    monkeypatch.setattr(poll_groups, "MAX_POLL_CHANNELS", 7)
    _script, server = holding
    rig = make_rig(_origin(server))
    token = _token(org_wide=True)
    members = [rig.member(f"u.o.t{i}", token) for i in range(20)]
    for member in members:
        member.start()
    assert sorted(rig.groups.channel_counts) == [6, 7, 7]
    for member in members:
        member.stop()


def test_a_channel_a_403_named_polls_elsewhere_when_its_session_subscribes_again(
    holding: tuple[_Holding, StubServer], make_rig: Callable[..., _Rig]
) -> None:
    script, server = holding
    rig = make_rig(_origin(server))
    token = _token(org_wide=True)
    for channel in ("u.o.a", "u.o.b"):
        rig.member(channel, token).start()
    poll = script.poll_where(lambda p: len(p.channels) == 2)
    poll.reply(403, {"message": "Forbidden", "payload": {"channels": ["u.o.b"]}, "status": 403})
    script.poll_where(lambda p: p.channels == ["u.o.a"])
    # The session's retry (a fresh token the group's would also "read") gets a poll of its own.
    rig.member("u.o.b", _token(org_wide=True)).start()
    script.poll_where(lambda p: p.channels == ["u.o.b"], anywhere=True)
    assert sorted(rig.groups.channel_counts) == [1, 1]


def test_a_joiners_much_longer_lived_token_becomes_the_groups(
    holding: tuple[_Holding, StubServer], make_rig: Callable[..., _Rig]
) -> None:
    script, server = holding
    rig = make_rig(_origin(server))
    first = _token(org_wide=True, left_s=1800)
    rig.member("u.o.a", first).start()
    script.poll_where(lambda p: p.query["auth"] == first)
    longer = _token(org_wide=True, left_s=3600)
    rig.member("u.o.b", longer).start()
    poll = script.poll_where(lambda p: len(p.channels) == 2)
    assert poll.query["auth"] == longer and rig.groups.channel_counts == [2]


def test_a_refused_group_token_denies_only_its_holders_and_the_others_poll_with_their_own(
    holding: tuple[_Holding, StubServer], make_rig: Callable[..., _Rig]
) -> None:
    script, server = holding
    rig = make_rig(_origin(server))
    group_token = _token(org_wide=True)
    own_token = _token(channels=("u.o.b",))  # reads only its channel: joins under the group's
    holder, guest = rig.member("u.o.a", group_token), rig.member("u.o.b", own_token, 1500)
    holder.start()
    guest.start()
    poll = script.poll_where(lambda p: len(p.channels) == 2)
    assert poll.query["auth"] == group_token
    revoked = {"status": 403, "error": {"message": "Token is revoked", "source": "authz"}}
    poll.reply(403, revoked)
    # The guest's own token was never refused: it polls with it, from its own cursor.
    alone = script.poll_where(lambda p: p.query["auth"] == own_token, anywhere=True)
    assert alone.channels == ["u.o.b"] and alone.query["tt"] == "1500"
    _wait_until(
        lambda: (rig.inboxes["u.o.a"].denials, rig.inboxes["u.o.b"].denials) == (1, 0),
        lambda: f"denials: {[i.denials for i in rig.inboxes.values()]}",
    )
    assert holder.stopped and not guest.stopped
    alone.reply(200, _envelope(2000, [("u.o.b", 2000, "still followed")]))
    rig.inboxes["u.o.b"].wait_for("still followed")
    guest.stop()
    _wait_until(lambda: rig.checked_out == 0, lambda: f"{rig.checked_out} connections out")


def test_a_403_naming_only_a_channel_that_left_meanwhile_denies_no_one(
    holding: tuple[_Holding, StubServer], make_rig: Callable[..., _Rig]
) -> None:
    script, server = holding
    rig = make_rig(_origin(server))
    staying, leaving, poll = _two_sharing(script, rig)
    leaving.stop()  # its session closed while the poll waited
    poll.reply(403, {"message": "Forbidden", "payload": {"channels": ["u.o.b"]}, "status": 403})
    nxt = script.poll_where(lambda p: p is not poll)
    assert nxt.channels == ["u.o.a"]
    nxt.reply(200, _envelope(2000, [("u.o.a", 2000, "still here")]))
    rig.inboxes["u.o.a"].wait_for("still here")  # delivered after any denial queued before
    assert rig.inboxes["u.o.a"].denials == 0 and not staying.stopped
    staying.stop()


def test_a_session_joining_as_the_last_one_leaves_still_follows_its_channel(
    holding: tuple[_Holding, StubServer],
    make_rig: Callable[..., _Rig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script, server = holding
    rig = make_rig(_origin(server))
    token = _token(org_wide=True)
    leaving, joining = rig.member("u.o.a", token), rig.member("u.o.b", token)
    leaving.start()
    script.poll_where(lambda p: p.channels == ["u.o.a"])
    ending = MultiplexedSubscription.stop

    def join_first(group: MultiplexedSubscription) -> None:
        # The join lands between the leave emptying the group and the group ending.
        if not joining.group and not joining.stopped:
            joining.start()
        ending(group)

    monkeypatch.setattr(MultiplexedSubscription, "stop", join_first)
    leaving.stop()
    if joining.group is None:
        joining.start()
    poll = script.poll_where(lambda p: p.channels == ["u.o.b"], anywhere=True)
    assert not joining.stopped
    poll.reply(200, _envelope(2000, [("u.o.b", 2000, "heard")]))
    rig.inboxes["u.o.b"].wait_for("heard")
    monkeypatch.undo()
    joining.stop()
    _wait_until(lambda: rig.checked_out == 0, lambda: f"{rig.checked_out} connections out")


def test_a_session_whose_callback_blocks_holds_up_no_other_session_sharing_its_poll(
    holding: tuple[_Holding, StubServer], make_rig: Callable[..., _Rig]
) -> None:
    script, server = holding
    rig = make_rig(_origin(server))
    release = threading.Event()
    slow_got: list[object] = []

    def slow(data: object, _tt: int | None, _meta: object, _who: str | None) -> None:
        slow_got.append(data)
        release.wait(WAIT)  # a user's callback that blocks

    token = _token(org_wide=True)
    blocked = rig.groups.subscription(
        SECURE_KEYSET.subscribe_key, "u.o.a", token, 1000, SubscriptionSink(slow, lambda: None)
    )
    blocked.start()
    other = rig.member("u.o.b", token)
    other.start()
    poll = script.poll_where(lambda p: sorted(p.channels) == ["u.o.a", "u.o.b"])
    poll.reply(200, _envelope(2000, [("u.o.a", 1500, "a1"), ("u.o.b", 2000, "b1")]))
    rig.inboxes["u.o.b"].wait_for("b1")
    script.poll_where(lambda p: p is not poll).reply(
        200, _envelope(3000, [("u.o.a", 2500, "a2"), ("u.o.b", 3000, "b2")])
    )
    rig.inboxes["u.o.b"].wait_for("b2")
    assert slow_got == ["a1"]  # still in its first callback
    release.set()
    _wait_until(lambda: slow_got == ["a1", "a2"], lambda: f"the blocked session got {slow_got}")
    blocked.stop()
    other.stop()
