"""The tick-path core on hand-built frames: forwards, statuses, market time, one engine call per frame."""

from datetime import date

import numpy as np
import numpy.typing as npt
import pytest

from greeks import engine
from greeks.engine import GreeksResult
from greeks.records import FORWARD_DTYPE, GREEKS_DTYPE, ChainKey, ForwardSource, forward_field
from greeks.status import GreeksStatus
from greeks.tickpath import (
    SOURCE_MAX_AGE_S,
    FrameGreeks,
    InstrumentRow,
    InstrumentTable,
    PriceBoard,
    frame_greeks,
    frame_view,
    instrument_table_build,
    sources_missing,
)
from tests.greeks.market import (
    FUTURE_TOKEN,
    INDEX_TOKEN,
    MONTHLY,
    NOW,
    RATE,
    SPOT,
    WEEKLY,
    chain_frame,
    instrument_rows,
    option_prices,
    option_token,
    options,
    smile,
    tick_rows,
    true_forward,
    years,
)
from tests.ticks.feeds.frames import frame, full_packet, index_packet, ltp_packet
from ticks.feeds.protocol import decode_frame

ATM = 24_800.0


@pytest.fixture
def table() -> InstrumentTable:
    return instrument_table_build(instrument_rows())


def _run(
    table: InstrumentTable,
    *frames: npt.NDArray[np.void],
    model: engine.Model = "black76",
    fallback_now: float = NOW,
    board: PriceBoard | None = None,
) -> FrameGreeks:
    """Feed the frames in order through one board; the greeks of the last."""
    board = board or PriceBoard.empty(len(table))
    for ticks in frames:
        view = frame_view(table, board, ticks, fallback_now)
    return frame_greeks(
        table, board, view, rate=RATE, model=model, solve=engine.implied_vol_and_greeks, computed_at=123.0
    )


def _record(result: FrameGreeks, token: int) -> np.void:
    (position,) = np.flatnonzero(result.tokens == token)
    return result.records[position]


def test_the_table_finds_rows_by_token_and_flags_the_unknown(table: InstrumentTable) -> None:
    tokens = [option_token(WEEKLY, ATM, True), 12345, INDEX_TOKEN, FUTURE_TOKEN]

    rows, known = table.lookup(tokens)

    assert known.tolist() == [True, False, True, True]
    assert table.tokens[rows[known]].tolist() == [tokens[0], INDEX_TOKEN, FUTURE_TOKEN]
    assert np.all(np.diff(table.tokens) > 0)
    assert table.chains == (ChainKey("NIFTY", WEEKLY), ChainKey("NIFTY", MONTHLY))


def test_futures_belong_to_their_expiry_and_indexes_to_their_underlying(table: InstrumentTable) -> None:
    weekly, monthly = 0, 1
    assert table.chain_future[weekly] == -1
    assert table.tokens[table.chain_future[monthly]] == FUTURE_TOKEN
    assert table.tokens[table.chain_index].tolist() == [INDEX_TOKEN, INDEX_TOKEN]
    # 21 strikes, each with both legs, per chain
    assert np.diff(table.pair_start).tolist() == [21, 21]


def test_a_reused_token_keeps_the_later_expiry_and_derivatives_need_one() -> None:
    table = instrument_table_build(
        [
            InstrumentRow(77, "NIFTY", date(2026, 12, 8), 24_000.0, "CE"),
            InstrumentRow(77, "NIFTY", date(2026, 12, 29), 25_000.0, "PE"),
            InstrumentRow(78, "NIFTY", None, 25_000.0, "CE"),
        ]
    )

    assert table.tokens.tolist() == [77]
    assert table.strike.tolist() == [25_000.0]
    assert table.chains == (ChainKey("NIFTY", date(2026, 12, 29)),)


def test_an_empty_table_knows_no_token() -> None:
    table = instrument_table_build([])

    _, known = table.lookup([1, 2])

    assert known.tolist() == [False, False]


def test_the_same_expiry_future_is_the_forward(table: InstrumentTable) -> None:
    future_price = true_forward(MONTHLY) + 3.0  # a basis the options do not share
    frame_rows = np.concatenate(
        [tick_rows([FUTURE_TOKEN], [future_price]), chain_frame(MONTHLY, with_index=True)]
    )

    result = _run(table, frame_rows)

    assert result.chains == (ChainKey("NIFTY", MONTHLY),)
    assert result.forwards["forward"][0] == future_price
    assert result.forwards["forward_source"][0] == ForwardSource.FUTURE
    assert np.all(result.records["forward"] == future_price)
    assert np.all(result.records["forward_source"] == ForwardSource.FUTURE)


def test_parity_on_the_pair_nearest_atm_is_the_forward_without_a_future(table: InstrumentTable) -> None:
    result = _run(table, chain_frame(WEEKLY))

    assert result.forwards["forward_source"][0] == ForwardSource.PARITY
    assert result.forwards["forward"][0] == pytest.approx(true_forward(WEEKLY), abs=1e-8)
    ok = result.records["status"] == GreeksStatus.OK
    strikes = np.array([o.strike for o in options(WEEKLY)])
    expected = smile(strikes, true_forward(WEEKLY), years(WEEKLY))
    assert ok.sum() >= 40
    np.testing.assert_allclose(result.records["iv"][ok], expected[ok], atol=1e-9)


def test_parity_ignores_a_far_pair_whose_prices_disagree(table: InstrumentTable) -> None:
    frame_rows = chain_frame(WEEKLY)
    far_call = frame_rows["instrument_token"] == option_token(WEEKLY, SPOT + 500, True)
    frame_rows["last_price"][far_call] += 40.0  # a stale or wild print on a wing

    result = _run(table, frame_rows)

    assert result.forwards["forward"][0] == pytest.approx(true_forward(WEEKLY), abs=1e-8)


def test_parity_on_tick_prices_lands_within_a_tick_of_the_forward(table: InstrumentTable) -> None:
    result = _run(table, chain_frame(WEEKLY, tick=0.05))

    assert result.forwards["forward"][0] == pytest.approx(true_forward(WEEKLY), abs=0.1)


def test_the_index_carried_at_the_rate_is_the_last_resort(table: InstrumentTable) -> None:
    lone_call = option_token(WEEKLY, ATM, True)
    frame_rows = np.concatenate([tick_rows([INDEX_TOKEN], [SPOT]), tick_rows([lone_call], [150.0])])

    result = _run(table, frame_rows)

    assert result.forwards["forward_source"][0] == ForwardSource.INDEX
    assert result.forwards["forward"][0] == pytest.approx(true_forward(WEEKLY), rel=1e-12)
    assert _record(result, lone_call)["status"] == GreeksStatus.OK


def test_without_future_pair_or_index_the_options_get_no_forward(table: InstrumentTable) -> None:
    lone_call = option_token(WEEKLY, ATM, True)

    result = _run(table, tick_rows([lone_call], [150.0]))

    record = _record(result, lone_call)
    assert record["status"] == GreeksStatus.NO_FORWARD
    assert np.isnan(record["iv"]) and np.isnan(record["delta"]) and np.isnan(record["forward"])
    assert result.forwards["forward_source"][0] == ForwardSource.NONE


def test_a_stale_future_gives_way_to_parity(table: InstrumentTable) -> None:
    board = PriceBoard.empty(len(table))
    old = NOW - SOURCE_MAX_AGE_S - 1
    stale_future = tick_rows([FUTURE_TOKEN], [true_forward(MONTHLY) + 3.0], exchange_timestamp=old)

    result = _run(table, stale_future, chain_frame(MONTHLY), board=board)

    assert result.forwards["forward_source"][0] == ForwardSource.PARITY
    missing = sources_missing(table, board, np.array([1]), NOW)
    assert table.tokens[missing].tolist() == [FUTURE_TOKEN]


def test_a_price_s_age_is_from_its_last_trade_not_the_book_update(table: InstrumentTable) -> None:
    book_update = tick_rows([FUTURE_TOKEN], [true_forward(MONTHLY) + 3.0])
    book_update["last_trade_time"] = NOW - SOURCE_MAX_AGE_S - 1  # stamped now, last traded long ago

    result = _run(table, np.concatenate([book_update, chain_frame(MONTHLY)]))

    assert result.forwards["forward_source"][0] == ForwardSource.PARITY
    assert result.forwards["forward"][0] == pytest.approx(true_forward(MONTHLY), abs=1e-8)


def test_an_earlier_frame_s_future_still_counts(table: InstrumentTable) -> None:
    future_price = true_forward(MONTHLY) + 1.0
    earlier = tick_rows([FUTURE_TOKEN], [future_price], exchange_timestamp=NOW - 5)

    result = _run(table, earlier, chain_frame(MONTHLY, with_index=False))

    assert result.forwards["forward"][0] == future_price


def test_an_unpriced_option_and_one_below_intrinsic_get_their_status(table: InstrumentTable) -> None:
    chain = chain_frame(WEEKLY)
    unpriced = option_token(WEEKLY, ATM + 50, True)
    deep_call = option_token(WEEKLY, SPOT - 500, True)  # intrinsic about 532
    chain["last_price"][chain["instrument_token"] == unpriced] = 0.0
    chain["last_price"][chain["instrument_token"] == deep_call] = 500.0

    result = _run(table, chain)

    assert _record(result, unpriced)["status"] == GreeksStatus.NO_PRICE
    assert _record(result, deep_call)["status"] == GreeksStatus.BELOW_INTRINSIC
    assert np.isnan(_record(result, deep_call)["iv"])
    assert np.sum(result.records["status"] == GreeksStatus.OK) == len(chain) - 3  # the index has no record


def test_after_15_30_on_expiry_day_an_option_is_expired(table: InstrumentTable) -> None:
    after_cutoff = NOW + int(years(WEEKLY) * engine.SECONDS_PER_YEAR) + 60
    atm = [o for o in options(WEEKLY) if o.strike == ATM]
    rows = np.concatenate(
        [
            tick_rows([INDEX_TOKEN], [SPOT], exchange_timestamp=after_cutoff),
            tick_rows([o.token for o in atm], [3.0, 2.0], exchange_timestamp=after_cutoff),
        ]
    )

    result = _run(table, rows)

    assert result.records["status"].tolist() == [GreeksStatus.EXPIRED] * 2
    assert np.all(result.records["t_years"] < 0) and np.all(np.isnan(result.records["iv"]))


def test_a_mixed_frame_gets_records_for_its_option_rows_only(table: InstrumentTable) -> None:
    call, put = option_token(WEEKLY, ATM, True), option_token(WEEKLY, ATM, False)
    prices = option_prices([o for o in options(WEEKLY) if o.strike == ATM])
    payload = frame(
        [
            index_packet(INDEX_TOKEN, last_price=int(SPOT * 100), exchange_timestamp=NOW),
            ltp_packet(424242, last_price=100_00),  # an equity the table does not know
            full_packet(FUTURE_TOKEN, last_price=int(true_forward(MONTHLY) * 100), exchange_timestamp=NOW),
            full_packet(call, last_price=round(prices[0] * 100), exchange_timestamp=NOW),
            full_packet(put, last_price=round(prices[1] * 100), exchange_timestamp=NOW),
        ]
    )
    board = PriceBoard.empty(len(table))
    view = frame_view(table, board, decode_frame(payload), NOW)

    result = frame_greeks(
        table, board, view, rate=RATE, model="black76", solve=engine.implied_vol_and_greeks, computed_at=1.0
    )

    assert view.unknown_tokens.tolist() == [424242]
    assert result.tokens.tolist() == [call, put]
    assert result.chains == (ChainKey("NIFTY", WEEKLY),)
    assert result.forwards["forward_source"][0] == ForwardSource.PARITY
    assert np.all(result.records["status"] == GreeksStatus.OK)


def test_time_to_expiry_is_each_row_s_exchange_time(table: InstrumentTable) -> None:
    call, put = option_token(WEEKLY, ATM, True), option_token(WEEKLY, ATM, False)
    rows = tick_rows([call, put], [150.0, 120.0], exchange_timestamp=[NOW - 30, NOW])

    result = _run(table, rows)

    assert _record(result, call)["t_years"] == engine.year_fraction(NOW - 30, WEEKLY)
    assert _record(result, put)["t_years"] == engine.year_fraction(NOW, WEEKLY)
    assert _record(result, call)["market_time"] == NOW - 30


def test_unstamped_rows_take_the_frame_s_time_else_the_fallback(table: InstrumentTable) -> None:
    call, put = option_token(WEEKLY, ATM, True), option_token(WEEKLY, ATM, False)
    with_index = np.concatenate(
        [
            tick_rows([INDEX_TOKEN], [SPOT], exchange_timestamp=NOW),
            tick_rows([call], [150.0], exchange_timestamp=0),
        ]
    )
    alone = tick_rows([put], [120.0], exchange_timestamp=0, mode="ltp")

    assert _record(_run(table, with_index, fallback_now=0.0), call)["market_time"] == NOW
    assert _record(_run(table, alone, fallback_now=NOW + 9), put)["market_time"] == NOW + 9


def test_the_mid_iv_needs_both_sides_of_the_book(table: InstrumentTable) -> None:
    call, put = option_token(WEEKLY, ATM, True), option_token(WEEKLY, ATM, False)
    call_price, put_price = option_prices([o for o in options(WEEKLY) if o.strike == ATM])
    rows = tick_rows(
        [call, put],
        [call_price, put_price],
        bid=[call_price - 0.5, put_price - 0.5],
        ask=[call_price + 0.5, 0.0],
    )

    result = _run(table, rows)

    call_record, put_record = _record(result, call), _record(result, put)
    assert call_record["iv_mid"] == pytest.approx(call_record["iv"], abs=1e-9)  # mid = last here
    assert np.isnan(put_record["iv_mid"]) and not np.isnan(put_record["iv"])


def test_one_engine_call_per_frame_covers_last_and_mid_lanes(table: InstrumentTable) -> None:
    calls: list[int] = []

    def counting(*args: object, **kwargs: object) -> GreeksResult:
        calls.append(np.asarray(args[0]).size)
        return engine.implied_vol_and_greeks(*args, **kwargs)  # type: ignore[arg-type]

    rows = chain_frame(WEEKLY, with_index=False)
    rows["bid_price"][:3, 0], rows["ask_price"][:3, 0] = 1.0, 2.0
    board = PriceBoard.empty(len(table))
    view = frame_view(table, board, rows, NOW)

    frame_greeks(table, board, view, rate=RATE, model="black76", solve=counting, computed_at=1.0)

    assert calls == [len(rows) + 3]


def test_the_bs_model_gives_the_same_iv_on_the_discounted_forward(table: InstrumentTable) -> None:
    black76 = _run(table, chain_frame(WEEKLY))
    bs = _run(table, chain_frame(WEEKLY), model="bs")

    np.testing.assert_allclose(bs.records["iv"], black76.records["iv"], rtol=1e-9)
    ok = black76.records["status"] == GreeksStatus.OK
    # spot delta is e^{rT} times the forward delta
    carry = np.exp(RATE * black76.records["t_years"][ok])
    np.testing.assert_allclose(bs.records["delta"][ok], black76.records["delta"][ok] * carry, rtol=1e-9)


def test_a_reloaded_table_keeps_the_board_s_prices(table: InstrumentTable) -> None:
    board = PriceBoard.empty(len(table))
    frame_view(table, board, tick_rows([INDEX_TOKEN, FUTURE_TOKEN], [SPOT, 25_000.0]), NOW)
    extra = InstrumentRow(1, "NIFTY", WEEKLY, 26_000.0, "CE")  # sorts first: every row moves
    bigger = instrument_table_build([*instrument_rows(), extra])

    moved = board.remapped(table, bigger)

    rows, _ = bigger.lookup([INDEX_TOKEN, FUTURE_TOKEN, 1])
    assert moved.last[rows].tolist() == [SPOT, 25_000.0, 0.0]
    assert moved.seen_at[rows[:2]].tolist() == [NOW, NOW]


def test_the_hset_fields_decode_back_to_the_records(table: InstrumentTable) -> None:
    result = _run(table, chain_frame(WEEKLY))

    fields = result.mapping()

    token = str(result.tokens[5]).encode()  # the field name redis-py would send for the int
    assert fields[token] == result.records[5].tobytes()
    assert np.frombuffer(fields[token], GREEKS_DTYPE)["iv"][0] == result.records["iv"][5]
    forward = np.frombuffer(fields[forward_field(ChainKey("NIFTY", WEEKLY))], FORWARD_DTYPE)[0]
    assert forward["forward"] == result.forwards["forward"][0]
    assert forward["computed_at"] == 123.0
    assert len(fields) == len(result.tokens) + 1
