"""GreeksHook against Redis (db 15): one HSET per frame, table loading and reloads, remote sources."""

from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis
import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError

from greeks.hook import GreeksHook
from greeks.records import ChainKey, ForwardSource, chain_latest_read
from greeks.selectors import instrument_table_load
from greeks.status import GreeksStatus
from greeks.tickpath import InstrumentRow, InstrumentTable, instrument_table_build
from tests.greeks.market import (
    FUTURE_TOKEN,
    INDEX_TOKEN,
    MONTHLY,
    NOW,
    SPOT,
    WEEKLY,
    chain_frame,
    instrument_rows,
    option_token,
    options,
    tick_rows,
    true_forward,
    years,
)
from tests.ticks.factories import FutureFactory, OptionFactory
from ticks.feeds.latest import LatestTickCache
from ticks.feeds.pipeline import TickBatch

pytestmark = pytest.mark.integration


class CountingRedis(redis.asyncio.Redis):
    """The real client, recording the name of every command it sends."""

    commands: list[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]).upper())
        return await super().execute_command(*args, **options)


@pytest.fixture
async def counting(redis_client: redis.Redis) -> Any:
    client = CountingRedis.from_url(settings.REDIS_URL)
    client.commands = []
    yield client
    await client.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _loader(*tables: InstrumentTable) -> tuple[Callable[[], Any], list[int]]:
    """Returns the tables in turn (the last one again after that) and counts the loads."""
    loads: list[int] = []

    async def load() -> InstrumentTable:
        loads.append(1)
        return tables[min(len(loads), len(tables)) - 1]

    return load, loads


def _batch(ticks: npt.NDArray[np.void]) -> TickBatch:
    return TickBatch("acct", ticks, float(NOW) + 0.2)


def _read(client: redis.Redis, tokens: list[int], expiry: date = WEEKLY) -> Any:
    return chain_latest_read(client, tokens, ChainKey("NIFTY", expiry))


async def test_a_frame_is_one_hset_of_every_option_and_the_chain_forward(
    counting: CountingRedis, redis_client: redis.Redis
) -> None:
    load, _ = _loader(instrument_table_build(instrument_rows()))
    hook = GreeksHook(counting, load_table=load, rate=0.065, model="black76", backend="numpy")
    batch = _batch(chain_frame(WEEKLY))

    await hook(batch)

    assert counting.commands == ["HSET"]
    computed = batch.derived["greeks"]  # handed on to the hooks after this one (the fan-out)
    assert sorted(computed.tokens.tolist()) == sorted(o.token for o in options(WEEKLY))
    tokens = [o.token for o in options(WEEKLY)]
    stored = _read(redis_client, tokens)
    assert stored.computed.all()
    assert np.all(stored.greeks["status"] == GreeksStatus.OK)
    assert np.all(stored.greeks["t_years"] == years(WEEKLY))
    assert stored.forward is not None
    assert stored.forward["forward_source"] == ForwardSource.PARITY
    assert stored.forward["forward"] == pytest.approx(true_forward(WEEKLY), abs=1e-8)
    assert stored.forward["market_time"] == NOW


async def test_a_frame_without_options_writes_nothing(counting: CountingRedis) -> None:
    load, _ = _loader(instrument_table_build(instrument_rows()))
    hook = GreeksHook(counting, load_table=load)

    await hook(_batch(tick_rows([INDEX_TOKEN, FUTURE_TOKEN], [SPOT, 25_000.0])))

    assert counting.commands == []


async def test_the_settings_choose_rate_model_and_backend(counting: CountingRedis, settings: Any) -> None:
    settings.GREEKS_RATE, settings.GREEKS_MODEL, settings.GREEKS_BACKEND = 0.07, "bs", "mibian"

    hook = GreeksHook(counting)

    assert (hook.rate, hook.model, hook.backend) == (0.07, "bs", "mibian")


async def test_an_unknown_token_reloads_the_table_at_most_once_per_interval(
    counting: CountingRedis, redis_client: redis.Redis
) -> None:
    new_call = option_token(WEEKLY, 26_000.0, True)
    listed = [*instrument_rows(), InstrumentRow(new_call, "NIFTY", WEEKLY, 26_000.0, "CE")]
    load, loads = _loader(instrument_table_build(instrument_rows()), instrument_table_build(listed))
    clock = Clock()
    hook = GreeksHook(counting, load_table=load, refresh_interval_s=30.0, monotonic=clock)
    frame_rows = np.concatenate([chain_frame(WEEKLY), tick_rows([new_call], [2.0])])

    await hook(_batch(frame_rows))  # t=0: the first load
    clock.now = 10.0
    await hook(_batch(frame_rows))  # the unknown token, but a load 10 s ago: no reload
    assert len(loads) == 1
    assert not _read(redis_client, [new_call]).computed[0]

    clock.now = 31.0
    await hook(_batch(frame_rows))  # starts the reload in the background
    assert hook.pending_reload is not None
    await hook.pending_reload
    await hook(_batch(frame_rows))  # installs it: the new token is priced from now on
    assert len(loads) == 2
    assert hook.table is not None and new_call in hook.table.tokens
    assert _read(redis_client, [new_call]).computed[0]

    clock.now = 40.0
    await hook(_batch(np.concatenate([frame_rows, tick_rows([999], [1.0])])))
    assert hook.pending_reload is None and len(loads) == 2


async def test_a_failed_reload_keeps_the_loaded_table(
    counting: CountingRedis, caplog: pytest.LogCaptureFixture
) -> None:
    table = instrument_table_build(instrument_rows())
    calls: list[int] = []

    async def load() -> InstrumentTable:
        calls.append(1)
        if len(calls) > 1:
            raise DatabaseError("database is locked")
        return table

    clock = Clock()
    hook = GreeksHook(counting, load_table=load, refresh_interval_s=30.0, monotonic=clock)
    frame_rows = np.concatenate([chain_frame(WEEKLY), tick_rows([424242], [1.0])])
    await hook(_batch(frame_rows))
    clock.now = 31.0
    await hook(_batch(frame_rows))
    assert hook.pending_reload is not None
    with pytest.raises(DatabaseError):
        await hook.pending_reload

    counting.commands.clear()
    await hook(_batch(frame_rows))

    assert hook.table is table and counting.commands == ["HSET"]
    assert "instrument table reload failed" in caplog.text


async def test_a_future_only_in_the_latest_tick_cache_is_still_the_forward(
    counting: CountingRedis, aredis: redis.asyncio.Redis, redis_client: redis.Redis
) -> None:
    future_price = true_forward(MONTHLY) + 2.0
    # Another feed streams the future: it is in the fleet-wide cache, never in this feed's frames.
    await LatestTickCache(aredis)(
        _batch(tick_rows([FUTURE_TOKEN], [future_price], exchange_timestamp=NOW - 1))
    )
    load, _ = _loader(instrument_table_build(instrument_rows()))
    clock = Clock()
    hook = GreeksHook(counting, load_table=load, remote_interval_s=1.0, monotonic=clock)
    monthly = chain_frame(MONTHLY, with_index=False)

    await hook(_batch(monthly))
    await hook(_batch(monthly))  # within the interval: the fetched price serves, no second read

    assert counting.commands == ["HMGET", "HSET", "HSET"]
    stored = _read(redis_client, [o.token for o in options(MONTHLY)], MONTHLY)
    assert stored.forward is not None
    assert stored.forward["forward_source"] == ForwardSource.FUTURE
    assert np.all(stored.greeks["forward"] == future_price)


@pytest.mark.django_db
def test_the_table_holds_active_options_futures_and_the_mapped_index(django_assert_num_queries: Any) -> None:
    expiry = date(2026, 12, 8)
    call = OptionFactory(expiry=expiry, strike=24_800, instrument_type="CE")
    put = OptionFactory(expiry=expiry, strike=24_800, instrument_type="PE")
    OptionFactory(expiry=expiry, strike=24_850, is_active=False)
    future = FutureFactory(expiry=expiry)
    index = OptionFactory(
        name="NIFTY 50", tradingsymbol="NIFTY 50", exchange="NSE", segment="INDICES", instrument_type="EQ",
        instrument_token=256265, expiry=None, strike=0,
    )  # fmt: skip
    OptionFactory(
        name="RELIANCE", tradingsymbol="RELIANCE", exchange="NSE", instrument_type="EQ", expiry=None
    )

    with django_assert_num_queries(2):
        table = instrument_table_load(index_keys={"NIFTY": "NSE:NIFTY 50"})

    assert sorted(table.tokens.tolist()) == sorted(i.instrument_token for i in (call, put, future, index))
    assert table.chains == (ChainKey("NIFTY", expiry),)
    assert table.tokens[table.chain_future[0]] == future.instrument_token
    assert table.tokens[table.chain_index[0]] == index.instrument_token


@pytest.mark.django_db(transaction=True)
async def test_by_default_the_hook_loads_its_table_from_the_database(counting: CountingRedis) -> None:
    call = await sync_to_async(OptionFactory)(expiry=WEEKLY, strike=24_800, instrument_type="CE")
    hook = GreeksHook(counting)

    await hook(_batch(tick_rows([call.instrument_token], [150.0])))

    assert hook.table is not None and hook.table.tokens.tolist() == [call.instrument_token]
    assert counting.commands == ["HSET"]  # no future or index listed: nothing to fetch
