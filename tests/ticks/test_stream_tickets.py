"""Stream admission: single-use tickets from POST /api/v1/stream/tickets, the connection caps per key
and per address, and honest refusals when Redis is out of reach. The stream itself is served by a
real uvicorn over the real Redis channel layer, as in test_consumers.py."""

import asyncio
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
import redis
import redis.asyncio
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from rest_framework.test import APIClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.asgi_server import AsgiServer, free_port
from tests.ticks.factories import OptionFactory, UserFactory
from tickerproject.asgi import application
from ticks.models import ClientApiKey
from ticks.stream_slots import stream_redis_connect
from ticks.stream_tickets import StreamHolder, stream_ticket_issue, stream_ticket_redeem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

CHAIN = "NIFTY:2026-12-01"
SUBSCRIBE = '{"action": "subscribe", "chain": "NIFTY:2026-12-01"}'


@pytest.fixture
def chain(redis_client) -> None:
    OptionFactory(expiry=date(2026, 12, 1), strike=Decimal(25000))


@pytest.fixture
def server() -> Iterator[AsgiServer]:
    with AsgiServer(application) as running:
        yield running


def _key(scope: str = "read") -> tuple[ClientApiKey, str]:
    return ClientApiKey.objects.create_key(name="script", user=UserFactory(), scope=scope)


def _post_ticket(key: str) -> dict:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    response = client.post("/api/v1/stream/tickets")
    assert response.status_code == 201, response.content
    return response.json()


async def _ticket(key: str | None = None) -> str:
    if key is None:
        _, key = await database_sync_to_async(_key)()
    return (await database_sync_to_async(_post_ticket)(key))["ticket"]


async def _closed(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def _streams(ws: ClientConnection) -> bool:
    await ws.send(SUBSCRIBE)
    return '"type": "snapshot"' in await asyncio.wait_for(ws.recv(), 10)


def test_a_ticket_is_issued_to_any_scope_and_stored_only_as_its_hash(redis_client: redis.Redis) -> None:
    _, key = _key("read")

    answer = _post_ticket(key)

    assert answer["expires_in"] == django_settings.STREAM_TICKET_TTL_S == 30
    stored = redis_client.keys("stream:ticket:*")
    assert len(stored) == 1 and answer["ticket"].encode() not in stored[0]
    assert 0 < redis_client.ttl(stored[0]) <= 30


def test_a_ticket_needs_authentication(redis_client: redis.Redis) -> None:
    assert APIClient().post("/api/v1/stream/tickets").status_code == 401


def test_redis_down_when_issuing_is_503_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    _, key = _key()
    dead = redis.Redis(port=free_port(), socket_connect_timeout=1)
    monkeypatch.setattr("ticks.stream_tickets._client", lambda url: dead)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)

    response = client.post("/api/v1/stream/tickets")

    assert response.status_code == 503 and response["Retry-After"]


async def test_a_ticket_is_redeemed_once(redis_client: redis.Redis, aredis: redis.asyncio.Redis) -> None:
    issued = await database_sync_to_async(stream_ticket_issue)(holder=StreamHolder(7, "abcd1234"))
    ticket = issued.ticket

    first, second = await stream_ticket_redeem(aredis, ticket), await stream_ticket_redeem(aredis, ticket)

    assert (first, second) == (StreamHolder(7, "abcd1234"), None)
    assert await stream_ticket_redeem(aredis, "../" * 20) is None  # malformed: Redis not asked


async def test_a_ticket_opens_one_connection(chain: None, server: AsgiServer) -> None:
    ticket = await _ticket()
    url = f"{server.ws_url}/ws/stream/?ticket={ticket}"

    async with connect(url) as ws:
        streams = await _streams(ws)
    async with connect(url) as again:
        refused = await _closed(again)

    assert streams
    assert refused == (4401, "log in, or connect with ?ticket= or an X-Api-Key header")


async def test_a_ticket_of_a_key_revoked_since_opens_nothing(chain: None, server: AsgiServer) -> None:
    api_key, key = await database_sync_to_async(_key)()
    ticket = await _ticket(key)
    api_key.revoked = True
    await database_sync_to_async(api_key.save)()

    async with connect(f"{server.ws_url}/ws/stream/?ticket={ticket}") as ws:
        assert (await _closed(ws))[0] == 4401


async def test_connections_past_the_cap_per_key_are_refused_4429_until_one_closes(
    chain: None, server: AsgiServer, settings, redis_client: redis.Redis
) -> None:
    settings.STREAM_MAX_CONNECTIONS_PER_KEY = 2
    api_key, key = await database_sync_to_async(_key)()
    headers = {"X-Api-Key": key}
    url = f"{server.ws_url}/ws/stream/"

    first, second = [await connect(url, additional_headers=headers) for _ in range(2)]
    async with connect(url, additional_headers=headers) as third:
        refused = await _closed(third)
    await first.close()
    while redis_client.zcard(f"stream:slots:key:{api_key.prefix}") > 1:  # given back as it closed
        await asyncio.sleep(0.05)
    async with connect(f"{url}?ticket={await _ticket(key)}") as fourth:
        streams = await _streams(fourth)
        async with connect(url, additional_headers=headers) as fifth:  # a ticket counts as its key
            refused_again = await _closed(fifth)
    await second.close()

    assert refused == refused_again == (4429, "at most 2 stream connections per API key or user")
    assert streams


async def test_connections_past_the_cap_per_address_are_refused_whatever_the_key(
    chain: None, server: AsgiServer, settings, redis_client: redis.Redis
) -> None:
    settings.STREAM_MAX_CONNECTIONS_PER_IP = 1
    url = f"{server.ws_url}/ws/stream/"

    async with connect(f"{url}?ticket={await _ticket()}") as first:
        assert await _streams(first)
        async with connect(f"{url}?ticket={await _ticket()}") as second:
            refused = await _closed(second)
    while redis_client.zcard("stream:slots:ip:127.0.0.1"):  # the first's slot, given back as it closed
        await asyncio.sleep(0.05)

    assert refused == (4429, "at most 1 stream connections per client address")


async def test_redis_out_of_reach_at_connect_is_refused_4503(
    chain: None, server: AsgiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = await database_sync_to_async(_key)()
    dead = stream_redis_connect(f"redis://127.0.0.1:{free_port()}/0")  # as the web's own client is made
    monkeypatch.setattr("ticks.consumers.stream_redis", lambda: dead)

    async with connect(f"{server.ws_url}/ws/stream/", additional_headers={"X-Api-Key": key}) as ws:
        assert await _closed(ws) == (4503, "stream unavailable, retry shortly")


async def test_a_channel_layer_without_redis_at_connect_is_refused_4503(
    chain: None, server: AsgiServer, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the consumer runs at all: Channels asks the layer for the connection's channel first."""
    dead = {"BACKEND": "ticks.channel_layer.StreamPubSubChannelLayer"}
    settings.CHANNEL_LAYERS = {
        **settings.CHANNEL_LAYERS,
        "dead": {**dead, "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}},
    }
    monkeypatch.setattr("ticks.consumers.StreamConsumer.channel_layer_alias", "dead")
    _, key = await database_sync_to_async(_key)()

    async with connect(f"{server.ws_url}/ws/stream/", additional_headers={"X-Api-Key": key}) as ws:
        assert await _closed(ws) == (4503, "stream unavailable, retry shortly")
