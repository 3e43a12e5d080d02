"""The bulk upsert: insert, replace, all or none, and a settled bar kept from a live rewrite."""

from datetime import UTC, datetime

import pytest

from tests.ticks.bars.test_aggregator import T0
from ticks.bars.records import BarRecord
from ticks.bars.services import ROWS_PER_STATEMENT, bars_upsert
from ticks.models import Bar

pytestmark = pytest.mark.django_db
TOKEN = 12_345_678


def _bar(minute: int, close: float, *, settled: bool = False, token: int = TOKEN) -> BarRecord:
    source = "kite" if settled else "live"
    return BarRecord(token, "minute", T0 + 60 * minute, 10.0, 12.0, 9.0, close, 5, 7, 3, source, settled)


def _stored() -> list[tuple]:
    return list(Bar.objects.order_by("start").values_list("start", "close", "source", "settled"))


def test_new_bars_are_inserted_and_the_same_keys_replace_them() -> None:
    bars_upsert(records=[_bar(0, 10.5), _bar(1, 11.0)])
    bars_upsert(records=[_bar(1, 11.5)])

    at = datetime.fromtimestamp(T0, UTC)
    assert _stored() == [(at, 10.5, "live", False), (at.replace(minute=at.minute + 1), 11.5, "live", False)]


def test_a_settled_bar_is_replaced_only_by_a_settled_one() -> None:
    bars_upsert(records=[_bar(0, 10.5, settled=True)])

    bars_upsert(records=[_bar(0, 99.0)])  # a live write retried after settlement
    kept = _stored()
    bars_upsert(records=[_bar(0, 10.75, settled=True)])  # Kite's candle again

    assert [row[1:] for row in kept] == [(10.5, "kite", True)]
    assert [row[1:] for row in _stored()] == [(10.75, "kite", True)]


def test_more_rows_than_one_statement_holds_are_all_written() -> None:
    count = 2 * ROWS_PER_STATEMENT + 7
    assert bars_upsert(records=[_bar(0, 1.0, token=TOKEN + k) for k in range(count)]) == count
    assert Bar.objects.count() == count
    assert bars_upsert(records=[]) == 0
