"""A plan version stores its change only: rows it placed and rows it retired; every version in the
window still reads back whole."""

from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
import redis

from tests.ticks.factories import BrokerAccountFactory, FutureFactory, OptionFactory, WatchSpecFactory
from ticks.feeds.latest import LATEST_KEY
from ticks.feeds.protocol import TICK_DTYPE
from workers import services
from workers.models import FeedAssignment, FeedPlan
from workers.services import feed_plan_refresh

pytestmark = [pytest.mark.django_db, pytest.mark.integration]  # Redis holds prices and ATM centres

INDEX = 256265
OPEN = datetime.fromisoformat("2026-12-08T10:00:00+05:30")


@pytest.fixture
def nifty(settings) -> None:
    settings.FEED_STRIKE_MARGIN = 0
    OptionFactory(
        instrument_token=INDEX, tradingsymbol="NIFTY 50", name="NIFTY 50", expiry=None, strike=0,
        lot_size=0, instrument_type="EQ", segment="INDICES", exchange="NSE",
    )  # fmt: skip
    for strike in range(24_500, 25_550, 50):
        for kind in ("CE", "PE"):
            OptionFactory(name="NIFTY", expiry=date(2026, 12, 15), strike=Decimal(strike), instrument_type=kind)
    FutureFactory(name="NIFTY", expiry=date(2026, 12, 29))
    WatchSpecFactory(underlying="NIFTY", expiry_count=1, strikes_around_atm=2)
    BrokerAccountFactory()


def _plan_at(client: redis.Redis, settings, price: float, minutes: int) -> FeedPlan:
    row = np.zeros(1, TICK_DTYPE)
    row["instrument_token"], row["last_price"] = INDEX, price
    client.hset(LATEST_KEY, mapping={INDEX: row.tobytes()})
    settings.MARKET_CLOCK = (OPEN + timedelta(minutes=minutes)).isoformat()
    return feed_plan_refresh(client=client, reason="test")


def _strikes(plan: FeedPlan) -> list[int]:
    return sorted({int(s) for s in plan.assignments.exclude(strike=None).values_list("strike", flat=True)})


def test_a_recentre_writes_the_change_and_each_version_reads_back_whole(
    nifty: None, redis_client: redis.Redis, settings
) -> None:
    first = _plan_at(redis_client, settings, 25_010.0, 0)
    second = _plan_at(redis_client, settings, 25_060.0, 1)  # one strike up, past the 0.6 band

    assert _strikes(first) == [24_900, 24_950, 25_000, 25_050, 25_100]
    assert _strikes(second) == [24_950, 25_000, 25_050, 25_100, 25_150]
    assert first.assignments.count() == second.assignments.count() == 5 * 2 + 2  # options + index, future
    # The new 25150 pair, the 24900 pair gone; every kept option's offset moved, so it is re-placed.
    assert FeedAssignment.objects.filter(retired_in=second).count() == 10
    assert FeedAssignment.objects.filter(plan=second).count() == 10
    assert (second.added_tokens, second.removed_tokens) == (2, 2)
    offsets = dict(second.assignments.exclude(strike=None).values_list("strike", "strike_offset"))
    assert offsets[Decimal("25150")] == 2 and offsets[Decimal("24950")] == -2


def test_old_versions_are_pruned_but_rows_in_force_keep_the_version_that_placed_them(
    nifty: None, redis_client: redis.Redis, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "PLANS_KEPT", 2)
    first = _plan_at(redis_client, settings, 25_010.0, 0)
    for minute, price in enumerate((25_060.0, 25_110.0, 25_160.0), start=1):
        last = _plan_at(redis_client, settings, price, minute)

    assert list(FeedPlan.objects.order_by("version").values_list("version", flat=True)) == [1, 3, 4]
    assert FeedPlan.objects.get(version=1) == first  # it placed the index and the future, still in force
    assert not FeedAssignment.objects.filter(retired_in__version__lte=2).exists()
    assert _strikes(last) == [25_050, 25_100, 25_150, 25_200, 25_250]
