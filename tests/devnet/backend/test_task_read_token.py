"""/task-read-token and /anon-task-read-token over real HTTP (§5.4, §5.5): bearer checks,
body validation, and the success paths through the task service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from blocks_devnet.backend.jwt_tokens import JwtIssuer
from blocks_devnet.backend.principal import Principal
from blocks_devnet.network import LocalNetwork
from blocks_devnet.realtime.access_tokens import READ, TokenGrant, check_access, verify_token
from blocks_network.protocol.channels import setup_channel, task_channel
from blocks_network.protocol.constants import (
    API_PATH_ANON_TASK_READ_TOKEN,
    API_PATH_TASK_READ_TOKEN,
)
from tests.devnet.backend.conftest import User
from tests.support.backend_client import BackendClient
from tests.support.fake_agent import FakeAgent
from tests.support.task_rpc import Consumer, register_agent


def consumer_jwt(network: LocalNetwork, ttl: int = 60) -> str:
    identity = network.dev_identity
    principal = Principal(user_id=identity.user_id, org_id=identity.org_id, kind="consumer")
    return network.call(lambda: network.context.jwt.issue(principal, ttl))


def test_missing_bearer_is_401(api: BackendClient) -> None:
    reply = api.post(API_PATH_TASK_READ_TOKEN, {"taskId": "t_1"})
    assert reply.status == 401


def test_expired_jwt_is_401(local_network: LocalNetwork, api: BackendClient) -> None:
    expired = consumer_jwt(local_network, ttl=-30)
    reply = api.post(API_PATH_TASK_READ_TOKEN, {"taskId": "t_1"}, token=expired)
    assert reply.status == 401
    assert reply.code == "TOKEN_EXPIRED"


def test_jwt_signed_with_another_secret_is_401(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    identity = local_network.dev_identity
    forged = JwtIssuer("not-the-server-secret-but-long-enough-for-hs256").issue(
        Principal(user_id=identity.user_id, org_id=identity.org_id, kind="consumer"), 60
    )
    reply = api.post(API_PATH_TASK_READ_TOKEN, {"taskId": "t_1"}, token=forged)
    assert reply.status == 401
    assert reply.code == "TOKEN_INVALID"


def test_unsigned_jwt_is_401(local_network: LocalNetwork, api: BackendClient) -> None:
    identity = local_network.dev_identity
    claims = {
        "iss": "blocks-devnet",
        "sub": identity.user_id,
        "org": identity.org_id,
        "kind": "consumer",
        "exp": 4102444800,
    }
    forged = jwt.encode(claims, key=None, algorithm="none")
    reply = api.post(API_PATH_TASK_READ_TOKEN, {"taskId": "t_1"}, token=forged)
    assert reply.status == 401


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "bk_an_api_key_is_not_a_jwt"])
def test_garbage_bearer_is_401(api: BackendClient, token: str) -> None:
    reply = api.post(API_PATH_TASK_READ_TOKEN, {"taskId": "t_1"}, token=token)
    assert reply.status == 401


def test_bad_protocol_header_is_400(local_network: LocalNetwork, api: BackendClient) -> None:
    reply = api.post(
        API_PATH_TASK_READ_TOKEN, {"taskId": "t_1"}, token=consumer_jwt(local_network), protocol="x"
    )
    assert reply.status == 400
    assert reply.code == "UNSUPPORTED_PROTOCOL_VERSION"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"taskId": 3},
        {"taskId": ""},
        {"taskId": "t_1", "role": "admin"},
        {"taskId": "t_1", "role": 1},
    ],
)
def test_bad_task_read_token_bodies_are_400(
    local_network: LocalNetwork, api: BackendClient, body: dict[str, Any]
) -> None:
    reply = api.post(API_PATH_TASK_READ_TOKEN, body, token=consumer_jwt(local_network))
    assert reply.status == 400
    assert reply.code == "BAD_REQUEST"


def test_unknown_task_is_not_found(local_network: LocalNetwork, api: BackendClient) -> None:
    reply = api.post(
        API_PATH_TASK_READ_TOKEN, {"taskId": "t_missing"}, token=consumer_jwt(local_network)
    )
    assert reply.status == 404


@pytest.mark.parametrize(
    "body", [{}, {"taskId": "t_1"}, {"fingerprint": "f"}, {"taskId": "t_1", "fingerprint": 5}]
)
def test_bad_anon_bodies_are_400(api: BackendClient, body: dict[str, Any]) -> None:
    reply = api.post(API_PATH_ANON_TASK_READ_TOKEN, body)
    assert reply.status == 400


def test_anon_unknown_task_is_refused(api: BackendClient) -> None:
    reply = api.post(API_PATH_ANON_TASK_READ_TOKEN, {"taskId": "t_missing", "fingerprint": "fp"})
    assert reply.status in (403, 404)


# --- success paths through the task service (helper B's TaskService) ---------------------------


@pytest.fixture
def worker(local_network: LocalNetwork) -> Iterator[FakeAgent]:
    register_agent(local_network, "worker")
    fake = FakeAgent(local_network, "worker")
    yield fake
    fake.stop()


@pytest.fixture
def consumer(local_network: LocalNetwork) -> Iterator[Consumer]:
    client = Consumer(local_network)
    yield client
    client.close()


def test_owner_gets_a_read_token_for_the_task_channel(
    local_network: LocalNetwork, api: BackendClient, consumer: Consumer, worker: FakeAgent
) -> None:
    sent = consumer.send("worker", fingerprint="fp-1")
    reply = api.post(API_PATH_TASK_READ_TOKEN, {"taskId": sent["taskId"]}, token=consumer.token)
    assert reply.status == 200, reply.body
    assert reply.body["channel"] == sent["extensions"]["blocks"]["streamChannels"]["status"]
    assert reply.body["ttlMinutes"] >= 1
    keyset = local_network.keysets["playground"]
    grant = verify_token(reply.body["pamToken"], keyset.secret_key, time.time())
    assert reply.body["channel"] in grant.channels


def test_another_org_gets_no_read_token(
    api: BackendClient, consumer: Consumer, worker: FakeAgent, second_user: User
) -> None:
    sent = consumer.send("worker")
    other = api.consumer_token(second_user.api_key)["accessToken"]
    reply = api.post(API_PATH_TASK_READ_TOKEN, {"taskId": sent["taskId"]}, token=other)
    assert reply.status == 404


def test_anonymous_viewer_with_the_submitters_fingerprint(
    api: BackendClient, consumer: Consumer, worker: FakeAgent
) -> None:
    sent = consumer.send("worker", fingerprint="fp-1")
    ok = api.post(API_PATH_ANON_TASK_READ_TOKEN, {"taskId": sent["taskId"], "fingerprint": "fp-1"})
    assert ok.status == 200, ok.body
    assert ok.body["channel"] == sent["extensions"]["blocks"]["streamChannels"]["status"]
    denied = api.post(
        API_PATH_ANON_TASK_READ_TOKEN, {"taskId": sent["taskId"], "fingerprint": "fp-2"}
    )
    assert denied.status == 403


def _grant(network: LocalNetwork, token: str) -> TokenGrant:
    return verify_token(token, network.keysets["playground"].secret_key, time.time())


def _reads(grant: TokenGrant, channel: str) -> bool:
    """What the realtime server decides for a subscribe on ``channel`` with ``grant``."""
    return not check_access(grant, channels=[channel], permission=READ, uuid=None)


def _status_channel(sent: dict[str, Any]) -> str:
    return str(sent["extensions"]["blocks"]["streamChannels"]["status"])


def test_the_owners_read_tokens_read_its_other_tasks_and_no_other_orgs(
    local_network: LocalNetwork,
    api: BackendClient,
    consumer: Consumer,
    worker: FakeAgent,
    second_user: User,
) -> None:
    first, sibling = consumer.send("worker"), consumer.send("worker")
    fetched = api.post(API_PATH_TASK_READ_TOKEN, {"taskId": first["taskId"]}, token=consumer.token)
    assert fetched.status == 200, fetched.body
    other_org = api.consumer_token(second_user.api_key)["orgId"]
    for token in (first["extensions"]["blocks"]["readToken"], fetched.body["pamToken"]):
        grant = _grant(local_network, token)
        assert _reads(grant, _status_channel(first)) and _reads(grant, _status_channel(sibling))
        assert not _reads(grant, task_channel(other_org, sibling["taskId"]))
        org = local_network.dev_identity.org_id
        assert not _reads(grant, setup_channel(org, sibling["taskId"]))


def test_provider_and_anonymous_read_tokens_read_their_task_only(
    local_network: LocalNetwork, api: BackendClient, consumer: Consumer, worker: FakeAgent
) -> None:
    sent, sibling = consumer.send("worker", fingerprint="fp-1"), consumer.send("worker")
    provider = api.post(
        API_PATH_TASK_READ_TOKEN,
        {"taskId": sent["taskId"], "role": "provider"},
        token=consumer.token,
    )
    anonymous = api.post(
        API_PATH_ANON_TASK_READ_TOKEN, {"taskId": sent["taskId"], "fingerprint": "fp-1"}
    )
    for reply in (provider, anonymous):
        assert reply.status == 200, reply.body
        grant = _grant(local_network, reply.body["pamToken"])
        assert grant.channel_patterns == {}
        assert _reads(grant, _status_channel(sent)) and not _reads(grant, _status_channel(sibling))


def test_an_owner_sharing_its_org_reads_its_task_only(
    local_network: LocalNetwork, api: BackendClient, worker: FakeAgent
) -> None:
    org = local_network.dev_identity.org_id
    identity = local_network.context.identity
    _, _, colleague_key = local_network.call(lambda: identity.create_user("colleague", org_id=org))
    consumer, colleague = Consumer(local_network), Consumer(local_network, colleague_key)
    try:
        sent, sibling = consumer.send("worker"), consumer.send("worker")
        theirs = colleague.send("worker")
    finally:
        consumer.close()
        colleague.close()
    # The colleague's task channel is u.{the same org}.{task}: only exact grants read it.
    assert _status_channel(theirs).startswith(f"u.{org}.")
    for owned, token in (
        (sent, sent["extensions"]["blocks"]["readToken"]),
        (theirs, theirs["extensions"]["blocks"]["readToken"]),
    ):
        grant = _grant(local_network, token)
        assert grant.channel_patterns == {}
        assert _reads(grant, _status_channel(owned))
        others = [s for s in (sent, sibling, theirs) if s is not owned]
        assert not any(_reads(grant, _status_channel(other)) for other in others)
