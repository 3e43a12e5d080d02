"""The fan-out hook after the greeks hook: one message per chain and per underlying per frame."""

import asyncio
import json
from typing import Any

import numpy as np
import pytest
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from greeks.hook import GreeksHook
from greeks.tickpath import InstrumentTable, instrument_table_build
from tests.greeks.market import (
    FUTURE_TOKEN,
    INDEX_TOKEN,
    MONTHLY,
    NOW,
    SPOT,
    WEEKLY,
    chain_frame,
    instrument_rows,
    tick_rows,
    true_forward,
)
from ticks.bars.aggregator import BAR_DTYPE
from ticks.bars.hook import BarsHook
from ticks.fanout import GATHER_MAX_S, BarTexts, StreamFanoutHook
from ticks.feeds.pipeline import TickBatch

pytestmark = pytest.mark.integration  # the greeks hook writes to Redis


class RecordingLayer:
    """Stands in for the channel layer (tested for real in test_consumers): records group_sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sent.append((group, message))


async def _table() -> InstrumentTable:
    return instrument_table_build(instrument_rows())


Hooks = tuple[GreeksHook, RecordingLayer, StreamFanoutHook]


@pytest.fixture
def hooks(aredis: redis.asyncio.Redis) -> Hooks:
    """The greeks hook on the test's Redis and the fan-out after it, sending to a recording layer."""
    greeks = GreeksHook(aredis, load_table=_table)
    layer = RecordingLayer()
    return greeks, layer, StreamFanoutHook(layer, greeks)


async def test_one_message_per_chain_and_underlying_with_greeks_and_forward(
    hooks: Hooks,
) -> None:
    greeks, layer, fanout = hooks
    future = tick_rows([FUTURE_TOKEN], [true_forward(MONTHLY)], exchange_timestamp=NOW)
    ticks = np.concatenate([chain_frame(WEEKLY), chain_frame(MONTHLY, with_index=False), future])
    batch = TickBatch("acct", ticks, received_at=123.5)

    await greeks(batch)
    await fanout(batch)
    await fanout.flush()

    groups = [group for group, _ in layer.sent]
    assert sorted(groups) == sorted([f"chain.NIFTY.{WEEKLY}", f"chain.NIFTY.{MONTHLY}", "underlying.NIFTY"])
    messages = dict(layer.sent)
    weekly = messages[f"chain.NIFTY.{WEEKLY}"]
    weekly_rows = [json.loads(row) for row in weekly["rows"]]
    assert weekly["type"] == "stream.rows" and weekly["received_at"] == 123.5
    assert weekly["chain"] == f"NIFTY:{WEEKLY}"
    assert weekly["tokens"] == [row["instrument_token"] for row in weekly_rows]
    options = [row for row in weekly_rows if "status" in row]
    assert len(options) == 42  # 21 strikes x CE/PE
    underlying_in_chain = {row["instrument_token"] for row in weekly_rows if "status" not in row}
    assert underlying_in_chain == {INDEX_TOKEN, FUTURE_TOKEN}  # one message per chain carries both
    ok = [row for row in options if row["status"] == "ok"]
    assert len(ok) >= 38 and all(0 < row["iv"] < 1 and -1 <= row["delta"] <= 1 for row in ok)
    assert abs(messages[f"chain.NIFTY.{MONTHLY}"]["fields"]["forward"] - true_forward(MONTHLY)) < 0.01
    assert abs(weekly["fields"]["atm_strike"] - SPOT) <= 50
    companions = {json.loads(row)["instrument_token"] for row in messages["underlying.NIFTY"]["rows"]}
    assert companions == {INDEX_TOKEN, FUTURE_TOKEN}


async def test_nothing_is_sent_for_a_heartbeat_or_unknown_tokens(hooks: Hooks) -> None:
    greeks, layer, fanout = hooks
    await greeks(TickBatch("acct", chain_frame(WEEKLY), 0.0))  # loads the table
    layer.sent.clear()

    await fanout(TickBatch("acct", tick_rows([123456789], [10.0]), 0.0))
    await fanout.flush()

    assert layer.sent == []


async def test_an_underlying_tick_alone_reaches_every_chain_of_that_underlying(
    hooks: Hooks,
) -> None:
    greeks, layer, fanout = hooks
    await greeks(TickBatch("acct", chain_frame(WEEKLY), 0.0))  # loads the table

    await fanout(TickBatch("acct", tick_rows([INDEX_TOKEN], [SPOT + 5]), 7.0))
    await fanout.flush()

    sent = {
        group: [json.loads(row)["last_price"] for row in message["rows"]] for group, message in layer.sent
    }
    assert sent == {
        f"chain.NIFTY.{WEEKLY}": [SPOT + 5],
        f"chain.NIFTY.{MONTHLY}": [SPOT + 5],
        "underlying.NIFTY": [SPOT + 5],
    }


async def test_a_chain_without_option_ticks_in_the_frame_gets_its_underlying_rows(
    hooks: Hooks,
) -> None:
    greeks, layer, fanout = hooks
    weekly_only = TickBatch("acct", chain_frame(WEEKLY), 2.0)  # the weekly's options and the index
    await greeks(weekly_only)

    await fanout(weekly_only)
    await fanout.flush()

    monthly = dict(layer.sent)[f"chain.NIFTY.{MONTHLY}"]
    assert [json.loads(row)["instrument_token"] for row in monthly["rows"]] == [INDEX_TOKEN]


async def test_frames_a_few_ms_apart_go_out_as_one_message_per_chain(hooks: Hooks) -> None:
    """An account's connections frame apart: each chain still gets one message, the newest rows."""
    greeks, layer, fanout = hooks
    first = TickBatch("acct", chain_frame(WEEKLY), 1.0)  # the weekly's options and the index
    await greeks(first)

    await fanout(first)
    await fanout(TickBatch("acct", tick_rows([INDEX_TOKEN], [SPOT + 9]), 1.002))  # another connection
    assert layer.sent == []  # still gathering
    await asyncio.sleep(GATHER_MAX_S * 2)

    groups = [group for group, _ in layer.sent]
    assert sorted(groups) == sorted([f"chain.NIFTY.{WEEKLY}", f"chain.NIFTY.{MONTHLY}", "underlying.NIFTY"])
    weekly = dict(layer.sent)[f"chain.NIFTY.{WEEKLY}"]
    index_rows = [
        json.loads(row) for row in weekly["rows"] if json.loads(row)["instrument_token"] == INDEX_TOKEN
    ]
    assert [row["last_price"] for row in index_rows] == [SPOT + 9]  # the newest, once
    assert weekly["received_at"] == 1.0  # the oldest frame in it: what latency is measured from
    assert len(weekly["rows"]) == 43  # 21 strikes x CE/PE and the index


async def test_forming_bars_of_primary_tokens_travel_with_their_rows(hooks: Hooks) -> None:
    greeks, layer, fanout = hooks
    bars = BarsHook("acct", write=_never_called)
    weekly = chain_frame(WEEKLY)  # the weekly's options and the index, stamped NOW
    weekly["volume_traded"] = 100
    future = tick_rows([FUTURE_TOKEN], [true_forward(MONTHLY)], exchange_timestamp=NOW)
    bars.set_primary([*weekly["instrument_token"].tolist()])  # the future is a copy on this account
    first = TickBatch("acct", np.concatenate([weekly, future]), 1.0)
    for hook in (greeks, bars, fanout):
        await hook(first)
    weekly["volume_traded"] = 130
    weekly["last_price"] += 1.0
    second = TickBatch("acct", np.concatenate([weekly, future]), 1.001)
    for hook in (greeks, bars, fanout):
        await hook(second)
    await fanout.flush()

    messages = dict(layer.sent)
    chain = messages[f"chain.NIFTY.{WEEKLY}"]
    sent = dict(zip(chain["bar_tokens"], (json.loads(bar) for bar in chain["bars"]), strict=True))
    at = int(np.flatnonzero(weekly["instrument_token"] != INDEX_TOKEN)[0])
    option, price = int(weekly["instrument_token"][at]), float(weekly["last_price"][at])
    minute = NOW // 60 * 60
    assert sent[option] == [minute, price - 1.0, price, price - 1.0, price, 30]
    assert sent[INDEX_TOKEN] == [minute, SPOT, SPOT + 1.0, SPOT, SPOT + 1.0, 0]  # an index has no volume
    assert set(sent) == {int(t) for t in weekly["instrument_token"]}  # none for the future's copy
    underlying = messages["underlying.NIFTY"]
    assert underlying["bar_tokens"] == [INDEX_TOKEN]
    assert messages[f"chain.NIFTY.{MONTHLY}"]["bar_tokens"] == [INDEX_TOKEN]  # its underlying's bar


async def test_option_rows_carry_the_last_trade_time_and_null_without_one(hooks: Hooks) -> None:
    greeks, layer, fanout = hooks
    frame = chain_frame(WEEKLY)  # the index first, then the options
    frame["last_trade_time"][1:] = NOW - np.arange(frame.size - 1)  # each option traded a second apart
    frame["last_trade_time"][2] = 0  # a packet without one (ltp and quote modes)
    batch = TickBatch("acct", frame, 1.0)
    await greeks(batch)

    await fanout(batch)
    await fanout.flush()

    rows = {
        row["instrument_token"]: row
        for row in map(json.loads, dict(layer.sent)[f"chain.NIFTY.{WEEKLY}"]["rows"])
    }
    expected = {
        int(t): int(ltt) or None
        for t, ltt in zip(frame["instrument_token"][1:], frame["last_trade_time"][1:], strict=True)
    }
    assert {token: rows[token]["last_trade_time"] for token in expected} == expected
    assert list(expected.values()).count(None) == 1
    assert "last_trade_time" not in rows[INDEX_TOKEN]  # the index and futures rows stay as they were


async def test_a_chains_exchange_time_is_the_newest_tick_of_the_step(hooks: Hooks) -> None:
    """Connections frame apart and not in exchange-time order: the chain keeps the newest stamp."""
    greeks, layer, fanout = hooks
    first = TickBatch("acct", chain_frame(WEEKLY, now=NOW), 1.0)  # options and the index at NOW
    await greeks(first)

    await fanout(first)
    await fanout(TickBatch("acct", tick_rows([FUTURE_TOKEN], [SPOT], exchange_timestamp=NOW + 3), 1.001))
    await fanout(TickBatch("acct", chain_frame(WEEKLY, now=NOW + 1, with_index=False), 1.002))  # older
    await fanout(TickBatch("acct", tick_rows([INDEX_TOKEN], [SPOT], exchange_timestamp=0, mode="ltp"), 1.003))
    await fanout.flush()

    messages = dict(layer.sent)
    assert messages[f"chain.NIFTY.{WEEKLY}"]["fields"]["exchange_time"] == NOW + 3  # the future's
    assert messages[f"chain.NIFTY.{MONTHLY}"]["fields"]["exchange_time"] == NOW + 3  # its underlying's only
    assert "fields" not in messages["underlying.NIFTY"]

    layer.sent.clear()
    await fanout(TickBatch("acct", tick_rows([INDEX_TOKEN], [SPOT], exchange_timestamp=0, mode="ltp"), 2.0))
    await fanout.flush()
    assert "exchange_time" not in dict(layer.sent)[f"chain.NIFTY.{WEEKLY}"]["fields"]  # unstamped: not null


async def _never_called(records: object) -> None:
    raise AssertionError("no bar closes in these frames")


_prices = st.one_of(
    st.integers(0, 10**9).map(lambda paise: paise / 100),  # the paise grid: the encoder's integer path
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e16, max_value=1e16),
    st.sampled_from([0.0, -0.0, 5e-324, 2**53 / 100, 1e16]),
)
_bar = st.tuples(
    st.integers(1, 40), st.integers(0, 2**31), _prices, _prices, _prices, _prices, st.integers(0, 2**40)
)


_BAR_COLUMNS = ("instrument_token", "start", "open", "high", "low", "close", "volume")


@given(frames=st.lists(st.lists(_bar, min_size=1, max_size=12, unique_by=lambda bar: bar[0]), max_size=8))
@settings(max_examples=200, deadline=None)
def test_bar_texts_are_exactly_the_fields_reprs_frame_after_frame(frames: list[list[tuple]]) -> None:
    """The cached, integer-formatted encoder equals a plain repr of each bar, however values repeat."""
    encode = BarTexts()
    for frame in frames:
        bars = np.zeros(len(frame), BAR_DTYPE)
        for name, column in zip(_BAR_COLUMNS, zip(*frame, strict=True), strict=True):
            bars[name] = column
        expected = {
            token: f"[{start},{o!r},{h!r},{low!r},{c!r},{volume}]"
            for token, start, o, h, low, c, volume in frame
        }
        assert encode(bars) == expected
