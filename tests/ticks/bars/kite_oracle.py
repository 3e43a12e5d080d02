"""kitesim as the oracle for bars: its own candles through the official client, its days from its clock."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import pytest

from kitesim.paths import previous_trading_day
from kitesim.testing import KitesimThread
from tests.kitesim.rest_drive import PacedKite, atm_option, paced_client
from ticks.bars.records import BarRecord
from ticks.bars.services import bars_upsert
from ticks.instruments_csv import parse_records, records_from_client
from ticks.market_time import IST
from ticks.services import instruments_load

NIFTY_50 = 256265


@dataclass
class KiteOracle:
    """One kitesim for a test module; its candles fetched once per question."""

    server: KitesimThread
    kite: PacedKite
    option: int  # an ATM NIFTY option of the nearest expiry: volume and OI
    days: tuple[date, date]  # the two trading days before the simulated session, oldest first
    _candles: dict[tuple[int, str, datetime, datetime], list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def whole_days(self) -> tuple[datetime, datetime]:
        """From 00:00 of the first day to 23:59:59 of the second (Kite's ``to`` is whole seconds)."""
        first, second = self.days
        return datetime.combine(first, time.min, tzinfo=IST), datetime.combine(
            second, time(23, 59, 59), tzinfo=IST
        )

    def candles(self, token: int, interval: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        key = (token, interval, start, end)
        if key not in self._candles:
            # The client sends IST wall times: naive IST datetimes are what it formats verbatim.
            naive = (start.astimezone(IST).replace(tzinfo=None), end.astimezone(IST).replace(tzinfo=None))
            self._candles[key] = self.kite.historical_data(token, *naive, interval, oi=True)
        return self._candles[key]

    def store_minutes(self, token: int) -> int:
        """kitesim's minute candles over ``whole_days``, stored as Kite's bars would be."""
        candles = self.candles(token, "minute", *self.whole_days)
        return bars_upsert(records=[_record(token, "minute", candle) for candle in candles])

    def load_instruments(self, *tokens: int) -> None:
        """kitesim's instrument dump rows for ``tokens`` in the instrument table (ticks.services)."""
        wanted = [row for row in self.kite.instruments() if row["instrument_token"] in tokens]
        parsed = parse_records(records_from_client(wanted))
        instruments_load(rows=parsed.rows, errors=parsed.errors)


def _record(token: int, interval: str, candle: dict[str, Any]) -> BarRecord:
    return BarRecord(
        instrument_token=token,
        interval=interval,
        start=candle["date"].timestamp(),
        open=candle["open"],
        high=candle["high"],
        low=candle["low"],
        close=candle["close"],
        volume=candle["volume"],
        oi=candle.get("oi", 0),
        source="kite",
    )


def as_rows(candles: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (c["date"], c["open"], c["high"], c["low"], c["close"], c["volume"], c.get("oi", 0)) for c in candles
    ]


@pytest.fixture(scope="module")
def oracle() -> Iterator[KiteOracle]:
    with KitesimThread(seed=7) as server:
        session = server.state.market.session  # the simulated session, never the host's date
        second = previous_trading_day(session)
        days = (previous_trading_day(second), second)
        yield KiteOracle(server, paced_client(server), atm_option(server).instrument_token, days)
