"""/api/v1/registry/agents over real HTTP (protocol.md §5.7, issue 3 §3)."""

from __future__ import annotations

from typing import Any

import pytest

from blocks_devnet.backend.identity import SYSTEM_ORG_ID
from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.constants import API_PATH_REGISTRY_AGENTS, WRITE_AFFINITY_HEADER
from tests.devnet.backend.conftest import User
from tests.support.backend_client import BackendClient, make_card


def listing(api: BackendClient, token: str | None = None, **params: Any) -> dict[str, Any]:
    reply = api.get(API_PATH_REGISTRY_AGENTS, params=params, token=token)
    assert reply.status == 200, reply.body
    return dict(reply.body)


def names(page: dict[str, Any]) -> list[str]:
    return [a["agentName"] for a in page["agents"]]


# --- register, get, update, delete ------------------------------------------------------------


def test_register_then_get_by_name(local_network: LocalNetwork, api: BackendClient) -> None:
    reply = api.publish(
        local_network.api_key, make_card("writer"), cardRef="sha256:abc", cardSummary={"short": "w"}
    )
    assert reply.status == 201, reply.body
    assert WRITE_AFFINITY_HEADER in reply.headers

    agent = api.agent("writer").body["agent"]
    assert agent["agentName"] == agent["name"] == "writer"
    assert agent["description"] == "The writer test agent."
    assert agent["tags"] == [{"id": "testing", "name": "Testing"}]
    assert agent["billingMode"] == "free"
    assert agent["listing"] == "public"
    assert agent["cardRef"] == "sha256:abc"
    assert agent["cardSummary"] == {"short": "w"}
    assert agent["scaling"] == {
        "concurrency": 2,
        "expectedInstances": 1,
        "maxPendingBacklog": 10,
        "maxRunningTimeSec": 30,
    }
    assert agent["registeredAt"].endswith("Z")
    assert agent["card"]["identity"]["agentName"] == "writer"
    assert "runtime" not in agent["card"], "the served card never shows runtime"


def test_update_keeps_identity_and_registration_time(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    first = api.publish(local_network.api_key, make_card("evolving"), expect=201).body["agent"]
    card = make_card("evolving")
    card["identity"]["description"] = "Now better."
    second = api.request(
        "PUT",
        API_PATH_REGISTRY_AGENTS,
        json_body={"card": card, "billingMode": "free", "listing": "private"},
        token=local_network.api_key,
    )
    assert second.status == 200, second.body
    updated = second.body["agent"]
    assert updated["agentId"] == first["agentId"]
    assert updated["registeredAt"] == first["registeredAt"]
    assert updated["description"] == "Now better."
    assert updated["listing"] == "private"


def test_consumer_jwt_can_publish_for_its_org(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    token = api.consumer_token(local_network.api_key)["accessToken"]
    reply = api.publish(token, make_card("via_jwt"), expect=201)
    assert reply.body["agent"]["orgId"] == local_network.dev_identity.org_id


def test_register_needs_a_credential(api: BackendClient) -> None:
    reply = api.publish("bk_nope", make_card("nobody"))
    assert reply.status == 401
    reply = api.post(API_PATH_REGISTRY_AGENTS, {"card": make_card("nobody"), "billingMode": "free"})
    assert reply.status == 401


def test_a_name_owned_by_another_org_cannot_be_taken(
    local_network: LocalNetwork, api: BackendClient, second_user: User
) -> None:
    api.publish(local_network.api_key, make_card("taken"), expect=201)
    reply = api.publish(second_user.api_key, make_card("taken"))
    assert reply.status == 403
    reply = api.publish(second_user.api_key, make_card("echo"))
    assert reply.status == 403, "built-in names belong to the system org"


def test_delete_by_owner(local_network: LocalNetwork, api: BackendClient) -> None:
    api.publish(local_network.api_key, make_card("doomed"), expect=201)
    reply = api.delete(
        API_PATH_REGISTRY_AGENTS, params={"agentName": "doomed"}, token=local_network.api_key
    )
    assert reply.status == 200
    assert WRITE_AFFINITY_HEADER in reply.headers
    assert api.agent("doomed").status == 404
    again = api.delete(
        API_PATH_REGISTRY_AGENTS, params={"agentName": "doomed"}, token=local_network.api_key
    )
    assert again.status == 404


def test_delete_refusals(
    local_network: LocalNetwork, api: BackendClient, second_user: User
) -> None:
    api.publish(local_network.api_key, make_card("public_one"), expect=201)
    api.publish(local_network.api_key, make_card("private_one"), listing="private", expect=201)
    params = {"agentName": "public_one"}
    assert api.delete(API_PATH_REGISTRY_AGENTS, params=params).status == 401
    assert (
        api.delete(API_PATH_REGISTRY_AGENTS, params=params, token=second_user.api_key).status == 403
    )
    hidden = {"agentName": "private_one"}
    assert (
        api.delete(API_PATH_REGISTRY_AGENTS, params=hidden, token=second_user.api_key).status == 404
    )
    assert api.delete(API_PATH_REGISTRY_AGENTS, token=local_network.api_key).status == 400
    assert api.agent("public_one").status == 200


def test_agent_jwt_can_delete_its_own_agent(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    api.publish(local_network.api_key, make_card("self_removing"), expect=201)
    agent_jwt = api.connect(local_network.api_key, "self_removing").body["accessToken"]
    reply = api.delete(
        API_PATH_REGISTRY_AGENTS, params={"agentName": "self_removing"}, token=agent_jwt
    )
    assert reply.status == 200


# --- visibility --------------------------------------------------------------------------------


def test_private_agents_are_invisible_to_other_orgs_and_anonymous(
    local_network: LocalNetwork, api: BackendClient, second_user: User
) -> None:
    api.publish(local_network.api_key, make_card("secret_one"), listing="private", expect=201)
    api.publish(second_user.api_key, make_card("secret_two"), listing="private", expect=201)

    assert api.agent("secret_one", token=local_network.api_key).status == 200
    assert api.agent("secret_one", token=second_user.api_key).status == 404
    assert api.agent("secret_one").status == 404
    assert api.agent("secret_two", token=local_network.api_key).status == 404

    dev_jwt = api.consumer_token(local_network.api_key)["accessToken"]
    assert api.agent("secret_one", token=dev_jwt).status == 200
    assert "secret_one" in names(listing(api, dev_jwt))
    assert "secret_two" not in names(listing(api, dev_jwt))
    assert "secret_one" not in names(listing(api, second_user.api_key))
    assert "secret_two" in names(listing(api, second_user.api_key))
    anonymous = names(listing(api))
    assert "secret_one" not in anonymous and "secret_two" not in anonymous


def test_a_bad_bearer_reads_as_anonymous(local_network: LocalNetwork, api: BackendClient) -> None:
    api.publish(local_network.api_key, make_card("hidden"), listing="private", expect=201)
    assert api.agent("echo", token="expired.or.forged").status == 200
    assert api.agent("hidden", token="bk_wrong").status == 404


def test_unknown_agent_is_404(api: BackendClient) -> None:
    reply = api.agent("never_published")
    assert reply.status == 404
    assert "blocks publish" in reply.body["message"]


def test_builtin_agents_are_registered_free_and_public(api: BackendClient) -> None:
    for name in ("echo", "adder"):
        agent = api.agent(name).body["agent"]
        assert (agent["billingMode"], agent["listing"], agent["orgId"]) == (
            "free",
            "public",
            SYSTEM_ORG_ID,
        )
        assert agent["card"]["capabilities"]["taskKinds"] == ["request"]


def test_builtin_agents_can_be_switched_off(network_factory: Any) -> None:
    network = network_factory(register_builtin_agents=False)
    client = BackendClient(network.url)
    try:
        assert client.agent("echo").status == 404
    finally:
        client.close()


# --- listing, paging, filters -----------------------------------------------------------------


def test_list_pages_with_cursor_and_total_count(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    for i in range(5):
        api.publish(local_network.api_key, make_card(f"paged_{i}"), expect=201)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "tag": "testing"}
        if cursor:
            params["cursor"] = cursor
        page = listing(api, **params)
        assert page["totalCount"] == 5
        assert len(page["agents"]) <= 2
        seen += names(page)
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [f"paged_{i}" for i in range(5)]


def test_include_full_adds_cards(local_network: LocalNetwork, api: BackendClient) -> None:
    brief = listing(api)
    assert brief["agents"] and all("card" not in a for a in brief["agents"])
    full = listing(api, include="full")
    assert all("runtime" not in a["card"] for a in full["agents"])
    assert {"echo", "adder"} <= set(names(full))


def test_tag_filter_matches_slugs_of_ids_and_names(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    tagged = make_card("painter", tags=[{"id": "img", "name": "Image Generation"}])
    api.publish(local_network.api_key, tagged, expect=201)
    assert names(listing(api, tag="image_generation")) == ["painter"]
    assert names(listing(api, tag="Image Generation")) == ["painter"]
    assert names(listing(api, tag="img")) == ["painter"]
    assert names(listing(api, tag="nothing_like_it")) == []


def test_listing_filter(local_network: LocalNetwork, api: BackendClient) -> None:
    api.publish(local_network.api_key, make_card("shy"), listing="private", expect=201)
    private = names(listing(api, local_network.api_key, listing="private"))
    public = names(listing(api, local_network.api_key, listing="public"))
    assert private == ["shy"]
    assert "shy" not in public and "echo" in public


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1000"},
        {"limit": "ten"},
        {"cursor": "%%%"},
        {"listing": "secret"},
        {"agentName": ""},
    ],
)
def test_bad_list_parameters_are_400(api: BackendClient, params: dict[str, str]) -> None:
    reply = api.get(API_PATH_REGISTRY_AGENTS, params=params)
    assert reply.status == 400, reply.body


# --- pricing and billing mode ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("billing_mode", "pricing", "field"),
    [
        ("free", {"pricePerTask": 1}, "pricing.pricePerTask"),
        ("free", {"pricePerMinute": 0.01}, "pricing.pricePerMinute"),
        ("paid", None, "pricing.pricePerTask"),
        ("paid", {"pricePerTask": 0}, "pricing.pricePerTask"),
        ("paid", {"pricePerTask": -1}, "pricing.pricePerTask"),
        ("paid", {"pricePerTask": "5"}, "pricing.pricePerTask"),
        ("paid", {"pricePerTask": True}, "pricing.pricePerTask"),
        ("paid", {"pricePerTask": 1, "bonus": 2}, "pricing.bonus"),
        ("paid", {"pricePerTask": 1, "currency": 5}, "pricing.currency"),
        ("paid", "cheap", "pricing"),
        ("gratis", None, "billingMode"),
        (None, None, "billingMode"),
    ],
)
def test_pricing_rules(
    local_network: LocalNetwork, api: BackendClient, billing_mode: Any, pricing: Any, field: str
) -> None:
    body: dict[str, Any] = {"card": make_card("priced"), "billingMode": billing_mode}
    if pricing is not None:
        body["pricing"] = pricing
    reply = api.post(API_PATH_REGISTRY_AGENTS, body, token=local_network.api_key)
    assert reply.status == 400, reply.body
    assert field in reply.body["message"]
    assert api.agent("priced", token=local_network.api_key).status == 404, "nothing half-written"


@pytest.mark.parametrize(
    ("billing_mode", "pricing"),
    [
        ("free", None),
        ("free", {"pricePerTask": 0}),
        ("paid", {"pricePerTask": 0.25, "currency": "USD"}),
        ("paid", {"pricePerMinute": 2}),
        ("paid", {"pricePerTask": 10**400}),  # too large for a float: still a number
    ],
)
def test_valid_pricing_is_stored_and_billing_mode_is_never_derived(
    local_network: LocalNetwork, api: BackendClient, billing_mode: str, pricing: Any
) -> None:
    extra = {} if pricing is None else {"pricing": pricing}
    agent = api.publish(
        local_network.api_key, make_card("priced"), billing_mode, expect=201, **extra
    ).body["agent"]
    assert agent["billingMode"] == billing_mode
    assert agent["pricing"] == (pricing or {})


# --- card validation ---------------------------------------------------------------------------


def _without(card: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in card.items() if k != key}


def _bad_input(**changes: Any) -> dict[str, Any]:
    entry = {
        "id": "text",
        "description": "Input.",
        "contentType": "text/plain",
        "required": True,
        **changes,
    }
    return {"inputs": [entry]}


BAD_CARDS: list[tuple[dict[str, Any], str]] = [
    (_without(make_card("x1"), "identity"), "card.identity"),
    (
        make_card("x2", identity={**make_card("x2")["identity"], "agentName": "my-agent"}),
        "card.identity.agentName",
    ),
    (make_card("x3", capabilities={"taskKinds": []}), "card.capabilities.taskKinds"),
    (make_card("x4", capabilities={"taskKinds": ["batch"]}), "card.capabilities.taskKinds[0]"),
    (
        make_card("x5", io=_bad_input(maxSizeBytes=10**9, contentType="image/png")),
        "card.io.inputs[0].maxSizeBytes",
    ),
    (make_card("x6", skills=[{"id": "a", "name": "A"}]), "card.skills"),
    (
        make_card("x7", streams={"live": {"direction": "outbound", "format": "bytes"}}),
        "card.streams.live",
    ),
    (make_card("x8", tags=[{"id": "a"}]), "card.tags[0].name"),
    (make_card("x9", runtime={"concurrency": 1}), "card.runtime.handler"),
    (
        make_card("x10", runtime={"handler": "./h.py", "maxRunningTimeSec": 10**30}),
        "card.runtime",
    ),
    (make_card("x11", runtime={"handler": "./h.py", "concurrency": 10**30}), "card.runtime"),
]


@pytest.mark.parametrize(("card", "field"), BAD_CARDS)
def test_invalid_cards_are_400_naming_the_field(
    local_network: LocalNetwork, api: BackendClient, card: dict[str, Any], field: str
) -> None:
    reply = api.publish(local_network.api_key, card)
    assert reply.status == 400, reply.body
    assert reply.body["details"]["field"] == field
    assert field in reply.body["message"]


@pytest.mark.parametrize("card", [None, "card", [1], 5])
def test_card_must_be_an_object(local_network: LocalNetwork, api: BackendClient, card: Any) -> None:
    reply = api.post(
        API_PATH_REGISTRY_AGENTS, {"card": card, "billingMode": "free"}, token=local_network.api_key
    )
    assert reply.status == 400
    assert "'card'" in reply.body["message"]


@pytest.mark.parametrize("raw", [b"{", b"[]", b"null"])
def test_malformed_register_bodies_are_400(
    local_network: LocalNetwork, api: BackendClient, raw: bytes
) -> None:
    reply = api.request("POST", API_PATH_REGISTRY_AGENTS, raw=raw, token=local_network.api_key)
    assert reply.status == 400


def test_bad_protocol_header_is_400(api: BackendClient) -> None:
    reply = api.get(API_PATH_REGISTRY_AGENTS, params={"agentName": "echo"}, protocol="0")
    assert reply.code == "UNSUPPORTED_PROTOCOL_VERSION"
