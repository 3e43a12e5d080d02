"""Instruments CSV, quotes and historical candles through the official client."""

import csv
import io
from datetime import datetime, timedelta

import pytest
import requests
from kiteconnect.exceptions import InputException

from kitesim.clock import IST
from kitesim.rest.historical import MAX_SPAN_DAYS
from kitesim.testing import KitesimThread
from kitesim.universe import CSV_HEADER
from tests.kitesim.rest_drive import PacedKite, atm_option, nifty_future, paced_client

pytestmark = pytest.mark.integration

KITE_FORMAT = "%Y-%m-%d %H:%M:%S"


@pytest.fixture
def paced(kitesim_server: KitesimThread) -> PacedKite:
    return paced_client(kitesim_server)


def sim_now(server: KitesimThread) -> datetime:
    """kitesim's now as a Kite query instant: naive IST, whole seconds.

    Kite's ``from``/``to`` carry whole seconds (the client formats them so), so a window built from a
    sub-second instant is not the window asked for: at the session's first second, the 09:15:00
    candle would fall "before" a start of 09:15:00.145.
    """
    return datetime.fromtimestamp(server.state.clock.now(), IST).replace(tzinfo=None, microsecond=0)


# -- instruments -------------------------------------------------------------------------------------


def test_instruments_csv_is_kites(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    response = requests.get(
        f"{kitesim_server.root}/instruments",
        timeout=10,
        headers={
            "X-Kite-Version": "3",
            "Authorization": f"token {kitesim_server.api_key}:{kitesim_server.access_token}",
        },
    )
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == tuple(CSV_HEADER)
    instruments = paced.instruments()
    universe = kitesim_server.state.market.universe
    assert len(instruments) == len(rows) - 1 == len(universe)
    by_token = {row["instrument_token"]: row for row in instruments}
    option = atm_option(kitesim_server)
    parsed = by_token[option.instrument_token]
    assert parsed["tradingsymbol"] == option.tradingsymbol and parsed["expiry"] == option.expiry
    assert parsed["lot_size"] == option.lot_size and parsed["strike"] == option.strike


def test_instruments_per_exchange(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    universe = kitesim_server.state.market.universe
    for exchange in ("NFO", "BFO", "NSE"):
        rows = paced.instruments(exchange)
        assert rows and {row["exchange"] for row in rows} == {exchange}
        assert len(rows) == sum(1 for i in universe.all() if i.exchange == exchange)
    assert any(row["tradingsymbol"] == "NIFTY 50" for row in paced.instruments("NSE"))
    assert paced.instruments("MCX") == []
    with pytest.raises(InputException):
        paced.instruments("NOPE")


# -- quotes ------------------------------------------------------------------------------------------


def test_full_quote_shape_and_unknown_keys(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    key = f"NFO:{option.tradingsymbol}"
    quotes = paced.quote(key, "NSE:NIFTY 50", "NFO:NIFTY00JAN1CE", str(option.instrument_token))
    assert set(quotes) == {key, "NSE:NIFTY 50", str(option.instrument_token)}
    full = quotes[key]
    assert full["instrument_token"] == option.instrument_token
    assert isinstance(full["timestamp"], datetime) and isinstance(full["last_trade_time"], datetime)
    assert len(full["depth"]["buy"]) == 5 and len(full["depth"]["sell"]) == 5
    assert full["depth"]["buy"][0]["price"] < full["depth"]["sell"][0]["price"]
    assert set(full["ohlc"]) == {"open", "high", "low", "close"}
    assert full["net_change"] == pytest.approx(full["last_price"] - full["ohlc"]["close"], abs=0.01)
    assert full["lower_circuit_limit"] < full["last_price"] < full["upper_circuit_limit"]
    for field in ("volume", "last_quantity", "buy_quantity", "sell_quantity", "average_price", "oi"):
        assert field in full
    assert quotes["NSE:NIFTY 50"]["last_price"] > 1000


def test_ltp_and_ohlc_shapes(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    key = f"NFO:{option.tradingsymbol}"
    ltp = paced.ltp(key, "NFO:UNKNOWN")
    assert set(ltp) == {key} and set(ltp[key]) == {"instrument_token", "last_price"}
    ohlc = paced.ohlc(key)
    assert set(ohlc[key]) == {"instrument_token", "last_price", "ohlc"}


def test_quote_limits(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    keys = [
        f"NFO:{i.tradingsymbol}" for i in kitesim_server.state.market.universe.all() if i.exchange == "NFO"
    ]
    assert len(keys) >= 501
    with pytest.raises(InputException, match="500"):
        paced.quote(keys[:501])
    assert len(paced.quote(keys[:500])) == 500
    many = (keys * 3)[:1001]
    with pytest.raises(InputException, match="1000"):
        paced.ltp(many)
    with pytest.raises(InputException, match="1000"):
        paced.ohlc(many)
    with pytest.raises(InputException):
        paced.ltp()


# -- historical --------------------------------------------------------------------------------------


@pytest.mark.clock  # the candles' window is days back from the host's date: weekends, holidays, year ends
@pytest.mark.parametrize("interval", list(MAX_SPAN_DAYS))
def test_historical_every_interval(kitesim_server: KitesimThread, paced: PacedKite, interval: str) -> None:
    option = atm_option(kitesim_server)
    now = sim_now(kitesim_server)
    start = now - timedelta(days=3)
    candles = paced.historical_data(option.instrument_token, start, now, interval, oi=True)
    assert candles
    first = candles[0]
    assert first["date"].utcoffset() == timedelta(hours=5, minutes=30)
    assert (
        first["low"]
        <= min(first["open"], first["close"])
        <= max(first["open"], first["close"])
        <= first["high"]
    )
    assert "oi" in first and first["volume"] >= 0
    dates = [c["date"] for c in candles]
    assert dates == sorted(dates)
    if interval != "day":
        assert all(start.replace(tzinfo=IST) <= d <= now.replace(tzinfo=IST) for d in dates)


@pytest.mark.clock  # the candles' window is days back from the host's date: weekends, holidays, year ends
def test_historical_without_oi_has_six_fields(kitesim_server: KitesimThread) -> None:
    option = atm_option(kitesim_server)
    now = sim_now(kitesim_server)
    response = requests.get(
        f"{kitesim_server.root}/instruments/historical/{option.instrument_token}/minute",
        params={"from": (now - timedelta(days=3)).strftime(KITE_FORMAT), "to": now.strftime(KITE_FORMAT)},
        headers={
            "X-Kite-Version": "3",
            "Authorization": f"token {kitesim_server.api_key}:{kitesim_server.access_token}",
        },
        timeout=10,
    )
    candles = response.json()["data"]["candles"]
    assert candles and all(len(c) == 6 for c in candles)
    assert candles[0][0].endswith("+0530") and "T" in candles[0][0]


@pytest.mark.parametrize(("interval", "days"), list(MAX_SPAN_DAYS.items()))
def test_historical_span_limits(
    kitesim_server: KitesimThread, paced: PacedKite, interval: str, days: int
) -> None:
    option = atm_option(kitesim_server)
    now = sim_now(kitesim_server)
    with pytest.raises(InputException, match=f"interval exceeds max limit: {days} days") as refused:
        paced.historical_data(option.instrument_token, now - timedelta(days=days + 1), now, interval)
    assert refused.value.code == 400


def test_historical_bad_requests(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    now = sim_now(kitesim_server)
    earlier = now - timedelta(hours=1)
    with pytest.raises(InputException, match="invalid interval"):
        paced.historical_data(option.instrument_token, earlier, now, "2minute")
    with pytest.raises(InputException, match="invalid token"):
        paced.historical_data(999999999, earlier, now, "minute")
    with pytest.raises(InputException, match="after"):
        paced.historical_data(option.instrument_token, now, earlier, "minute")
    with pytest.raises(InputException, match="Invalid `from`"):
        paced.historical_data(option.instrument_token, "yesterday", now, "minute")
    with pytest.raises(InputException, match="Continuous"):
        paced.historical_data(option.instrument_token, earlier, now, "day", continuous=True)


@pytest.mark.clock  # the candles' window is days back from the host's date: weekends, holidays, year ends
def test_historical_empty_range_is_kites_no_candles(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    now = sim_now(kitesim_server)
    saturday = now - timedelta(days=(now.weekday() - 5) % 7 or 7)
    night = saturday.replace(hour=1, minute=0, second=0)
    with pytest.raises(InputException, match=r"No candles found based on token and time and candleType\."):
        paced.historical_data(option.instrument_token, night, night + timedelta(hours=3), "minute")


@pytest.mark.clock  # the candles' window is days back from the host's date: weekends, holidays, year ends
def test_historical_continuous_future_day_candles(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    future = nifty_future(kitesim_server)
    now = sim_now(kitesim_server)
    candles = paced.historical_data(
        future.instrument_token, now - timedelta(days=10), now, "day", continuous=True
    )
    assert candles and all(c["date"].hour == 0 for c in candles)
