"""The instrument universe: today's expiry and symbol conventions, tokens, and the CSV dump."""

import csv
import io
import itertools
from datetime import date
from pathlib import Path

import pytest
from kiteconnect import KiteConnect

from kitesim.universe import (
    CSV_HEADER,
    SEGMENT_CODES,
    Universe,
    is_trading_day,
    next_trading_day,
    universe_from_csv,
    universe_generate,
)

DUMP = Path("/work/shared/data/kite-instruments-nfo-bfo-2026-08.csv")
SESSION = date(2026, 8, 17)  # a Monday; the dump was taken the same week


@pytest.fixture(scope="module")
def universe() -> Universe:
    return universe_generate(SESSION)


@pytest.fixture(scope="module")
def dump_rows() -> list[dict[str, str]]:
    with DUMP.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _expiries(u: Universe, underlying: str, kind: str = "CE") -> list[date]:
    return sorted({i.expiry for i in u.all() if i.underlying == underlying and i.instrument_type == kind})


def test_expiries_match_the_real_august_2026_listing(
    universe: Universe, dump_rows: list[dict[str, str]]
) -> None:
    def real(name: str, kind: str, count: int) -> list[date]:
        found = {
            date.fromisoformat(r["expiry"])
            for r in dump_rows
            if r["name"] == name and r["instrument_type"] == kind
        }
        return sorted(found)[:count]

    assert _expiries(universe, "NIFTY") == real("NIFTY", "CE", 7)
    assert _expiries(universe, "BANKNIFTY") == real("BANKNIFTY", "CE", 3)
    assert _expiries(universe, "NIFTY", "FUT") == real("NIFTY", "FUT", 3)
    assert _expiries(universe, "BANKNIFTY", "FUT") == real("BANKNIFTY", "FUT", 3)
    assert _expiries(universe, "SENSEX", "FUT") == real("SENSEX", "FUT", 3)
    assert _expiries(universe, "SENSEX") == [date(2026, 8, 27), date(2026, 9, 24), date(2026, 10, 29)]


def test_weekdays_nifty_banknifty_tuesday_sensex_thursday(universe: Universe) -> None:
    for inst in universe.all():
        if inst.expiry is not None:
            assert inst.expiry.weekday() == (3 if inst.underlying == "SENSEX" else 1), inst.tradingsymbol


def test_symbols_are_exactly_the_dumps(universe: Universe, dump_rows: list[dict[str, str]]) -> None:
    real = {
        (r["name"], r["expiry"], float(r["strike"]), r["instrument_type"]): r["tradingsymbol"]
        for r in dump_rows
    }
    compared = 0
    for inst in universe.all():
        key = (
            inst.underlying,
            inst.expiry.isoformat() if inst.expiry else "",
            inst.strike,
            inst.instrument_type,
        )
        if key in real:
            assert inst.tradingsymbol == real[key]
            compared += 1
    assert compared > 1000
    assert universe.by_key("NFO:NIFTY2681824800CE") is not None  # weekly: YY M DD
    assert universe.by_key("NFO:NIFTY26AUG24800PE") is not None  # monthly expiry: YY MON
    assert universe.by_key("NFO:NIFTY2682524800CE") is None  # no weekly form on the monthly date


def test_october_to_december_weeklies_use_o_n_d() -> None:
    symbols = {i.tradingsymbol for i in universe_generate(date(2026, 9, 30)).all()}
    assert "NIFTY26O0624800CE" in symbols  # Tuesday 6 October 2026
    later = {i.tradingsymbol for i in universe_generate(date(2026, 11, 2)).all()}
    assert "NIFTY26N0324800CE" in later
    assert "NIFTY26D0124800PE" in later
    assert "NIFTY26NOVFUT" in later and "NIFTY27JANFUT" in later


def test_strike_steps_and_chain_width(universe: Universe) -> None:
    for underlying, step in (("NIFTY", 50), ("BANKNIFTY", 100), ("SENSEX", 100)):
        for expiry in _expiries(universe, underlying):
            strikes = sorted(
                i.strike
                for i in universe.all()
                if i.underlying == underlying and i.expiry == expiry and i.instrument_type == "PE"
            )
            assert {b - a for a, b in itertools.pairwise(strikes)} == {step}
            assert len(strikes) == 81


def test_token_rule_on_every_row(universe: Universe) -> None:
    tokens = [i.instrument_token for i in universe.all()]
    assert len(set(tokens)) == len(tokens)
    for inst in universe.all():
        code = SEGMENT_CODES["INDICES" if inst.segment == "INDICES" else inst.exchange]
        assert inst.instrument_token == inst.exchange_token << 8 | code
        assert inst.instrument_token < 2**32
        assert universe.by_token(inst.instrument_token) is inst
        assert universe.by_key(inst.key) is inst


def test_index_rows() -> None:
    u = universe_generate(SESSION)
    rows = {i.key: i for i in u.all() if i.segment == "INDICES"}
    assert {k: r.instrument_token for k, r in rows.items()} == {
        "NSE:NIFTY 50": 256265,
        "NSE:NIFTY BANK": 260105,
        "BSE:SENSEX": 265,
    }
    for row in rows.values():
        assert (row.instrument_type, row.tick_size, row.lot_size, row.expiry) == ("EQ", 0.0, 0, None)


def test_lots_ticks_freeze_and_segments(universe: Universe) -> None:
    expected = {"NIFTY": (65, 1800, "NFO"), "BANKNIFTY": (30, 900, "NFO"), "SENSEX": (20, 1000, "BFO")}
    for inst in universe.all():
        if inst.segment == "INDICES":
            continue
        lot, freeze, exchange = expected[inst.underlying]
        kind = "FUT" if inst.instrument_type == "FUT" else "OPT"
        assert (inst.lot_size, inst.freeze_quantity, inst.exchange, inst.tick_size) == (
            lot,
            freeze,
            exchange,
            0.05,
        )
        assert inst.segment == f"{exchange}-{kind}"
        assert inst.name == inst.underlying


def test_csv_is_kites_dump_format(universe: Universe) -> None:
    text = universe.csv()
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_HEADER
    numeric = [
        CSV_HEADER.index(c) for c in ("instrument_token", "last_price", "strike", "tick_size", "lot_size")
    ]
    assert all(row[i] != "" for row in rows[1:] for i in numeric)
    parsed = KiteConnect("k")._parse_instruments(text.encode())
    assert len(parsed) == len(universe)
    nifty_ce = next(p for p in parsed if p["tradingsymbol"] == "NIFTY26AUG24800CE")
    assert nifty_ce["expiry"] == date(2026, 8, 25)
    assert (nifty_ce["strike"], nifty_ce["lot_size"], nifty_ce["tick_size"]) == (24800.0, 65, 0.05)
    index = next(p for p in parsed if p["instrument_token"] == 256265)
    assert index["expiry"] == ""


def test_csv_exchange_filter(universe: Universe) -> None:
    def symbols(exchange: str) -> set[str]:
        return {row["tradingsymbol"] for row in csv.DictReader(io.StringIO(universe.csv(exchange)))}

    assert symbols("NSE") == {"NIFTY 50", "NIFTY BANK"}
    assert symbols("BSE") == {"SENSEX"}
    assert all(s.startswith("SENSEX") for s in symbols("BFO"))
    assert len(symbols("NFO")) + len(symbols("BFO")) + 3 == len(universe)


def test_tokens_of_a_contract_are_stable_across_days_and_expired_ones_leave() -> None:
    monday, wednesday = universe_generate(SESSION), universe_generate(date(2026, 8, 19))
    old = monday.by_key("NFO:NIFTY26AUG24800CE")
    assert old is not None and wednesday.by_key(old.key) == old
    assert monday.by_key("NFO:NIFTY2681824800CE") is not None
    assert wednesday.by_key("NFO:NIFTY2681824800CE") is None
    assert min(i.expiry for i in wednesday.all() if i.expiry) >= date(2026, 8, 19)


def test_expiry_day_contracts_still_trade_that_day() -> None:
    assert universe_generate(date(2026, 8, 18)).by_key("NFO:NIFTY2681824800CE") is not None


def test_levels_centre_the_chain() -> None:
    u = universe_generate(SESSION, levels={"NIFTY": 26_012.0}, strikes_each_side=10)
    strikes = sorted({i.strike for i in u.all() if i.underlying == "NIFTY" and i.instrument_type == "CE"})
    assert (strikes[0], strikes[10], strikes[-1]) == (25_500.0, 26_000.0, 26_500.0)


def test_loading_the_real_dump() -> None:
    u = universe_from_csv(DUMP, date(2026, 8, 19))
    assert {i.underlying for i in u.all()} == {"NIFTY", "BANKNIFTY", "SENSEX"}
    assert min(i.expiry for i in u.all() if i.expiry) == date(2026, 8, 20)
    assert u.by_token(256265) is not None and u.by_key("BSE:SENSEX") is not None
    fut = u.by_key("NFO:BANKNIFTY26AUGFUT")
    assert fut is not None and (fut.instrument_token, fut.tick_size, fut.lot_size) == (14865154, 0.2, 30)
    for inst in u.all():
        code = SEGMENT_CODES["INDICES" if inst.segment == "INDICES" else inst.exchange]
        assert inst.instrument_token == inst.exchange_token << 8 | code
    full = universe_from_csv(DUMP, date(2026, 8, 17))
    assert len(full) > len(u) and full.by_key("NFO:NIFTY2681824350CE") is not None


# --- exchange holidays (ticks.exchange_calendar: XBOM 2026) ------------------------------------------


def test_a_holiday_friday_is_not_a_trading_day_and_the_weekly_expiry_that_week_stands() -> None:
    assert not is_trading_day(date(2026, 12, 25))  # Christmas, a Friday
    assert next_trading_day(date(2026, 12, 25)) == date(2026, 12, 28)
    week = universe_generate(date(2026, 12, 21))
    assert _expiries(week, "NIFTY")[:2] == [date(2026, 12, 22), date(2026, 12, 29)]  # Tuesdays
    assert _expiries(week, "SENSEX")[0] == date(2026, 12, 31)


def test_an_expiry_on_a_holiday_moves_to_the_previous_session() -> None:
    # 2026-03-03 (a Tuesday, Holi) and 2026-03-31 (the last Tuesday of March) are XBOM holidays.
    u = universe_generate(date(2026, 2, 25))
    assert _expiries(u, "NIFTY")[:4] == [
        date(2026, 3, 2),
        date(2026, 3, 10),
        date(2026, 3, 17),
        date(2026, 3, 24),
    ]
    assert u.by_key("NFO:NIFTY2630224800CE") is not None  # the weekly symbol carries the real expiry
    assert u.by_key("NFO:NIFTY2630324800CE") is None
    assert date(2026, 3, 30) in _expiries(u, "NIFTY", "FUT") and date(2026, 3, 30) in _expiries(
        u, "BANKNIFTY"
    )
    march = u.by_key("NFO:NIFTY26MAR24800PE")
    assert march is not None and march.expiry == date(2026, 3, 30)


def test_a_moved_monthly_expiry_trades_on_its_new_day_and_is_gone_after() -> None:
    # 2026-11-24 is the last Tuesday of November and Guru Nanak Jayanti; 2026-05-28 the last Thursday of May.
    assert universe_generate(date(2026, 11, 23)).by_key("NFO:BANKNIFTY26NOV52000CE") is not None
    assert date(2026, 11, 23) == _expiries(universe_generate(date(2026, 11, 23)), "BANKNIFTY")[0]
    assert _expiries(universe_generate(date(2026, 11, 25)), "BANKNIFTY")[0] == date(2026, 12, 29)
    assert _expiries(universe_generate(date(2026, 5, 18)), "SENSEX")[0] == date(2026, 5, 27)
