"""bars.settle, bars.fill_gaps and bars.prune against kitesim and real Redis; one run in a real worker."""

from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery import current_app
from prometheus_client import REGISTRY

from tests.ticks.bars.kite_world import NIFTY_50, KiteWorld, feed_clock_at
from ticks.bars.records import BarRecord
from ticks.bars.services import bars_upsert
from ticks.bars.settlement import SETTLE_AFTER
from ticks.bars.tasks import fill_gaps, prune, settle
from ticks.bars.watched import closed_minutes, current_session, session_open
from ticks.exchange_calendar import market_calendar
from ticks.market_time import IST
from ticks.models import Bar

pytestmark = pytest.mark.integration


def _minutes(token: int) -> list[datetime]:
    return list(
        Bar.objects.filter(instrument_token=token, interval="minute")
        .order_by("start")
        .values_list("start", flat=True)
    )


def _live_copies(world: KiteWorld, token: int, minutes: list[datetime], high_bump: float) -> list[BarRecord]:
    candles = world.candles(token, minutes[0], minutes[-1])
    return [
        BarRecord(
            token,
            "minute",
            c["date"].timestamp(),
            c["open"],
            c["high"] - high_bump,
            c["low"],
            c["close"],
            c["volume"],
            c.get("oi", 0),
            ticks=40,
        )
        for c in candles
    ]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_settle_replaces_live_bars_with_kites_and_counts_the_difference(
    world: KiteWorld, redis_client: redis.Redis
) -> None:
    clock = world.now().replace(microsecond=0)
    tokens = [NIFTY_50, world.future.instrument_token]
    feed_clock_at(redis_client, clock, tokens)
    # SETTLE_AFTER: the last closed minute may still take trades.
    minutes = closed_minutes(current_session(clock, market_calendar()), clock - SETTLE_AFTER)
    # The live bars missed each minute's high by 0.5 (a sampled feed) on the first 10 minutes.
    bars_upsert(records=[r for t in tokens for r in _live_copies(world, t, minutes[:10], 0.5)])
    high_before = _sample("bars_settle_diff_total", field="high")

    result = settle.apply().get()

    assert result["replaced"] == 20 and result["differences"]["high"] == 20
    assert result["inserted"] == 2 * len(minutes) - 20
    assert _sample("bars_settle_diff_total", field="high") - high_before == 20
    for token in tokens:
        kite = world.candles(token, minutes[0], minutes[-1])
        stored = Bar.objects.filter(instrument_token=token, interval="minute").order_by("start")
        assert [(b.start.timestamp(), b.high, b.volume) for b in stored] == [
            (c["date"].timestamp(), c["high"], c["volume"]) for c in kite
        ]
        assert {(b.source, b.settled) for b in stored} == {("kite", True)}
    # The next run settles nothing already settled: only minutes closed since.
    assert settle.apply().get()["replaced"] == 0


def test_settle_waits_for_the_feed_clock(world: KiteWorld, redis_client: redis.Redis) -> None:
    assert settle.apply().get()["tokens"] == 0  # nothing ticked: no live bar to settle
    assert not Bar.objects.exists()


def test_fill_gaps_fills_exactly_the_missing_minutes(world: KiteWorld, redis_client: redis.Redis) -> None:
    clock = world.now().replace(microsecond=0)
    tokens = [NIFTY_50, world.future.instrument_token]
    feed_clock_at(redis_client, clock, tokens)
    minutes = closed_minutes(current_session(clock, market_calendar()), clock)
    holes = {minutes[0], minutes[3], minutes[4], minutes[-1]}
    kept = [m for m in minutes if m not in holes]
    live = [
        r
        for t in tokens
        for r in _live_copies(world, t, minutes, 0.5)
        if datetime.fromtimestamp(r.start, UTC) not in holes
    ]
    bars_upsert(records=live)

    written = fill_gaps.apply().get()

    assert written == {str(NIFTY_50): 4, str(world.future.instrument_token): 4}
    for token in tokens:
        assert _minutes(token) == minutes
        filled = Bar.objects.filter(instrument_token=token, source="kite")
        assert set(filled.values_list("start", flat=True)) == holes  # live bars were not touched
        assert Bar.objects.filter(instrument_token=token, source="live").count() == len(kept)
    assert fill_gaps.apply().get() == {str(NIFTY_50): 0, str(world.future.instrument_token): 0}


def test_fill_gaps_before_the_open_fills_the_previous_session(
    world: KiteWorld, redis_client: redis.Redis
) -> None:
    day = world.day()
    before_open = session_open(day) - timedelta(hours=2)
    feed_clock_at(redis_client, before_open, [NIFTY_50])
    written = fill_gaps.apply().get()
    assert written[str(NIFTY_50)] == 375
    assert _minutes(NIFTY_50)[0] == session_open(world.past_days(1)[0])


def test_prune_keeps_what_retention_says(
    world: KiteWorld, redis_client: redis.Redis, settings: object
) -> None:
    settings.BARS_RETENTION_DAYS = {"minute": 2, "5minute": 0, "day": 30}
    clock = world.now()
    feed_clock_at(redis_client, clock, [NIFTY_50])
    midnight = datetime.combine(clock.astimezone(IST).date(), datetime.min.time(), tzinfo=IST)
    starts = [midnight - timedelta(days=d, minutes=-555) for d in range(0, 40)]
    bars_upsert(
        records=[
            BarRecord(NIFTY_50, interval, s.timestamp(), 1, 1, 1, 1)
            for interval in ("minute", "5minute", "day")
            for s in starts
        ]
    )

    deleted = prune.apply().get()

    assert deleted == {"minute": 37, "day": 9}
    kept = {
        i: sorted(Bar.objects.filter(interval=i).values_list("start", flat=True))
        for i in ("minute", "5minute", "day")
    }
    assert kept["minute"][0] >= midnight - timedelta(days=2) and len(kept["minute"]) == 3
    assert len(kept["5minute"]) == 40 and len(kept["day"]) == 31


def test_tasks_run_in_a_real_worker(fleet, start_worker, kitesim, redis_client: redis.Redis) -> None:
    clock = datetime.fromtimestamp(int(kitesim.state.clock.now()), UTC)
    minutes = closed_minutes(current_session(clock, market_calendar()), clock)
    if not minutes:  # kitesim starts at 09:15:00: let a few simulated minutes close (speed 10)
        kitesim.call(lambda: kitesim.state.clock.jump(300))
        clock = datetime.fromtimestamp(int(kitesim.state.clock.now()), UTC)
        minutes = closed_minutes(current_session(clock, market_calendar()), clock)
    feed_clock_at(redis_client, clock, [NIFTY_50])
    start_worker(queues="default")

    written = current_app.send_task("bars.fill_gaps").get(timeout=60)
    assert written[str(NIFTY_50)] == len(minutes)
    assert _minutes(NIFTY_50) == minutes
    # Gap-filled minutes are Kite's already: nothing to settle until more minutes close.
    assert current_app.send_task("bars.settle").get(timeout=60)["tokens"] == 0
    kitesim.call(lambda: kitesim.state.clock.jump(180))
    later = datetime.fromtimestamp(int(kitesim.state.clock.now()), UTC)
    feed_clock_at(redis_client, later, [NIFTY_50])
    settled = current_app.send_task("bars.settle").get(timeout=60)
    newer = closed_minutes(current_session(later, market_calendar()), later - SETTLE_AFTER)[len(minutes) :]
    assert settled["tokens"] == 2 and settled["replaced"] == 0 and settled["inserted"] >= len(newer) >= 2
    assert _minutes(NIFTY_50) == minutes + newer
