"""Tick-driven rebalancing on a trending kitesim market, with real Celery feeds and Redis: the feeds
ask for a re-plan on the tick that leaves the ATM band, and ATM ± N of the nearest expiry stays streamed."""

import json
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from kitesim.testing import KitesimThread
from kitesim.trend import TrendSpec
from tests.waiting import until
from tests.workers.conftest import WorkerProcess
from ticks.feeds.strikes import strikes_around
from ticks.models import BrokerAccount, Instrument
from ticks.selectors import OPTION_TYPES, chain_strikes, latest_ticks, underlying_index
from workers.control import feed_status_key
from workers.models import FeedPlan
from workers.services import feed_plan_refresh, feed_supervise

pytestmark = pytest.mark.integration  # on kitesim's clock and trend, whatever the host's hour

N = 2  # the fleet fixture's NIFTY spec: ±2 strikes, the nearest expiry
SAMPLES = 20
TREND = TrendSpec(points_per_min=60.0, reverse_minutes=20, noise_points=5.0)  # 1.2 strikes a minute


@pytest.fixture
def kitesim() -> Iterator[KitesimThread]:
    """Overrides tests.workers.conftest's: NIFTY walks 60 points a simulated minute, at speed 60."""
    accounts = ["demo:demosecret:demotoken", "alt:altsecret:alttoken"]
    with KitesimThread(seed=5, speed=60, accounts=accounts, path="trend", trend=TREND) as sim:
        yield sim


def _subscribed(client: redis.Redis, accounts: list[BrokerAccount]) -> dict[int, set[int]]:
    reports = [
        json.loads(raw) if raw else {} for raw in client.mget([feed_status_key(a.pk) for a in accounts])
    ]
    return {
        account.pk: {token for tokens in report.get("connections", {}).values() for token in tokens}
        for account, report in zip(accounts, reports, strict=True)
    }


def _wanted(price: float, expiry: object, strikes: list[float]) -> set[int]:
    window = strikes_around(strikes, price, N)
    rows = Instrument.objects.filter(
        name="NIFTY", expiry=expiry, strike__in=window, instrument_type__in=OPTION_TYPES, is_active=True
    )
    return set(rows.values_list("instrument_token", flat=True))


def test_a_trending_market_keeps_atm_streamed_and_no_option_on_two_accounts(
    fleet: dict[str, BrokerAccount], start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    first = feed_plan_refresh(client=redis_client)
    expiry = first.assignments.exclude(expiry=None).values_list("expiry", flat=True).first()
    strikes = [float(s) for s in chain_strikes(underlying="NIFTY", expiry=expiry)]
    index = underlying_index(underlying="NIFTY").instrument_token
    start_worker(queues="feeds,default")  # feeds.rebalance runs on the default queue
    feed_supervise(client=redis_client)
    until(lambda: latest_ticks(tokens=[index]).size == 1, every=lambda: feed_supervise(client=redis_client))
    accounts = list(fleet.values())

    def covered() -> bool:
        price = float(latest_ticks(tokens=[index])["last_price"][0])
        return _wanted(price, expiry, strikes) <= set().union(*_subscribed(redis_client, accounts).values())

    until(covered)  # the feeds' first reports
    options = set(
        Instrument.objects.filter(instrument_type__in=OPTION_TYPES).values_list("instrument_token", flat=True)
    )

    prices, uncovered, doubled = [], [], []
    for _ in range(SAMPLES):
        price = float(latest_ticks(tokens=[index])["last_price"][0])
        subscribed = _subscribed(redis_client, accounts)
        streamed = set().union(*subscribed.values())
        prices.append(price)
        uncovered.append(sorted(_wanted(price, expiry, strikes) - streamed))
        on_both = set.intersection(*subscribed.values()) & options
        doubled.append(sorted(on_both))
        time.sleep(1.0)

    tick_plans = FeedPlan.objects.filter(reason__startswith="tick").count()
    assert max(prices) - min(prices) >= 10 * 50, prices  # the window had to chase 10+ strikes
    assert tick_plans >= 8, list(FeedPlan.objects.values_list("reason", flat=True))
    assert not any(uncovered), uncovered
    assert not any(doubled), doubled
