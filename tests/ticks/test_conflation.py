"""Per-connection conflation, its send budget and the delta frame built from pre-encoded rows
(pure: no Redis, no clock)."""

import json
import random

from ticks.conflation import Conflator, SendBudget
from ticks.stream import delta_text, rows_message


def test_rows_travel_as_their_tokens_and_json_text() -> None:
    message = rows_message(
        [{"instrument_token": 7, "last_price": 1.5}],
        received_at=9.0,
        chain="NIFTY:2026-12-01",
        fields={"forward": 2},
    )

    assert message["type"] == "stream.rows" and message["tokens"] == [7]
    assert [json.loads(row) for row in message["rows"]] == [{"instrument_token": 7, "last_price": 1.5}]
    assert (message["chain"], message["fields"], message["received_at"]) == (
        "NIFTY:2026-12-01",
        {"forward": 2},
        9.0,
    )


def test_the_newest_row_of_each_wanted_token_is_kept_and_others_ignored() -> None:
    conflator = Conflator()
    for price in (1.0, 2.0, 3.0):
        message = rows_message(
            [{"instrument_token": 1, "last_price": price}, {"instrument_token": 2, "last_price": 0}]
        )
        conflator.merge(message["tokens"], message["rows"], wanted={1}, received_at=price)

    delta = conflator.take()

    assert delta is not None
    assert [json.loads(row) for row in delta.rows] == [{"instrument_token": 1, "last_price": 3.0}]
    assert (delta.received_at, delta.newest_received_at) == (1.0, 3.0)  # oldest and newest frame
    assert conflator.take() is None  # nothing new since


def test_deltas_are_numbered_on_from_the_last_snapshot() -> None:
    conflator = Conflator()
    snapshot_seq = conflator.restart()
    seqs = []
    for price in (1.0, 2.0):
        message = rows_message([{"instrument_token": 1, "last_price": price}])
        conflator.merge(message["tokens"], message["rows"], wanted={1})
        seqs.append(conflator.take().seq)

    assert seqs == [snapshot_seq + 1, snapshot_seq + 2]


def test_rows_merged_while_a_snapshot_is_read_follow_it() -> None:
    conflator = Conflator()
    message = rows_message([{"instrument_token": 1, "last_price": 1.0}])
    conflator.merge(message["tokens"], message["rows"], wanted={1})
    conflator.merge_chain("NIFTY:2026-12-01", {"forward": 1.0})

    snapshot_seq = conflator.restart()
    delta = conflator.take()

    assert delta is not None and delta.seq == snapshot_seq + 1
    assert [json.loads(row) for row in delta.rows] == [{"instrument_token": 1, "last_price": 1.0}]


def test_a_delta_frame_is_the_rows_spliced_into_valid_json() -> None:
    conflator = Conflator()
    message = rows_message(
        [
            {"instrument_token": 1, "iv": None, "status": "no_price"},
            {"instrument_token": 2, "last_price": 0.05},
        ],
        received_at=100.25,
    )
    conflator.merge(message["tokens"], message["rows"], wanted={1, 2}, received_at=100.25)
    conflator.merge_chain("NIFTY:2026-12-01", {"forward": 25000.5, "atm_strike": 25000.0})

    frame = json.loads(delta_text(conflator.take()))

    assert frame == {
        "type": "delta",
        "seq": 1,
        "rows": [
            {"instrument_token": 1, "iv": None, "status": "no_price"},
            {"instrument_token": 2, "last_price": 0.05},
        ],
        "chains": {"NIFTY:2026-12-01": {"forward": 25000.5, "atm_strike": 25000.0}},
        "received_at": 100.25,
        "newest_received_at": 100.25,
    }


def test_the_newest_forming_bar_of_each_wanted_token_rides_in_the_delta() -> None:
    conflator = Conflator()
    for close in (10.5, 11.0):
        message = rows_message(
            [{"instrument_token": 1, "last_price": close}],
            received_at=close,
            bars={1: f"[1800000000,10.0,{close},9.5,{close},7]", 2: "[1800000000,1.0,1.0,1.0,1.0,0]"},
        )
        conflator.merge(
            message["tokens"],
            message["rows"],
            {1},
            message["received_at"],
            message["bar_tokens"],
            message["bars"],
        )
    bar_only = rows_message([], bars={1: "[1800000060,11.0,11.0,11.0,11.0,0]"})
    conflator.merge(bar_only["tokens"], bar_only["rows"], {1}, None, bar_only["bar_tokens"], bar_only["bars"])

    frame = json.loads(delta_text(conflator.take()))

    assert frame["bars"] == {"1": [1800000060, 11.0, 11.0, 11.0, 11.0, 0]}  # replaced, not merged
    assert frame["rows"] == [{"instrument_token": 1, "last_price": 11.0}]
    assert conflator.take() is None


def test_a_bar_alone_makes_a_delta_and_a_delta_without_bars_has_no_bars_field() -> None:
    conflator = Conflator()
    conflator.merge([], [], {1}, bar_tokens=[1], bars=["[60,1.0,2.0,0.5,1.5,3]"])
    with_bar = json.loads(delta_text(conflator.take()))
    conflator.merge([1], ['{"instrument_token":1}'], {1})
    without = json.loads(delta_text(conflator.take()))

    assert with_bar["bars"] == {"1": [60, 1.0, 2.0, 0.5, 1.5, 3]} and with_bar["rows"] == []
    assert "bars" not in without and "bar_tokens" not in rows_message([{"instrument_token": 1}])


def _merge(conflator: Conflator, message: dict, wanted: set[int]) -> None:
    conflator.merge(
        message["tokens"],
        message["rows"],
        wanted,
        message["received_at"],
        message.get("bar_tokens", ()),
        message.get("bars", ()),
    )
    conflator.merge_chain(message["chain"], message["fields"])


def _step(price: float) -> dict:
    return rows_message(
        [{"instrument_token": 1, "last_price": price}, {"instrument_token": 2, "last_price": price + 1}],
        received_at=price,
        chain="NIFTY:2026-12-01",
        fields={"forward": price * 100},
        bars={1: f"[60,{price},{price},{price},{price},1]"},
    )


def test_connections_that_keep_up_share_one_message_and_its_text() -> None:
    message = _step(1.5)  # one decode, shared by the process's connections (ticks.channel_layer)
    first, second = Conflator(), Conflator()
    _merge(first, message, {1, 2, 3})
    second.seq = 41
    _merge(second, message, {1, 2})

    a, b = first.take(), second.take()

    assert a.rows_shared and a.rows is message["rows"] and b.rows is message["rows"]
    frames = [json.loads(delta_text(a)), json.loads(delta_text(b))]
    assert [frame.pop("seq") for frame in frames] == [1, 42]
    assert (
        frames[0]
        == frames[1]
        == {
            "type": "delta",
            "rows": [{"instrument_token": 1, "last_price": 1.5}, {"instrument_token": 2, "last_price": 2.5}],
            "bars": {"1": [60, 1.5, 1.5, 1.5, 1.5, 1]},
            "chains": {"NIFTY:2026-12-01": {"forward": 150.0}},
            "received_at": 1.5,
            "newest_received_at": 1.5,
        }
    )


def test_a_connection_behind_conflates_shared_messages_as_before() -> None:
    conflator = Conflator()
    first, second = _step(1.0), _step(2.0)
    _merge(conflator, first, {1, 2})
    _merge(conflator, second, {1})  # token 2 no longer wanted: the rest of the first stays

    delta = conflator.take()

    assert not delta.rows_shared and first["rows"] == _step(1.0)["rows"]  # the shared lists untouched
    assert json.loads(delta_text(delta))["rows"] == [
        {"instrument_token": 1, "last_price": 2.0},
        {"instrument_token": 2, "last_price": 2.0},
    ]
    assert (delta.received_at, delta.newest_received_at) == (1.0, 2.0)
    assert delta.chains == {"NIFTY:2026-12-01": {"forward": 200.0}}


def test_a_message_with_unwanted_tokens_is_filtered_not_shared() -> None:
    conflator = Conflator()
    _merge(conflator, _step(3.0), {2})

    delta = conflator.take()

    assert not delta.rows_shared
    assert json.loads(delta_text(delta))["rows"] == [{"instrument_token": 2, "last_price": 4.0}]
    assert delta.bars == {}


def _flush(budget: SendBudget, arrivals: list[tuple[float, float | None]]) -> list[float]:
    """When each frame went out, as the flush loop sends: arrivals are (web time, feed time); a wait
    ends early when a frame arrives, and a delta carries every frame that arrived before it went."""
    went_out: list[float] = []
    clock = 0.0
    while len(went_out) < len(arrivals):
        clock = max(clock, arrivals[len(went_out)][0])
        while (delay := budget.wait(clock, _newest(arrivals, clock))) > 0:
            clock = min(clock + delay, min((at for at, _ in arrivals if at > clock), default=clock + delay))
        budget.spend()
        went_out += [clock] * sum(1 for web_at, _ in arrivals[len(went_out) :] if web_at <= clock)
    return went_out


def _newest(arrivals: list[tuple[float, float | None]], clock: float) -> float | None:
    return max((frame_at for web_at, frame_at in arrivals if web_at <= clock and frame_at), default=None)


def test_a_late_delivery_does_not_hold_back_the_deltas_after_it() -> None:
    # 10 frames a second, exactly the budget; the web process handled frame 3 40 ms late.
    arrivals = [(n / 10 + (0.04 if n == 3 else 0.0), n / 10) for n in range(1, 30)]
    went_out = _flush(SendBudget(interval=0.1, burst=1, wall_at=0.0), arrivals)

    assert [round(out - web_at, 9) for out, (web_at, _) in zip(went_out, arrivals, strict=True)] == [0] * 29


def test_on_the_wall_clock_alone_that_delay_would_have_stuck() -> None:
    arrivals = [(n / 10 + (0.04 if n == 3 else 0.0), None) for n in range(1, 30)]
    went_out = _flush(SendBudget(interval=0.1, burst=1, wall_at=0.0), arrivals)

    lags = [round(out - web_at, 3) for out, (web_at, _) in zip(went_out, arrivals, strict=True)]
    # every delta after the late one waits as long: what the feed's clock is there for
    assert lags == [0.0] * 3 + [0.04] * 26


def test_frames_faster_than_the_budget_are_conflated_to_its_rate() -> None:
    jitter = random.Random(7)
    arrivals = [(n / 40 + jitter.uniform(0, 0.02), n / 40) for n in range(1, 401)]  # 40 a second, 10 s
    sends = sorted(set(_flush(SendBudget(interval=0.1, burst=2, wall_at=0.0), arrivals)))

    assert 95 <= len(sends) <= 2 + 10 / 0.1  # the burst, then one per interval


def test_a_delta_counts_the_messages_folded_into_it_and_keeps_the_oldest_publishing_time() -> None:
    """For stream_deltas_conflated_total and stream_send_lag_seconds (ticks.stream_metrics)."""
    conflator = Conflator()
    conflator.merge([1], ['{"instrument_token":1}'], wanted={1}, published_at=10.0)
    alone = conflator.take()
    for published_at in (11.0, 12.0, 13.0):
        conflator.merge([1], ['{"instrument_token":1}'], wanted={1}, published_at=published_at)
    conflator.merge([2], ['{"instrument_token":2}'], wanted={1}, published_at=14.0)  # nothing wanted
    folded = conflator.take()

    assert alone is not None and (alone.conflated, alone.published_at) == (0, 10.0)
    assert folded is not None and (folded.conflated, folded.published_at) == (2, 11.0)
