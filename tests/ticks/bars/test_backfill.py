"""``manage.py bars_backfill`` against kitesim: progress, idempotent re-runs, resume, bad arguments."""

from datetime import date, datetime, time
from io import StringIO

import pytest
import redis
from django.core.management import CommandError, call_command
from kiteconnect.exceptions import GeneralException

from tests.ticks.bars.kite_world import NIFTY_50, KiteWorld
from ticks.bars.backfill import BackfillProgress, backfill_chunks, backfill_targets, bars_backfill
from ticks.bars.kite_history import kite_history_for
from ticks.exchange_calendar import market_calendar
from ticks.market_time import IST
from ticks.models import Bar

pytestmark = pytest.mark.integration
SESSION_MINUTES = 375


def _run(*args: str) -> str:
    out = StringIO()
    call_command("bars_backfill", *args, stdout=out)
    return out.getvalue()


def _span(world: KiteWorld, days: int) -> tuple[str, str]:
    past = world.past_days(days)
    return past[0].isoformat(), past[-1].isoformat()


def test_backfill_shows_progress_and_a_rerun_writes_nothing(world: KiteWorld) -> None:
    first, last = _span(world, 3)
    output = _run("--token", str(NIFTY_50), "--from", first, "--to", last, "--chunk-days", "1")
    assert "[1/3]" in output and "[3/3]" in output and f"{3 * SESSION_MINUTES} total" in output
    assert Bar.objects.filter(instrument_token=NIFTY_50, interval="minute").count() == 3 * SESSION_MINUTES
    assert set(Bar.objects.values_list("source", "settled").distinct()) == {("kite", True)}

    again = _run("--token", str(NIFTY_50), "--from", first, "--to", last, "--chunk-days", "1")
    assert "Done: 0 chunks, 0 requests, 0 bars written, 3 days already stored" in again
    forced = _run("--token", str(NIFTY_50), "--from", first, "--to", last, "--force")
    assert "Done: 1 chunks, 1 requests, 1125 bars written" in forced
    assert Bar.objects.filter(instrument_token=NIFTY_50).count() == 3 * SESSION_MINUTES


def test_an_interrupted_backfill_continues_where_it_stopped(
    world: KiteWorld, redis_client: redis.Redis
) -> None:
    past = world.past_days(3)
    start = datetime.combine(past[0], time(0), tzinfo=IST)
    end = datetime.combine(past[-1], time(23, 59, 59), tzinfo=IST)
    targets = backfill_targets(interval="minute", day=world.day(), token=NIFTY_50)

    def fail_after_the_first(progress: BackfillProgress) -> None:
        world.faults(rest_5xx_next=1)  # Kite fails the next request: the run stops there

    with pytest.raises(GeneralException):
        bars_backfill(
            targets=targets,
            interval="minute",
            start=start,
            end=end,
            now=world.now(),
            history=kite_history_for(world.account, redis_client),
            client=redis_client,
            chunk_days=1,
            on_progress=fail_after_the_first,
        )
    assert Bar.objects.count() == SESSION_MINUTES

    output = _run(
        "--token",
        str(NIFTY_50),
        "--from",
        past[0].isoformat(),
        "--to",
        past[-1].isoformat(),
        "--chunk-days",
        "1",
    )
    assert "[2/2]" in output and "[3/3]" not in output and "1 days already stored" in output
    assert Bar.objects.count() == 3 * SESSION_MINUTES


def test_by_symbol_and_by_underlying(world: KiteWorld) -> None:
    day = world.past_days(1)[0].isoformat()
    symbol = f"NFO:{world.future.tradingsymbol}"
    output = _run("--symbol", symbol, "--from", day, "--to", day)
    assert f"[1/1] {symbol}" in output
    assert Bar.objects.filter(instrument_token=world.future.instrument_token, oi__gt=0).count() > 300

    output = _run("--underlying", "NIFTY", "--from", day, "--to", day)
    assert "NSE:NIFTY 50" in output and "Backfilling 2 instruments" in output  # no feed plan yet: no options
    assert "1 days already stored" in output  # the future's day, from the run above


def test_today_is_fetched_up_to_the_market_clock_and_never_marked_done(world: KiteWorld) -> None:
    today = world.day().isoformat()
    output = _run("--token", str(NIFTY_50), "--from", today)
    assert "[1/1]" in output
    again = _run("--token", str(NIFTY_50), "--from", today)
    assert "[1/1]" in again  # the open session is asked again: its newest minutes were still forming


def test_a_holiday_in_the_range_is_never_asked_for(world: KiteWorld) -> None:
    holiday = date(2026, 6, 26)  # a Friday, an XBOM holiday, before the simulated 2026-08-18
    assert world.day() > holiday and not market_calendar().is_session(holiday)
    output = _run("--token", str(NIFTY_50), "--from", "2026-06-25", "--to", "2026-06-29", "--chunk-days", "1")
    assert "[2/2]" in output and "Done: 2 chunks, 2 requests, 750 bars written" in output
    days = {start.astimezone(IST).date() for start in Bar.objects.values_list("start", flat=True)}
    assert days == {date(2026, 6, 25), date(2026, 6, 29)}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--token", "256265", "--from", "2026-08-10", "--interval", "2minute"], "--interval"),
        (["--token", "1", "--from", "2026-08-10"], "--token"),
        (["--symbol", "NFO:NOSUCH", "--from", "2026-08-10"], "--symbol"),
        (["--underlying", "NOSUCH", "--from", "2026-08-10"], "--underlying"),
        (["--token", "256265", "--from", "last week"], "--from"),
        (["--token", "256265", "--from", "2026-08-10", "--to", "2026-08-01"], "--to"),
        (["--token", "256265", "--from", "2026-08-10", "--account", "nobody"], "--account"),
        (["--token", "256265", "--from", "2026-08-10", "--chunk-days", "61"], "--chunk-days"),
        (["--from", "2026-08-10"], "--underlying"),
    ],
)
def test_bad_arguments_name_the_argument(world: KiteWorld, args: list[str], named: str) -> None:
    with pytest.raises(CommandError, match=named):
        _run(*args)
    assert not Bar.objects.exists()


def test_chunks_skip_weekends_and_done_days(world: KiteWorld) -> None:
    past = world.past_days(6)  # spans a weekend
    start = datetime.combine(past[0], time(0), tzinfo=IST)
    end = datetime.combine(past[-1], time(23, 59, 59), tzinfo=IST)
    chunks = backfill_chunks(
        start, end, world.now(), "minute", {past[2]}, chunk_days=60, calendar=market_calendar()
    )
    assert [c.days for c in chunks] == [tuple(past[:2]), tuple(past[3:])]
    assert all(c.complete_days == c.days for c in chunks)
