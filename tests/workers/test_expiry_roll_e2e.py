"""The expiry roll end to end: kitesim's clock crosses 15:30 IST on a NIFTY weekly expiry day while real
Celery feeds stream the expiring chain; beat's day.advance starts feeds.expiry_roll, whose plan drops the
expired chain for the next expiry, and the feeds follow. On a closed day nothing is planned.

Everything here runs on kitesim's clock or a frozen market clock from a fixed session, not the host's
date: which expiry that is and when it closes are the exchange calendar's pure functions, tested on
their own, so the end to end need not run again at every instant of ``make test-clock``."""

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path

import pytest
import redis

from kitesim.paths import session_open_epoch
from kitesim.testing import KitesimThread
from kitesim.universe import UNDERLYINGS, monthly_expiries, weekly_expiries
from tests.waiting import until
from tests.workers.conftest import WorkerProcess
from ticks.exchange_calendar import market_calendar
from ticks.market_time import IST, expiry_close
from ticks.models import BrokerAccount, Instrument
from ticks.selectors import OPTION_TYPES, chain_expiries
from workers.control import feed_status_key
from workers.models import FeedPlan
from workers.selectors import feed_plan_current
from workers.services import feed_plan_refresh

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

ACCOUNTS = ["demo:demosecret:demotoken", "alt:altsecret:alttoken"]
SESSION = date(2026, 12, 7)  # a Monday; NIFTY's weekly expires the next day
SPEED = 20
# kitesim starts at OPEN, so the fixtures' set-up (instruments from kitesim, accounts) may take as long as a
# loaded machine makes it; the test then jumps kitesim's clock to START and only then starts the worker,
# which reads kitesim's clock afresh. Seven simulated minutes (21 s real) before the close: the worker's
# start-up (~4 s, ~15 s on a busy 2-core CI box), its first plan and the feeds' first reports fit.
OPEN = clock_time(15, 0)
START = clock_time(15, 23)
# day.advance runs every 5 s real (100 s simulated at speed 20), then feeds.expiry_roll waits in the
# queue and plans: the roll must land within one beat period plus 50 s (2.5 s real) of slack.
ROLL_BOUND_S = 150.0
FEEDS_FOLLOW_S = 10.0  # real: the plan's pub/sub message, make-before-break, a 0.5 s status report


def _expiries_after_session() -> tuple[date, date]:
    """The first NIFTY expiry kitesim lists on ``SESSION``, and the one after it."""
    spec = UNDERLYINGS["NIFTY"]
    expiries = sorted({*weekly_expiries(spec, SESSION), *monthly_expiries(spec, SESSION)})
    return expiries[0], expiries[1]


@pytest.fixture
def expiries() -> tuple[date, date]:
    return _expiries_after_session()


@pytest.fixture
def kitesim(request: pytest.FixtureRequest) -> Iterator[KitesimThread]:
    """Overrides tests.workers.conftest's: with ``indirect`` parametrisation, the clock starts at that
    IST time of day on the expiry day at ``SPEED`` (the test jumps it on); without it, the conftest's calm
    market from ``SESSION``'s open."""
    at: clock_time | None = getattr(request, "param", None)
    if at is None:
        options = {"speed": 10, "start_epoch": session_open_epoch(SESSION)}
    else:
        expiry, _ = _expiries_after_session()
        options = {"speed": SPEED, "start_epoch": datetime.combine(expiry, at, tzinfo=IST).timestamp()}
    with KitesimThread(seed=5, accounts=ACCOUNTS, **options) as sim:
        yield sim


def _options_of(expiry: date) -> set[int]:
    rows = Instrument.objects.filter(name="NIFTY", expiry=expiry, instrument_type__in=OPTION_TYPES)
    return set(rows.values_list("instrument_token", flat=True))


def _plan_options(plan: FeedPlan, expiry: date) -> set[int]:
    rows = plan.assignments.filter(role="option", expiry=expiry)
    return set(rows.values_list("instrument_token", flat=True))


def _streamed(client: redis.Redis, accounts: list[BrokerAccount]) -> set[int]:
    """Every token the feeds report subscribed, over all accounts and connections."""
    raws = client.mget([feed_status_key(account.pk) for account in accounts])
    reports = [json.loads(raw) for raw in raws if raw]
    return {token for report in reports for tokens in report["connections"].values() for token in tokens}


def _rolled_on_feeds(
    client: redis.Redis, accounts: list[BrokerAccount], wanted: set[int], expired: set[int]
) -> bool:
    streamed = _streamed(client, accounts)
    return wanted <= streamed and not streamed & expired


def _roll_plan() -> FeedPlan | None:
    return FeedPlan.objects.filter(reason__startswith="expiry_roll").order_by("version").first()


def _simulated_now(sim: KitesimThread) -> float:
    assert sim.state is not None
    return sim.state.clock.now()


def _simulated_at(sim: KitesimThread, moment: datetime) -> float:
    """The simulated epoch at a host instant (kitesim runs in this process, on this host's clock)."""
    return _simulated_now(sim) - (time.time() - moment.timestamp()) * SPEED


def _jump_to(sim: KitesimThread, moment: datetime) -> None:
    assert sim.state is not None
    behind = moment.timestamp() - sim.state.clock.now()
    assert behind > 0, f"the fixtures' set-up ran kitesim past {moment} before the test began"
    sim.state.clock.jump(behind)


@pytest.mark.parametrize("kitesim", [OPEN], indirect=True)
def test_the_roll_at_the_close_swaps_the_expired_chain_for_the_next(
    fleet: dict[str, BrokerAccount],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    kitesim: KitesimThread,
    expiries: tuple[date, date],
) -> None:
    expiry, following = expiries
    assert chain_expiries(underlying="NIFTY", on_or_after=expiry)[:2] == [expiry, following]
    close = expiry_close(expiry).timestamp()
    accounts = list(fleet.values())
    _jump_to(kitesim, datetime.combine(expiry, START, tzinfo=IST))
    # The backstop out of the way: only day.advance's steps (and band crossings) re-plan.
    worker = start_worker(beat=True, FEED_REBALANCE_S="3600")

    def expiring_streamed() -> bool:
        plan = feed_plan_current()
        wanted = _plan_options(plan, expiry) if plan is not None else set()
        return bool(wanted) and wanted <= _streamed(redis_client, accounts)

    until(expiring_streamed, timeout=(close - _simulated_now(kitesim)) / SPEED)
    assert _simulated_now(kitesim) < close, "the stack was not streaming before the close"
    assert _roll_plan() is None
    assert not _plan_options(feed_plan_current(), following)  # one expiry watched: the nearest

    until(lambda: _roll_plan() is not None, timeout=(close - _simulated_now(kitesim)) / SPEED + 15)
    roll = _roll_plan()
    rolled_at = _simulated_at(kitesim, roll.created_at)
    next_options = _plan_options(roll, following)
    expired = _options_of(expiry)
    assert next_options
    assert not set(roll.assignments.values_list("instrument_token", flat=True)) & expired
    assert not FeedPlan.objects.filter(reason__startswith="beat backstop").exists()
    assert f"trading day {expiry}: started ['expiry_roll']" in Path(worker.log).read_text()

    deadline = time.monotonic() + FEEDS_FOLLOW_S
    while not _rolled_on_feeds(redis_client, accounts, next_options, expired) and time.monotonic() < deadline:
        time.sleep(0.25)
    streamed = _streamed(redis_client, accounts)
    assert next_options <= streamed and not streamed & expired, (
        f"{FEEDS_FOLLOW_S} s after the roll the feeds lack {len(next_options - streamed)} of the next"
        f" expiry's options and still carry {len(streamed & expired)} expired ones; kitesim is at"
        f" {datetime.fromtimestamp(_simulated_now(kitesim), IST)}, accounts"
        f" {list(BrokerAccount.objects.values_list('name', 'health'))}"
    )
    late = rolled_at - close
    logger.info(
        "expiry %s: roll plan v%d at 15:30 + %.1f s simulated (%s)", expiry, roll.version, late, roll.reason
    )
    assert 0 <= late < ROLL_BOUND_S, late


def test_a_closed_day_plans_nothing_and_the_next_session_plans_again(
    fleet: dict[str, BrokerAccount], redis_client: redis.Redis, settings
) -> None:
    holiday = date(2026, 12, 25)
    settings.MARKET_CLOCK = f"{holiday}T10:00:00+05:30"

    closed = feed_plan_refresh(client=redis_client, reason="test")

    assert closed.assignments.count() == 0
    assert closed.reason == f"test: {holiday}: no session (weekend or exchange holiday)"

    settings.MARKET_CLOCK = f"{market_calendar().next_session(holiday)}T10:00:00+05:30"
    reopened = feed_plan_refresh(client=redis_client, reason="test")

    assert reopened.version == closed.version + 1
    assert reopened.assignments.filter(role="option").exists()
    assert reopened.assignments.filter(role="index").exists()
