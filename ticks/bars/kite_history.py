"""Kite's own candles through the official client: span-limited chunks, the fleet-wide historical bucket.

Kite's historical endpoint allows 3 requests a second per api_key across every process that uses the
key, so each request first takes a token from the same Redis bucket (orders.ratelimit) the whole fleet
shares. Kite answers an empty window with an InputException ("No candles found ..."): that is an empty
chunk, not a failure. A 429 (NetworkException) or a dropped connection waits and retries a few times.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from kiteconnect import KiteConnect
from kiteconnect.exceptions import InputException, NetworkException
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout

from orders.ratelimit import TokenBucket, historical_bucket
from ticks.bars.intervals import DAY, KITE_MAX_SPAN_DAYS
from ticks.bars.records import BarRecord
from ticks.kite import kite_client_for
from ticks.market_time import IST
from ticks.models import BrokerAccount, Instrument

logger = logging.getLogger(__name__)

NO_CANDLES = "No candles found"
KITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # Kite reads it as IST
RETRIES = 4
RETRY_BASE_S = 0.5
BUCKET_WAIT_S = 5.0
RETRYABLE = (NetworkException, RequestsConnectionError, Timeout)
FNO_EXCHANGES = frozenset({"NFO", "BFO", "MCX", "CDS"})


class HistoryUnavailable(Exception):
    """Kite kept refusing (429, network) after the retries; the caller decides whether to try later."""


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime  # inclusive, aware
    end: datetime  # inclusive, aware


def chunk_windows(
    start: datetime, end: datetime, interval: str, *, max_days: int | None = None
) -> list[Window]:
    """Split [start, end] into windows Kite accepts in one request (end - start <= the interval's span).

    Consecutive windows are one second apart: candles start on whole minutes and Kite's ``to`` is
    inclusive, so no candle is asked for twice and none is skipped.
    """
    if end < start:
        return []
    days = KITE_MAX_SPAN_DAYS[interval] if max_days is None else min(max_days, KITE_MAX_SPAN_DAYS[interval])
    span = timedelta(days=days) - timedelta(seconds=1)
    windows, cursor = [], start
    while cursor <= end:
        last = min(cursor + span, end)
        windows.append(Window(cursor, last))
        cursor = last + timedelta(seconds=1)
    return windows


def candle_records(
    token: int, interval: str, candles: Sequence[dict[str, Any]], *, settled: bool
) -> list[BarRecord]:
    """kiteconnect's candle dicts (``date`` aware) -> BarRecords with source "kite"."""
    return [
        BarRecord(
            instrument_token=token,
            interval=interval,
            start=candle["date"].timestamp(),
            open=float(candle["open"]),
            high=float(candle["high"]),
            low=float(candle["low"]),
            close=float(candle["close"]),
            volume=int(candle["volume"]),
            oi=int(candle.get("oi", 0)),
            source="kite",
            settled=settled,
        )
        for candle in candles
    ]


def candle_flags(instrument: Instrument | None, interval: str) -> tuple[bool, bool]:
    """(continuous, oi): continuous for a future's day candles (Kite stitches expired contracts), OI for F&O."""
    if instrument is None:
        return False, False
    fno = instrument.exchange in FNO_EXCHANGES
    continuous = instrument.instrument_type == Instrument.Type.FUT and interval == DAY
    return continuous, fno


class KiteHistory:
    """Candles of one account's api_key; every request pays the shared bucket first."""

    def __init__(
        self,
        kite: KiteConnect,
        bucket: TokenBucket,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retries: int = RETRIES,
    ) -> None:
        self._kite = kite
        self._bucket = bucket
        self._sleep = sleep
        self._retries = retries
        self.requests = 0

    def take_token(self, max_wait: float) -> bool:
        """A request slot within ``max_wait`` seconds (False: none came, the caller stops early)."""
        return self._bucket.acquire(max_wait) == 0.0

    def window(
        self, token: int, interval: str, window: Window, *, continuous: bool, oi: bool
    ) -> list[dict[str, Any]]:
        """One request's candles; [] when Kite has none in the window."""
        for attempt in range(self._retries + 1):
            while not self.take_token(BUCKET_WAIT_S):
                pass
            self.requests += 1
            try:
                return self._kite.historical_data(
                    token,
                    window.start.astimezone(IST).strftime(KITE_TIME_FORMAT),
                    window.end.astimezone(IST).strftime(KITE_TIME_FORMAT),
                    interval,
                    continuous=continuous,
                    oi=oi,
                )
            except InputException as error:
                if NO_CANDLES in str(error):
                    return []
                raise
            except RETRYABLE as error:
                if attempt == self._retries:
                    raise HistoryUnavailable(f"historical {token} {interval}: {error}") from error
                delay = RETRY_BASE_S * 2**attempt
                logger.warning("historical %s %s: %s; retry in %.1fs", token, interval, error, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def records(
        self,
        token: int,
        interval: str,
        start: datetime,
        end: datetime,
        *,
        continuous: bool,
        oi: bool,
        settled: bool,
    ) -> list[BarRecord]:
        """Every candle of [start, end], chunked to Kite's span limit."""
        out: list[BarRecord] = []
        for window in chunk_windows(start, end, interval):
            candles = self.window(token, interval, window, continuous=continuous, oi=oi)
            out += candle_records(token, interval, candles, settled=settled)
        return out


def kite_history_for(account: BrokerAccount, client: redis.Redis) -> KiteHistory:
    return KiteHistory(kite_client_for(account), historical_bucket(client, account.api_key))


def default_account() -> BrokerAccount | None:
    """The first healthy enabled account (the same choice as the instruments refresh)."""
    return BrokerAccount.objects.filter(enabled=True, health=BrokerAccount.Health.OK).order_by("pk").first()
