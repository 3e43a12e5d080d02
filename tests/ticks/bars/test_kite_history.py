"""Kite's candles through the official client: span-limited chunks, the shared bucket, Kite's errors."""

import itertools
import threading
from datetime import datetime, time, timedelta

import pytest
import redis
from kiteconnect.exceptions import GeneralException

from orders.ratelimit import historical_bucket
from tests.ticks.bars.kite_world import NIFTY_50, KiteWorld
from ticks.bars.intervals import KITE_MAX_SPAN_DAYS
from ticks.bars.kite_history import (
    HistoryUnavailable,
    KiteHistory,
    candle_flags,
    chunk_windows,
    kite_history_for,
)
from ticks.kite import kite_client_for
from ticks.market_time import IST
from ticks.models import Instrument

START = datetime(2025, 1, 1, 0, 0, tzinfo=IST)


@pytest.mark.parametrize("interval", sorted(KITE_MAX_SPAN_DAYS))
def test_chunks_stay_within_kites_span_and_cover_the_range(interval: str) -> None:
    span = timedelta(days=KITE_MAX_SPAN_DAYS[interval])
    end = START + 5 * span + timedelta(hours=7)
    windows = chunk_windows(START, end, interval)
    assert len(windows) == 6
    assert windows[0].start == START and windows[-1].end == end
    assert all(w.end - w.start <= span for w in windows)
    assert all(b.start - a.end == timedelta(seconds=1) for a, b in itertools.pairwise(windows))


def test_a_shorter_chunk_may_be_asked_and_a_reversed_range_has_none() -> None:
    assert len(chunk_windows(START, START + timedelta(days=3), "minute", max_days=1)) == 4
    assert chunk_windows(START, START - timedelta(seconds=1), "minute") == []


def test_flags_continuous_only_for_a_futures_day_and_oi_for_fno(world: KiteWorld) -> None:
    index = Instrument.objects.get(instrument_token=NIFTY_50)
    assert candle_flags(world.future, "day") == (True, True)
    assert candle_flags(world.future, "minute") == (False, True)
    assert candle_flags(index, "day") == (False, False)


@pytest.mark.integration
def test_records_are_kites_candles(world: KiteWorld, redis_client: redis.Redis) -> None:
    day = world.past_days(1)[0]
    start, end = (
        datetime.combine(day, time(9, 15), tzinfo=IST),
        datetime.combine(day, time(10, 14), tzinfo=IST),
    )
    history = kite_history_for(world.account, redis_client)
    records = history.records(
        world.future.instrument_token, "minute", start, end, continuous=False, oi=True, settled=True
    )
    candles = world.candles(world.future.instrument_token, start, end)
    assert len(records) == len(candles) == 60
    assert [(r.start, r.open, r.high, r.low, r.close, r.volume, r.oi) for r in records] == [
        (c["date"].timestamp(), c["open"], c["high"], c["low"], c["close"], c["volume"], c["oi"])
        for c in candles
    ]
    assert {(r.source, r.settled, r.interval) for r in records} == {("kite", True, "minute")}


@pytest.mark.integration
def test_a_window_without_candles_is_empty_not_an_error(world: KiteWorld, redis_client: redis.Redis) -> None:
    saturday = world.day() - timedelta(days=world.day().weekday() + 2)
    start = datetime.combine(saturday, time(9, 15), tzinfo=IST)
    history = kite_history_for(world.account, redis_client)
    assert (
        history.records(
            NIFTY_50, "minute", start, start + timedelta(hours=2), continuous=False, oi=False, settled=True
        )
        == []
    )
    assert history.requests == 1


@pytest.mark.integration
def test_429_waits_and_retries_then_gives_up(world: KiteWorld, redis_client: redis.Redis) -> None:
    day = world.past_days(1)[0]
    start = datetime.combine(day, time(9, 15), tzinfo=IST)
    kite, bucket = kite_client_for(world.account), historical_bucket(redis_client, world.account.api_key)
    pauses: list[float] = []
    history = KiteHistory(kite, bucket, sleep=pauses.append, retries=3)
    world.faults(rest_429_next=2)
    records = history.records(
        NIFTY_50, "minute", start, start + timedelta(minutes=9), continuous=False, oi=False, settled=True
    )
    assert len(records) == 10 and history.requests == 3 and len(pauses) == 2
    world.faults(rest_429_next=5)
    with pytest.raises(HistoryUnavailable):
        KiteHistory(kite, bucket, sleep=pauses.append, retries=1).records(
            NIFTY_50, "minute", start, start + timedelta(minutes=9), continuous=False, oi=False, settled=True
        )
    world.faults(rest_429_next=0, rest_5xx_next=1)
    with pytest.raises(GeneralException):  # a 5xx is not Kite's rate limit: not retried here
        history.records(
            NIFTY_50, "minute", start, start + timedelta(minutes=9), continuous=False, oi=False, settled=True
        )


@pytest.mark.integration
def test_the_bucket_is_shared_by_every_client_of_the_api_key(world: KiteWorld, redis_url: str) -> None:
    """Three workers, each with its own Redis connection, 4 requests each: kitesim (3/s per api_key)
    never answers 429, because every request paid the one bucket first (no retries to hide a 429)."""
    day = world.past_days(1)[0]
    start = datetime.combine(day, time(9, 15), tzinfo=IST)
    failures: list[BaseException] = []

    def worker() -> None:
        client = redis.Redis.from_url(redis_url)
        history = KiteHistory(
            kite_client_for(world.account), historical_bucket(client, world.account.api_key), retries=0
        )
        try:
            for k in range(4):
                history.records(
                    NIFTY_50,
                    "minute",
                    start + timedelta(minutes=k),
                    start + timedelta(minutes=k),
                    continuous=False,
                    oi=False,
                    settled=True,
                )
        except HistoryUnavailable as error:
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
