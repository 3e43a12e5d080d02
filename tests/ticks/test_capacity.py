"""The capacity report (pure): what fits the healthy accounts, in priority order, and the message."""

import pytest

from ticks.feeds.capacity import CapacityReport, UnderlyingNeed, capacity_report
from ticks.feeds.planner import AccountCapacity


def kite_accounts(count: int, *, healthy: bool = True) -> list[AccountCapacity]:
    return [AccountCapacity(account_id, healthy) for account_id in range(1, count + 1)]


def test_the_issue_example_needs_five_accounts_and_names_what_is_left_out() -> None:
    needs = [UnderlyingNeed(f"U{i}", 8_260) for i in range(5)]  # 41,300 tokens

    report = capacity_report(needs, kite_accounts(3))

    assert report == CapacityReport(
        needed=41_300,
        capacity=27_000,
        accounts=3,
        accounts_needed=5,
        per_account=9_000,
        streamed=("U0", "U1", "U2"),
        not_streamed=("U3", "U4"),
        reserve=0,
        connections=3,
        per_connection=3_000,
    )
    assert report.message() == (
        "this list needs 41,300 tokens = 5 accounts at 3 x 3,000; you have 3: "
        "these underlyings will not be streamed: U3, U4"
    )


def test_everything_fits() -> None:
    report = capacity_report([UnderlyingNeed("NIFTY", 4_000, 2)], kite_accounts(1))

    assert report.not_streamed == ()
    assert report.reserve == 12  # 2 x 2 companions x 3 connections
    assert report.message() == (
        "this list needs 4,000 tokens (+12 held for companion copies) = 1 account at 3 x 3,000; "
        "you have 1: every underlying fits (9,000 tokens of capacity)"
    )


def test_only_healthy_accounts_with_connections_count() -> None:
    accounts = [
        AccountCapacity(1, True, 2, 100),
        AccountCapacity(2, False, 3, 3000),
        AccountCapacity(3, True, 0, 3000),
    ]

    report = capacity_report([UnderlyingNeed("A", 150), UnderlyingNeed("B", 100)], accounts)

    assert (report.capacity, report.accounts, report.connections, report.per_connection) == (200, 1, 2, 100)
    assert (report.streamed, report.not_streamed, report.accounts_needed) == (("A",), ("B",), 2)


def test_an_underlying_that_does_not_fit_whole_stops_the_list_even_if_a_later_one_would_fit() -> None:
    # The planner hands the leftover room to the first group that does not fit, so "C" would get scraps.
    needs = [UnderlyingNeed("A", 5_000), UnderlyingNeed("B", 5_000), UnderlyingNeed("C", 10)]

    report = capacity_report(needs, kite_accounts(1))

    assert (report.streamed, report.not_streamed) == (("A",), ("B", "C"))


@pytest.mark.parametrize(("tokens", "fits"), [(9_000 - 18, True), (9_000 - 17, False)])
def test_the_companion_reserve_is_taken_off_the_capacity(tokens: int, fits: bool) -> None:
    report = capacity_report([UnderlyingNeed("A", tokens, 3)], kite_accounts(1))

    assert report.reserve == 18
    assert (report.not_streamed == ()) is fits
    assert report.accounts_needed == (1 if fits else 2)


def test_no_healthy_account_streams_nothing_and_counts_in_kite_accounts() -> None:
    report = capacity_report([UnderlyingNeed("A", 10)], kite_accounts(2, healthy=False))

    assert (report.capacity, report.accounts, report.accounts_needed) == (0, 0, 1)
    assert report.not_streamed == ("A",)
    assert (
        "= 1 account at 3 x 3,000; you have 0: these underlyings will not be streamed: A" in report.message()
    )


def test_a_long_list_is_cut_in_the_message_but_not_in_the_report() -> None:
    needs = [UnderlyingNeed(f"S{i:02d}", 1) for i in range(25)]

    report = capacity_report(needs, [])

    assert len(report.not_streamed) == 25
    assert report.message().endswith("S17, S18, S19 and 5 more")


def test_an_empty_list_needs_nothing() -> None:
    report = capacity_report([], kite_accounts(1))

    assert (report.needed, report.accounts_needed, report.streamed, report.not_streamed) == (0, 0, (), ())
