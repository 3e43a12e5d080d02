"""The live stream consumer, served by a real uvicorn, over the real Redis channel layer.

(Channels' WebsocketCommunicator cannot be imported here: channels.testing imports daphne, which
cannot be installed next to kiteconnect's autobahn pin.)"""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.asgi_server import AsgiServer
from tests.ticks.factories import OptionFactory, UserFactory
from tickerproject.asgi import application
from ticks.consumers import StreamConsumer
from ticks.models import ClientApiKey
from ticks.stream import chain_group, rows_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

EXPIRY = date(2026, 12, 1)
CHAIN = "NIFTY:2026-12-01"


@pytest.fixture
def chain(redis_client) -> list[int]:
    return [
        OptionFactory(expiry=EXPIRY, strike=Decimal(strike), instrument_type=kind).instrument_token
        for strike in (24950, 25000, 25050)
        for kind in ("CE", "PE")
    ]


@pytest.fixture
def server() -> Iterator[AsgiServer]:
    with AsgiServer(application) as running:
        yield running


@database_sync_to_async
def _key() -> str:
    _, key = ClientApiKey.objects.create_key(name="script", user=UserFactory())
    return key


class Client:
    """A websockets connection with JSON helpers."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send_json_to(self, message: object) -> None:
        await self.ws.send(json.dumps(message))

    async def send_to(self, *, text_data: str) -> None:
        await self.ws.send(text_data)

    async def receive_json_from(self, timeout: float = 5) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))


@pytest.fixture
async def client(server: AsgiServer) -> AsyncIterator[Client]:
    key = await _key()
    async with connect(f"{server.ws_url}/ws/stream/", additional_headers={"X-Api-Key": key}) as ws:
        yield Client(ws)


@pytest.mark.parametrize("query", ["", "?ticket=wrong", f"?ticket={'x' * 43}"])
async def test_unauthenticated_connections_are_closed_with_4401(
    chain: list[int], server: AsgiServer, query: str
) -> None:
    async with connect(f"{server.ws_url}/ws/stream/{query}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 4401


async def test_a_cross_site_browser_origin_is_refused(chain: list[int], server: AsgiServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws_url}/ws/stream/", origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_an_api_key_in_the_query_string_is_refused_with_the_way_to_connect(
    chain: list[int], server: AsgiServer
) -> None:
    """Even a valid one: it would be written to every access log on its way (issue 17)."""
    key = await _key()
    async with connect(f"{server.ws_url}/ws/stream/?api_key={key}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 4401
    assert "?ticket=" in closed.value.rcvd.reason and "X-Api-Key" in closed.value.rcvd.reason


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("not json", "message"),
        ("[1, 2]", "message"),
        ('{"action": "dance"}', "action"),
        ('{"action": "subscribe"}', "chain"),
        ('{"action": "subscribe", "chain": "NIFTY"}', "chain"),
        ('{"action": "subscribe", "chain": "NIFTY:2026-13-01"}', "chain"),
        ('{"action": "subscribe", "chain": "NOPE:2026-12-01"}', "chain"),
        ('{"action": "subscribe", "tokens": []}', "tokens"),
        ('{"action": "subscribe", "tokens": ["1"]}', "tokens"),
        ('{"action": "subscribe", "tokens": [999999999]}', "tokens"),
        ('{"action": "unsubscribe", "chain": "NIFTY:2026-12-01"}', "chain"),
        # Both dropped the connection without a close frame (issue 16): OverflowError from the
        # database lookup, RecursionError from the parser.
        (json.dumps({"action": "subscribe", "tokens": [2**70]}), "tokens"),
        ("[" * 30_000 + "]" * 30_000, "message"),
        # A TypeError each (unhashable in a set or dict lookup).
        ('{"action": ["subscribe"], "chain": "NIFTY:2026-12-01"}', "action"),
        ('{"action": "snapshot", "chain": ["NIFTY", "2026-12-01"]}', "chain"),
        ('{"action": "subscribe", "tokens": [true]}', "tokens"),
        ('{"action": "subscribe", "tokens": [NaN]}', "message"),
    ],
)
async def test_bad_messages_get_an_error_and_the_connection_stays(
    chain: list[int], client: Client, message: str, field: str
) -> None:
    communicator = client

    await communicator.send_to(text_data=message)
    error = await communicator.receive_json_from()
    await communicator.send_to(text_data=json.dumps({"action": "subscribe", "chain": CHAIN}))
    snapshot = await communicator.receive_json_from()

    assert (error["type"], error["field"]) == ("error", field)
    assert snapshot["type"] == "snapshot"


async def test_a_binary_frame_gets_an_error_and_the_connection_stays(
    chain: list[int], client: Client
) -> None:
    await client.ws.send(b"\xff\x00 not text")
    error = await client.receive_json_from()
    await client.send_json_to({"action": "subscribe", "chain": CHAIN})

    assert (error["type"], error["field"]) == ("error", "message")
    assert (await client.receive_json_from())["type"] == "snapshot"


async def test_refused_messages_are_logged_and_counted_by_field(
    chain: list[int], client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    def refused() -> float:
        return REGISTRY.get_sample_value("stream_protocol_errors_total", {"field": "tokens"}) or 0.0

    before = refused()
    await client.send_json_to({"action": "subscribe", "tokens": [2**70]})
    await client.receive_json_from()

    assert refused() == before + 1
    assert "refused a client message: a token is an integer from 1 to 4294967295" in caplog.text
    assert "(field tokens)" in caplog.text


async def test_a_frame_at_the_size_limit_is_read_and_one_over_it_closes_the_connection(
    chain: list[int], client: Client, settings
) -> None:
    """uvicorn's --ws-max-size is the consumer's limit (tests/asgi_server.py as the Procfile): over it,
    uvicorn closes with 1009 before the consumer sees the frame (the consumer itself would close 4413)."""
    limit = settings.STREAM_MAX_MESSAGE_BYTES
    at_limit = json.dumps({"action": "subscribe", "chain": "x"})
    at_limit += " " * (limit - len(at_limit))

    await client.send_to(text_data=at_limit)
    error = await client.receive_json_from()
    await client.send_to(text_data=at_limit + " ")
    with pytest.raises(ConnectionClosed) as closed:
        await client.receive_json_from()

    assert (error["type"], error["field"]) == ("error", "chain")
    assert closed.value.rcvd.code == 1009


async def test_a_chain_snapshot_before_any_tick_reports_no_price(chain: list[int], client: Client) -> None:
    communicator = client

    await communicator.send_json_to({"action": "subscribe", "chain": CHAIN})
    snapshot = await communicator.receive_json_from()

    assert snapshot["chain"] == CHAIN and snapshot["seq"] == 1
    assert sorted(row["instrument_token"] for row in snapshot["rows"]) == sorted(chain)
    assert {row["status"] for row in snapshot["rows"]} == {"no_price"}


async def test_deltas_are_conflated_and_numbered_after_the_snapshot(chain: list[int], client: Client) -> None:
    communicator = client
    await communicator.send_json_to({"action": "subscribe", "chain": CHAIN})
    snapshot = await communicator.receive_json_from()
    layer = get_channel_layer()

    for price in range(1, 101):  # 100 frames within a few ms: one flush interval
        rows = [
            {"instrument_token": chain[0], "last_price": float(price)},
            {"instrument_token": 1, "last_price": 1.0},
        ]
        await layer.group_send(chain_group("NIFTY", EXPIRY), rows_message(rows))
    deltas = []
    while sum(len(d["rows"]) for d in deltas) == 0 or deltas[-1]["rows"][-1]["last_price"] != 100.0:
        deltas.append(await communicator.receive_json_from(timeout=2))

    assert len(deltas) <= 3  # conflated: far fewer messages than frames
    assert [d["seq"] for d in deltas] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(deltas)))
    assert {row["instrument_token"] for d in deltas for row in d["rows"]} == {chain[0]}  # token 1 not wanted


async def test_a_delta_carries_the_newest_forming_bar_of_each_wanted_token(
    chain: list[int], client: Client
) -> None:
    await client.send_json_to({"action": "subscribe", "chain": CHAIN})
    await client.receive_json_from()
    layer = get_channel_layer()

    for close in (10.0, 11.5):
        rows = [{"instrument_token": chain[0], "last_price": close}]
        bars = {chain[0]: f"[1800000000,9.0,{close},9.0,{close},40]", 1: "[1800000000,1.0,1.0,1.0,1.0,0]"}
        await layer.group_send(chain_group("NIFTY", EXPIRY), rows_message(rows, bars=bars))
    deltas = [await client.receive_json_from(timeout=2)]
    while deltas[-1]["rows"][-1]["last_price"] != 11.5:
        deltas.append(await client.receive_json_from(timeout=2))

    assert deltas[-1]["bars"] == {str(chain[0]): [1800000000, 9.0, 11.5, 9.0, 11.5, 40]}  # token 1 not wanted
    assert all(set(delta["bars"]) == {str(chain[0])} for delta in deltas)


async def test_token_subscriptions_receive_only_their_tokens(chain: list[int], client: Client) -> None:
    communicator = client
    await communicator.send_json_to({"action": "subscribe", "tokens": [chain[1]]})
    layer = get_channel_layer()
    await asyncio.sleep(0.1)

    rows = [{"instrument_token": token, "last_price": 5.0} for token in chain]
    await layer.group_send(chain_group("NIFTY", EXPIRY), rows_message(rows))
    delta = await communicator.receive_json_from(timeout=2)

    assert delta["type"] == "delta" and [row["instrument_token"] for row in delta["rows"]] == [chain[1]]


async def test_too_many_chains_is_an_error(chain: list[int], client: Client, settings) -> None:
    settings.STREAM_MAX_CHAINS = 1
    await database_sync_to_async(OptionFactory)(expiry=date(2026, 12, 8))
    communicator = client
    await communicator.send_json_to({"action": "subscribe", "chain": CHAIN})
    await communicator.receive_json_from()

    await communicator.send_json_to({"action": "subscribe", "chain": "NIFTY:2026-12-08"})

    assert (await communicator.receive_json_from())["message"] == "at most 1 chains per connection"


async def test_a_client_that_cannot_drain_is_dropped_with_a_reason(settings) -> None:
    settings.STREAM_SLOW_CLIENT_S = 0.05
    consumer = StreamConsumer()
    closes: list[dict] = []

    async def never_drains(message: dict) -> None:
        await asyncio.Event().wait()

    async def record_close(code: int | None = None, reason: str | None = None) -> None:
        closes.append({"code": code, "reason": reason})

    consumer._server_send = never_drains
    consumer.close = record_close  # type: ignore[method-assign]
    consumer.channel_name, consumer.channel_layer = "test", None
    consumer.chains, consumer.tokens, consumer.token_groups, consumer.stalled_since = {}, set(), set(), None
    consumer.flusher = asyncio.create_task(consumer._send_text('{"type":"delta"}'))  # stuck in a send

    await asyncio.wait_for(consumer._watch_sends(), timeout=1)

    assert closes == [{"code": 4408, "reason": "client too slow to receive"}]
    with pytest.raises(asyncio.CancelledError):
        await consumer.flusher  # no more sends to a client that does not read


async def test_a_client_that_drains_slowly_is_kept(settings) -> None:
    settings.STREAM_SLOW_CLIENT_S = 0.2
    consumer = StreamConsumer()
    consumer.stalled_since = None

    async def slow_send(message: dict) -> None:
        await asyncio.sleep(0.1)  # each send drains, in half the limit

    consumer._server_send = slow_send
    watchdog = asyncio.create_task(consumer._watch_sends())
    for _ in range(6):
        await consumer._send_text("{}")

    assert not watchdog.done()
    watchdog.cancel()


async def test_an_idle_consumer_outlives_the_redis_socket_timeout_trap(
    chain: list[int], client: Client
) -> None:
    """redis-py 8's 5 s socket timeout killed idle channels-redis consumers (channels_redis#422)."""
    await client.send_json_to({"action": "subscribe", "chain": CHAIN})
    await client.receive_json_from()

    await asyncio.sleep(32)
    rows = [{"instrument_token": chain[0], "last_price": 7.0}]
    await get_channel_layer().group_send(chain_group("NIFTY", EXPIRY), rows_message(rows))

    delta = await client.receive_json_from(timeout=5)
    assert (delta["type"], delta["rows"]) == ("delta", rows)


@pytest.mark.parametrize("underlying", ["M&M", "BAJAJ-AUTO"])  # Kite's names with "&" and "-"
async def test_a_chain_named_with_kites_punctuation_streams(
    underlying: str, client: Client, redis_client
) -> None:
    token = await database_sync_to_async(
        lambda: (
            OptionFactory(
                name=underlying, expiry=EXPIRY, tradingsymbol=f"{underlying}26DEC1000CE"
            ).instrument_token
        )
    )()
    await client.send_json_to({"action": "subscribe", "chain": f"{underlying}:2026-12-01"})
    snapshot = await client.receive_json_from()

    await get_channel_layer().group_send(
        chain_group(underlying, EXPIRY), rows_message([{"instrument_token": token, "last_price": 7.5}])
    )
    delta = await client.receive_json_from()

    assert snapshot["type"] == "snapshot" and [row["instrument_token"] for row in snapshot["rows"]] == [token]
    assert delta["type"] == "delta" and delta["rows"] == [{"instrument_token": token, "last_price": 7.5}]
