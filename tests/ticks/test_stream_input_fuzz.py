"""Any input at a subscribed ``/ws/stream/`` connection (hypothesis): an error answer, or a 4xxx close
for a frame over the limit, and the connection keeps streaming.

The app's real routing and consumer over asgiref's ApplicationCommunicator (Channels' own
WebsocketCommunicator imports daphne, which cannot be installed here), an in-memory channel layer,
a chain in the test database and the latest-tick cache in the test's Redis.
"""

import json
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.ticks.factories import OptionFactory, UserFactory
from tickerproject.asgi import application
from ticks.models import ClientApiKey
from ticks.stream import chain_group, rows_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]  # the snapshot reads Redis

EXPIRY = date(2026, 12, 1)
CHAIN = "NIFTY:2026-12-01"
MAX_BYTES = 4096  # small, so that oversized frames are cheap to generate
MAX_DEPTH = 8
TOKEN_MAX = 2**32 - 1
FIELDS = {"message", "action", "chain", "tokens"}


class Connection:
    """One authenticated ``/ws/stream/`` connection subscribed to CHAIN; reopened after a close."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.prices = count(1)
        self.communicator: ApplicationCommunicator | None = None

    async def open(self) -> None:
        scope = {
            "type": "websocket",
            "path": "/ws/stream/",
            "query_string": b"",
            "headers": [(b"x-api-key", self.key.encode())],
            "subprotocols": [],
        }
        self.communicator = ApplicationCommunicator(application, scope)
        await self.communicator.send_input({"type": "websocket.connect"})
        assert (await self.communicator.receive_output(5))["type"] == "websocket.accept"
        assert [answer["type"] for answer in await self.answers_to_subscribing()] == ["snapshot"]

    async def reopen_if_failed(self) -> None:
        """A failed example leaves its connection dead; the next one gets a new one, so that each
        example fails for its own input (and shrinks to it)."""
        if self.communicator.future.done():
            await self.open()

    async def close(self) -> None:
        if self.communicator is not None and not self.communicator.future.done():
            await self.communicator.send_input({"type": "websocket.disconnect", "code": 1000})
            await self.communicator.wait(5)

    async def send(self, kind: str, payload: str | bytes) -> None:
        await self.communicator.send_input({"type": "websocket.receive", kind: payload})

    async def receive(self) -> dict[str, Any]:
        """The next frame as JSON, or the close as {"type": "close", "code": ...}."""
        output = await self.communicator.receive_output(5)
        if output["type"] == "websocket.close":
            return {"type": "close", "code": output.get("code"), "reason": output.get("reason")}
        assert output["type"] == "websocket.send", output
        return json.loads(output["text"])

    async def answers_to_subscribing(self, earlier: int = 0) -> list[dict[str, Any]]:
        """Subscribe to CHAIN again (its snapshot marks the end of what came before) and return the
        ``earlier`` answers to a previous message, then the snapshot."""
        await self.send("text", json.dumps({"action": "subscribe", "chain": CHAIN}))
        return [await self.receive() for _ in range(earlier + 1)]

    async def streams(self, token: int) -> None:
        """A frame for the chain reaches this connection as a delta with that row."""
        row = {"instrument_token": token, "last_price": float(next(self.prices))}
        await get_channel_layer().group_send(chain_group("NIFTY", EXPIRY), rows_message([row]))
        delta = await self.receive()
        assert (delta["type"], delta["rows"]) == ("delta", [row]), delta


@database_sync_to_async
def _chain_and_key() -> tuple[list[int], str]:
    tokens = [
        OptionFactory(expiry=EXPIRY, strike=Decimal(strike), instrument_type=kind).instrument_token
        for strike in (24950, 25000)
        for kind in ("CE", "PE")
    ]
    _, key = ClientApiKey.objects.create_key(name="fuzz", user=UserFactory())
    return tokens, key


@pytest.fixture
async def stream(redis_client, settings) -> AsyncIterator[tuple[Connection, list[int]]]:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAM_MAX_MESSAGE_BYTES = MAX_BYTES
    settings.STREAM_MAX_JSON_DEPTH = MAX_DEPTH
    settings.STREAM_FLUSH_MS = 1
    tokens, key = await _chain_and_key()
    connection = Connection(key)
    await connection.open()
    yield connection, tokens
    await connection.close()


# --- what a client may throw -----------------------------------------------------------------------

ACTIONS = ["subscribe", "unsubscribe", "snapshot"]
TRICKY_INTS = [0, -1, 1, TOKEN_MAX, TOKEN_MAX + 1, 2**63 - 1, 2**63, 2**64, 2**70, -(2**70)]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(TRICKY_INTS)
    | st.floats()  # NaN and Infinity too: json.dumps writes them as the literals json.loads accepts
    | st.text(max_size=20)
)
chains = st.sampled_from(
    [CHAIN, "NIFTY:0001-01-01", "NIFTY:9999-12-31", "NIFTY:2026-13-01", "NIFTY:20261201", "NIFTY:2026-W49-2",
     "NIFTY", ":", "\uff2e\uff29\uff26\uff34\uff39:2026-12-01", "NIFTY\x00:2026-12-01", "NIFTY:2026-12-01 ", "A" * 90 + ":2026-12-01"]
) | st.text(max_size=30)  # fmt: skip


def json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["action", "chain", "tokens"]) | st.text(max_size=6), children, max_size=4
            )
        ),
        max_leaves=12,
    )


def token_lists(tokens: list[int]) -> st.SearchStrategy[Any]:
    return st.lists(st.sampled_from(tokens) | scalars, max_size=6) | json_values(scalars)


def requests(tokens: list[int]) -> st.SearchStrategy[dict[str, Any]]:
    """Well-shaped requests whose values are near or past what the code below can hold."""
    ints = st.sampled_from(tokens) | st.sampled_from(TRICKY_INTS) | st.integers()
    token_lists = st.lists(ints, min_size=1, max_size=4) | st.lists(ints | scalars, min_size=1, max_size=4)
    action = st.sampled_from(ACTIONS)
    return st.fixed_dictionaries({"action": action, "chain": chains}) | st.fixed_dictionaries(
        {"action": action, "tokens": token_lists}
    )


def messages(tokens: list[int]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the protocol's keys, well and badly formed, and extra keys with any value."""
    return st.fixed_dictionaries(
        {},
        optional={
            "action": st.sampled_from(ACTIONS) | json_values(scalars),
            "chain": chains | json_values(scalars),
            "tokens": token_lists(tokens),
            "extra": json_values(scalars),
        },
    )


def deep(n: int, inner: str) -> str:
    return "[" * n + inner + "]" * n


def inputs(tokens: list[int]) -> st.SearchStrategy[tuple[str, str | bytes]]:
    depths = st.sampled_from([MAX_DEPTH, MAX_DEPTH + 1, 1500, MAX_BYTES // 2]) | st.integers(
        1, MAX_BYTES // 2
    )
    texts = st.one_of(
        messages(tokens).map(json.dumps),
        json_values(scalars).map(json.dumps),
        depths.map(lambda n: deep(n, "")),
        depths.map(lambda n: '{"a":' * n + "1" + "}" * n),
        st.integers(MAX_DEPTH - 1, MAX_DEPTH + 2).map(
            lambda n: json.dumps({"action": "subscribe", "tokens": json.loads(deep(n, str(tokens[0])))})
        ),
        st.integers(MAX_BYTES - 40, MAX_BYTES + 40).map(
            lambda n: json.dumps({"action": "subscribe", "chain": "é" * (n // 2)}, ensure_ascii=False)
        ),
        st.text(max_size=40),
        st.sampled_from(["NaN", "[Infinity]", '{"action": -Infinity}', "1" * 5000, '"\\ud800"', "", "{}"]),
    )
    # A third each: well-shaped requests, any other text, bytes (map() keeps one_of from flattening).
    return st.one_of(
        st.tuples(st.just("text"), requests(tokens).map(json.dumps)),
        st.tuples(st.just("text"), texts.map(str)),
        st.tuples(st.just("bytes"), st.binary(max_size=40)),
    )


# --- what the protocol answers (README "Live stream"), worked out independently of ticks.stream_input


def expected(kind: str, payload: str | bytes, tokens: list[int]) -> list[str]:
    """The types of the answers to one input while subscribed to CHAIN: "close" for a frame over the
    limit, nothing for a valid unsubscribe or token subscription, a snapshot for a valid chain
    request, an error otherwise."""
    if kind == "bytes":
        return ["close"] if len(payload) > MAX_BYTES else ["error"]
    if len(payload.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return ["close"]
    try:
        message = json.loads(payload, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return ["error"]
    if not isinstance(message, dict) or _depth(message) > MAX_DEPTH:
        return ["error"]
    action = message.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        return ["error"]
    if "chain" in message:
        if message["chain"] != CHAIN:
            return ["error"]
        return [] if action == "unsubscribe" else ["snapshot"]
    wanted = message.get("tokens")
    if action == "snapshot" or not isinstance(wanted, list) or not wanted:
        return ["error"]
    if not all(type(token) is int and 1 <= token <= TOKEN_MAX for token in wanted):
        return ["error"]
    if action == "subscribe" and not set(wanted) <= set(tokens):
        return ["error"]  # unknown tokens
    return []


def _refuse(name: str) -> float:
    raise ValueError(name)


def _depth(value: object) -> int:
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            todo.extend((child, level) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


# --- the property ----------------------------------------------------------------------------------


@hypothesis_settings(
    max_examples=150,
    deadline=None,
    # One connection serves every example, as one client would send them: that is the point.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_any_input_is_answered_and_the_connection_keeps_streaming(
    stream: tuple[Connection, list[int]], data: st.DataObject
) -> None:
    connection, tokens = stream
    kind, payload = data.draw(inputs(tokens), label="input")
    wanted = expected(kind, payload, tokens)
    await connection.reopen_if_failed()

    await connection.send(kind, payload)
    if wanted == ["close"]:
        closed = await connection.receive()
        assert (closed["type"], closed["code"]) == ("close", 4413), closed
        assert closed["reason"] == f"a message is at most {MAX_BYTES} bytes"
        await connection.close()
        await connection.open()
    else:
        answers = await connection.answers_to_subscribing(earlier=len(wanted))
        assert [answer["type"] for answer in answers] == [*wanted, "snapshot"], answers
        for error in answers[:-1]:
            if error["type"] == "error":
                assert error["field"] in FIELDS and isinstance(error["message"], str), error
                assert len(error["message"]) < 200  # a client's value is quoted back cut short
    await connection.streams(tokens[0])


async def test_a_frame_over_the_limit_is_closed_with_4413_and_a_reason(
    stream: tuple[Connection, list[int]],
) -> None:
    """What a server with a larger frame limit than the consumer's would let through."""
    connection, _ = stream

    await connection.send("text", json.dumps({"action": "subscribe", "chain": "x" * MAX_BYTES}))

    assert await connection.receive() == {
        "type": "close",
        "code": 4413,
        "reason": "a message is at most 4096 bytes",
    }
