"""The consumer's send path without a network: one pending snapshot per chain, nothing sent past
STREAM_SEND_BUFFER_BYTES, and a client that takes nothing closed with 4408 (or reset when even the
close cannot be written). The same over a real socket: tests/ticks/test_stream_slow_close.py."""

import asyncio
import json
from typing import Any

import pytest

from ticks.conflation import Conflator, SendBudget
from ticks.consumers import PENDING_ERRORS_MAX, StreamConsumer
from ticks.stream import ChainSubscription, StreamError, rows_message

CHAIN = "NIFTY:2026-12-01"


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class FakeLayer:
    def __init__(self) -> None:
        self.released: list[str] = []

    async def channel_release(self, channel: str) -> None:
        self.released.append(channel)


def _consumer(sent: list[dict[str, Any]], backlog: list[int]) -> StreamConsumer:
    """A consumer as connect() leaves it, its socket's backlog read from ``backlog[0]``."""

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    consumer = StreamConsumer()
    consumer.channel_name, consumer.channel_layer = "test", FakeLayer()
    consumer.conflator, consumer.dirty = Conflator(), asyncio.Event()
    consumer.chains = {
        CHAIN: ChainSubscription(groups=frozenset({"chain.NIFTY.2026-12-01"}), tokens=frozenset({1}))
    }
    consumer.tokens, consumer.token_groups, consumer.wanted = set(), set(), {1}
    consumer.replies, consumer.replied, consumer.stalled_since = {}, 0, None
    consumer._server_send, consumer.backlog, consumer.direct = send, lambda: backlog[0], None
    consumer.loop = asyncio.get_running_loop()
    consumer.budget = SendBudget(0.1, 2.0, wall_at=consumer.loop.time())
    consumer.serving = True
    return consumer


async def test_snapshot_requests_while_one_is_pending_are_one_snapshot() -> None:
    consumer = _consumer([], [0])

    for _ in range(3000):  # the probe of issue 17
        await consumer._snapshot_chain(CHAIN)

    assert list(consumer.replies) == [f"snapshot:{CHAIN}"]


async def test_error_replies_waiting_for_a_client_are_bounded() -> None:
    consumer = _consumer([], [0])
    for _ in range(100):
        consumer._reply_error(StreamError("invalid JSON", field="message"))

    assert len(consumer.replies) == PENDING_ERRORS_MAX


async def test_nothing_is_sent_while_the_socket_holds_the_send_buffer(settings) -> None:
    settings.STREAM_SEND_BUFFER_BYTES = 1000
    sent: list[dict[str, Any]] = []
    backlog = [1000]
    consumer = _consumer(sent, backlog)
    consumer._reply_error(StreamError("x", field="message"))
    flusher = asyncio.create_task(consumer._flush_loop())

    await asyncio.sleep(0.2)
    held, stalled = list(sent), consumer.stalled_since
    backlog[0] = 999  # the client took some
    while not sent:
        await asyncio.sleep(0.01)
    flusher.cancel()

    assert held == [] and stalled is not None
    assert sent == [
        {"type": "websocket.send", "text": '{"type": "error", "message": "x", "field": "message"}'}
    ]


async def test_a_client_that_takes_nothing_is_closed_4408_and_reset_if_it_never_reads(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ticks.consumers.RESET_AFTER_CLOSE_S", 0.05)
    settings.STREAM_SLOW_CLIENT_S = 0.1
    settings.STREAM_SEND_BUFFER_BYTES = 1000
    closes: list[tuple[int | None, str | None]] = []
    consumer = _consumer([], [5000])
    consumer.transport = FakeTransport()

    async def record_close(code: int | None = None, reason: str | None = None) -> None:
        closes.append((code, reason))

    consumer.close = record_close  # type: ignore[method-assign]
    consumer.dirty.set()
    consumer.flusher = asyncio.create_task(consumer._flush_loop())

    await asyncio.wait_for(consumer._watch_sends(), timeout=5)
    closed_then_aborted = consumer.transport.aborted
    await asyncio.sleep(0.1)

    assert closes == [(4408, "client too slow to receive")]
    assert not closed_then_aborted and consumer.transport.aborted  # reset only after the grace
    assert consumer.flusher.cancelled() and not consumer.serving
    assert consumer.channel_layer.released == ["test"]  # merging stopped: groups left, receiver gone


async def test_a_close_that_cannot_even_be_written_resets_the_socket(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ticks.consumers.CLOSE_SEND_S", 0.05)
    consumer = _consumer([], [0])
    consumer.transport = FakeTransport()

    async def blocked_close(code: int | None = None, reason: str | None = None) -> None:
        await asyncio.Event().wait()

    consumer.close = blocked_close  # type: ignore[method-assign]
    await consumer._close_or_reset(4408, "client too slow to receive")

    assert consumer.transport.aborted


class FakeDirect:
    """ticks.stream_socket.DirectSend's shape: records the frames written."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.open = True

    def ready(self) -> bool:
        return self.open

    def send_text(self, text: str) -> None:
        self.texts.append(text)


def _rows(price: float) -> dict[str, Any]:
    """A message of one frame; all of them received by the feed at the same instant."""
    return rows_message([{"instrument_token": 1, "last_price": price}], received_at=5.0)


async def test_an_idle_connection_is_written_in_the_merge_within_its_budget_and_the_rest_waits() -> None:
    consumer = _consumer([], [0])
    consumer.direct = direct = FakeDirect()
    consumer.idle = True  # the flush task waits with nothing in hand

    for price in (1.0, 2.0, 3.0):  # within one instant: the burst of 2, then the budget says wait
        consumer._rows_merge(_rows(price))

    assert [json.loads(text)["seq"] for text in direct.texts] == [1, 2]
    assert consumer.dirty.is_set() and consumer.conflator.take().seq == 3  # left to the flush task


async def test_a_connection_with_a_send_in_hand_or_a_full_socket_leaves_it_to_the_flush_task() -> None:
    backlog = [0]
    consumer = _consumer([], backlog)
    consumer.direct = direct = FakeDirect()

    consumer._rows_merge(_rows(1.0))  # not idle: the flush task is sending
    consumer.idle, consumer.conflator = True, Conflator()
    consumer.dirty.clear()
    backlog[0] = 10**9
    consumer._rows_merge(_rows(2.0))

    assert direct.texts == [] and consumer.dirty.is_set()
