"""A kitesim at a fixed simulated instant, its instruments loaded, one broker account, NIFTY watched."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
import redis
from kiteconnect import KiteConnect

from kitesim.paths import previous_trading_day, session_open_epoch
from kitesim.testing import KitesimThread
from ticks.clocks import market_now
from ticks.feeds.latest import LATEST_KEY
from ticks.feeds.protocol import TICK_DTYPE
from ticks.market_time import IST
from ticks.models import BrokerAccount, Instrument, WatchSpec
from ticks.services import broker_account_set_token, instruments_refresh_from_kite

NIFTY_50 = 256265
# Tuesday 2026-08-18, 10:15:30 IST: an hour into a session, with trading days before it.
SIM_START = session_open_epoch(date(2026, 8, 18)) + 3630


@dataclass
class KiteWorld:
    sim: KitesimThread
    kite: KiteConnect
    account: BrokerAccount
    future: Instrument  # NIFTY's near future

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.sim.state.clock.now(), UTC)

    def day(self) -> date:
        return self.now().astimezone(IST).date()

    def past_days(self, count: int) -> list[date]:
        """The ``count`` trading days before the simulated session, oldest first."""
        days = [previous_trading_day(self.day())]
        while len(days) < count:
            days.append(previous_trading_day(days[-1]))
        return days[::-1]

    def candles(self, token: int, start: datetime, end: datetime, interval: str = "minute") -> list[dict]:
        fmt = "%Y-%m-%d %H:%M:%S"
        return self.kite.historical_data(
            token, start.astimezone(IST).strftime(fmt), end.astimezone(IST).strftime(fmt), interval, oi=True
        )

    def faults(self, **changes: object) -> None:
        self.sim.state.faults.update(changes)


def feed_clock_at(client: redis.Redis, moment: datetime, tokens: list[int]) -> None:
    """What a feed leaves in the latest-tick cache: rows stamped with the exchange's time."""
    rows = np.zeros(len(tokens), dtype=TICK_DTYPE)
    rows["instrument_token"] = tokens
    rows["last_price"] = 100.0
    rows["exchange_timestamp"] = int(moment.timestamp())
    size = TICK_DTYPE.itemsize
    raw = rows.tobytes()
    client.hset(LATEST_KEY, mapping={t: raw[i * size : (i + 1) * size] for i, t in enumerate(tokens)})


@pytest.fixture
def bars_sim() -> Iterator[KitesimThread]:
    with KitesimThread(seed=5, start_epoch=SIM_START) as sim:
        yield sim


def make_world(sim: KitesimThread, settings: object) -> KiteWorld:
    settings.KITE_ROOT = sim.root  # type: ignore[attr-defined]
    settings.MARKET_CLOCK = "kitesim"  # type: ignore[attr-defined]
    account = broker_account_set_token(
        account=BrokerAccount(name="demo", api_key=sim.api_key, api_secret=sim.api_secret),
        access_token=sim.access_token,
        issued_at=market_now(),
    )
    instruments_refresh_from_kite(account=account)
    WatchSpec.objects.create(underlying="NIFTY", expiry_count=1, strikes_around_atm=2, mode="full")
    day = datetime.fromtimestamp(sim.state.clock.now(), IST).date()
    future = Instrument.objects.filter(name="NIFTY", instrument_type="FUT", expiry__gte=day).order_by(
        "expiry"
    )[0]
    kite = KiteConnect(sim.api_key, access_token=sim.access_token, root=sim.root)
    return KiteWorld(sim, kite, account, future)


@pytest.fixture
def world(db, redis_client: redis.Redis, bars_sim: KitesimThread, settings: object) -> KiteWorld:
    return make_world(bars_sim, settings)


def minutes_between(start: datetime, end: datetime) -> list[datetime]:
    count = int((end - start).total_seconds() // 60)
    return [start + timedelta(minutes=k) for k in range(count)]
