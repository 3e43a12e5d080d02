from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ticks.instruments_csv import KITE_HEADER, HeaderError, parse_csv, parse_records, records_from_client

SLICE = Path(__file__).parents[1] / "resources" / "instruments-slice.csv"
HEADER = ",".join(KITE_HEADER)


def test_it_parses_the_real_dump_slice() -> None:
    result = parse_csv(SLICE.read_text())

    assert result.errors == []
    assert len(result.rows) == 119
    future = next(row for row in result.rows if row.tradingsymbol == "NIFTY26AUGFUT")
    assert future.instrument_token == 14866434
    assert future.instrument_token == future.exchange_token << 8 | 2
    assert future.expiry == date(2026, 8, 25)
    assert future.tick_size == Decimal("0.1")
    assert future.lot_size == 65


def test_it_parses_quoted_names_and_index_rows_with_zero_tick_and_lot() -> None:
    text = f'{HEADER}\n256265,1001,NIFTY 50,"NIFTY 50",0,,0,0,0,EQ,INDICES,NSE\n'

    (row,) = parse_csv(text).rows

    assert (row.name, row.expiry, row.tick_size, row.lot_size) == ("NIFTY 50", None, Decimal(0), 0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("x,1,A,A,0,,0,0.05,1,CE,NFO-OPT,NFO", "instrument_token 'x' is not an integer"),
        ("1,1,A,A,0,2026-13-01,0,0.05,1,CE,NFO-OPT,NFO", "expiry '2026-13-01' is not YYYY-MM-DD"),
        ("1,1,A,A,0,,0,-1,1,CE,NFO-OPT,NFO", "tick_size '-1' must be a finite number >= 0"),
        ("1,1,A,A,0,,0,0.05,1,XX,NFO-OPT,NFO", "instrument_type 'XX' is not one of"),
        ("1,1,,A,0,,0,0.05,1,CE,NFO-OPT,NFO", "tradingsymbol is empty"),
        ("1,1,A,A,0,,0,0.05", "expected 12 columns, got 8"),
        ("1,1,A,A,nan,,0,0.05,1,CE,NFO-OPT,NFO", "last_price 'nan' must be a finite number"),
    ],
)
def test_it_reports_a_malformed_row_with_its_line_number(line: str, message: str) -> None:
    good = "2,2,B,B,0,,0,0.05,1,CE,NFO-OPT,NFO"
    result = parse_csv(f"{HEADER}\n{good}\n{line}\n")

    assert [row.tradingsymbol for row in result.rows] == ["B"]
    (error,) = result.errors
    assert error.line == 3
    assert message in error.message


def test_it_reports_a_repeated_key_against_its_first_line() -> None:
    row = "2,2,B,B,0,,0,0.05,1,CE,NFO-OPT,NFO"

    result = parse_csv(f"{HEADER}\n{row}\n{row}\n")

    assert [str(error) for error in result.errors] == ["line 3: NFO:B repeats line 2"]


def test_it_refuses_a_foreign_header() -> None:
    with pytest.raises(HeaderError, match="expected header instrument_token,"):
        parse_csv("token,symbol\n1,A\n")


def test_it_round_trips_the_official_clients_parsed_records() -> None:
    client_record = {
        "instrument_token": 14866434,
        "exchange_token": "58072",
        "tradingsymbol": "NIFTY26AUGFUT",
        "name": "NIFTY",
        "last_price": 0.0,
        "expiry": date(2026, 8, 25),
        "strike": 0.0,
        "tick_size": 0.1,
        "lot_size": 65,
        "instrument_type": "FUT",
        "segment": "NFO-FUT",
        "exchange": "NFO",
    }

    (row,) = parse_records(records_from_client([client_record])).rows

    assert (row.expiry, row.tick_size, row.exchange_token) == (date(2026, 8, 25), Decimal("0.1"), 58072)
