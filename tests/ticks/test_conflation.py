"""Per-connection conflation and the delta frame built from pre-encoded rows (pure: no Redis)."""

import json

from ticks.conflation import Conflator
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
