import random
from collections import Counter

import pytest

from tests.ticks.feeds.planning import accounts, assert_valid, by_connection, group, primaries
from ticks.feeds.planner import (
    AccountCapacity,
    Assignment,
    ConnectionDiff,
    DesiredGroup,
    PlanResult,
    plan_assign,
    plan_diff,
)

NIFTY_INDEX, NIFTY_FUT = 256265, 13238786
BANKNIFTY_INDEX, BANKNIFTY_FUT = 260105, 13238530
COMPANION = 50_000_000  # above every option token used here


# --- placement ----------------------------------------------------------------------------------


def test_an_empty_desire_plans_nothing() -> None:
    assert plan_assign([], accounts(1), None) == PlanResult(plan=(), errors=(), moved=frozenset())
    assert plan_assign([], [], None) == PlanResult(plan=(), errors=(), moved=frozenset())


def test_a_small_group_lands_on_one_connection_with_its_companions() -> None:
    nifty = group("NIFTY", range(1, 101), [NIFTY_INDEX, NIFTY_FUT])
    result = plan_assign([nifty], accounts(1, 2), None)
    assert_valid([nifty], accounts(1, 2), result)
    assert by_connection(result.plan) == {(1, 0): set(range(1, 101)) | {NIFTY_INDEX, NIFTY_FUT}}
    assert all(row.primary for row in result.plan)
    assert result.errors == () and result.moved == frozenset()


def test_groups_spread_over_accounts_least_loaded_first() -> None:
    groups = [group(f"U{i}", range(i * 100, i * 100 + 10), [10_000 + i]) for i in range(4)]
    fleet = accounts(3, 1, 2)
    result = plan_assign(groups, fleet, None)
    assert_valid(groups, fleet, result)
    home = primaries(result.plan)
    assert [home[i * 100] for i in range(4)] == [(1, 0), (2, 0), (3, 0), (1, 0)]


def test_a_group_goes_whole_to_a_bigger_connection_rather_than_split() -> None:
    fleet = [AccountCapacity(1, True, 1, 10), AccountCapacity(2, True, 1, 100)]
    nifty = group("NIFTY", range(1, 51), [NIFTY_INDEX])
    result = plan_assign([nifty], fleet, None)
    assert set(by_connection(result.plan)) == {(2, 0)}


def test_a_group_larger_than_a_connection_carries_companions_on_each() -> None:
    nifty = group("NIFTY", range(1, 5001), [NIFTY_INDEX, NIFTY_FUT])
    fleet = accounts(1, 2)
    result = plan_assign([nifty], fleet, None)
    assert_valid([nifty], fleet, result)
    carriers = by_connection(result.plan)
    assert len(carriers) == 2
    assert all({NIFTY_INDEX, NIFTY_FUT} <= tokens for tokens in carriers.values())
    copies = Counter(row.token for row in result.plan if not row.primary)
    assert copies == {NIFTY_INDEX: 1, NIFTY_FUT: 1}


def test_a_companion_shared_by_two_expiries_is_primary_once() -> None:
    weekly = group("NIFTY:W", range(1, 2999), [NIFTY_INDEX, 90_000])
    monthly = group("NIFTY:M", range(5000, 7998), [NIFTY_INDEX, 90_001])
    fleet = accounts(1)
    result = plan_assign([weekly, monthly], fleet, None)
    assert_valid([weekly, monthly], fleet, result)
    assert [row.primary for row in result.plan if row.token == NIFTY_INDEX] == [True, False]


def test_companions_of_a_group_without_options_still_stream_once() -> None:
    index_only = group("INDIAVIX", [], [264969])
    result = plan_assign([index_only], accounts(1), None)
    assert result.plan == (Assignment(264969, 1, 0, True),)
    assert plan_assign([index_only], accounts(1), result.plan).plan == result.plan


def test_a_lone_companion_keeps_its_slot_when_a_failed_account_drains_onto_it() -> None:
    groups = [group("NIFTY", range(1, 5), [NIFTY_INDEX]), group("INDIAVIX", [], [264969])]
    first = plan_assign(groups, accounts(1, 2, max_connections=1, per_connection=5), None)
    assert primaries(first.plan)[264969] == (2, 0)
    fleet = [*accounts(1, healthy=False), *accounts(2, max_connections=1, per_connection=5)]
    second = plan_assign(groups, fleet, first.plan)
    assert primaries(second.plan)[264969] == (2, 0)
    assert [error.unplaced for error in second.errors] == [frozenset({4})]


def test_unhealthy_accounts_receive_nothing() -> None:
    fleet = [*accounts(1, healthy=False), *accounts(2), *accounts(3, healthy=False)]
    nifty = group("NIFTY", range(1, 4001), [NIFTY_INDEX])
    result = plan_assign([nifty], fleet, None)
    assert_valid([nifty], fleet, result)
    assert {row.account_id for row in result.plan} == {2}


def test_no_healthy_account_is_one_error_and_an_empty_plan() -> None:
    groups = [
        group("NIFTY", range(1, 11), [NIFTY_INDEX]),
        group("BANKNIFTY", range(20, 25), [BANKNIFTY_INDEX]),
    ]
    for fleet in ([], accounts(1, 2, healthy=False), accounts(1, max_connections=0)):
        result = plan_assign(groups, fleet, None)
        assert result.plan == ()
        (error,) = result.errors
        assert error.kind == "no_healthy_accounts"
        assert error.unplaced == frozenset(range(1, 11)) | frozenset(range(20, 25)) | {
            NIFTY_INDEX,
            BANKNIFTY_INDEX,
        }
        assert "17 tokens" in error.message


# --- capacity -----------------------------------------------------------------------------------


def test_overflow_places_what_fits_and_reports_the_rest_per_group() -> None:
    fleet = accounts(1, max_connections=1, per_connection=10)
    nifty = group("NIFTY", range(1, 21), [NIFTY_INDEX, NIFTY_FUT])
    banknifty = group("BANKNIFTY", range(100, 105), [BANKNIFTY_INDEX])
    result = plan_assign([nifty, banknifty], fleet, None)
    assert_valid([nifty, banknifty], fleet, result)
    assert by_connection(result.plan) == {(1, 0): set(range(1, 9)) | {NIFTY_INDEX, NIFTY_FUT}}
    first, second = result.errors
    assert (first.kind, first.underlying_key, first.unplaced) == (
        "capacity",
        "NIFTY",
        frozenset(range(9, 21)),
    )
    assert "12 of 22 tokens" in first.message
    assert second.underlying_key == "BANKNIFTY"
    assert second.unplaced == frozenset(range(100, 105)) | {BANKNIFTY_INDEX}
    assert "6 of 6 tokens" in second.message


def test_companions_of_a_group_that_does_not_fit_stream_alone_and_stay_put() -> None:
    nifty = group("NIFTY", range(1, 5), [NIFTY_INDEX])
    banknifty = group("BANKNIFTY", range(10, 13), [BANKNIFTY_INDEX, BANKNIFTY_FUT])
    fleet = accounts(1, max_connections=1, per_connection=7)
    first = plan_assign([nifty, banknifty], fleet, None)
    assert by_connection(first.plan) == {(1, 0): {1, 2, 3, 4, NIFTY_INDEX, BANKNIFTY_INDEX, BANKNIFTY_FUT}}
    assert [error.unplaced for error in first.errors] == [frozenset({10, 11, 12})]
    bigger = [*fleet, *accounts(2, max_connections=1, per_connection=2)]
    second = plan_assign([nifty, banknifty], bigger, first.plan)
    assert second.plan == first.plan and second.moved == frozenset()


def test_group_order_is_the_priority_when_capacity_runs_out() -> None:
    fleet = accounts(1, max_connections=1, per_connection=10)
    a, b = group("A", range(1, 10), [1000]), group("B", range(20, 29), [2000])
    assert set(primaries(plan_assign([a, b], fleet, None).plan)) == a.option_tokens | a.companion_tokens
    assert set(primaries(plan_assign([b, a], fleet, None).plan)) == b.option_tokens | b.companion_tokens


def test_a_connection_never_takes_options_without_room_for_their_companions() -> None:
    fleet = accounts(1, max_connections=2, per_connection=5)
    nifty = group("NIFTY", range(1, 5), [NIFTY_INDEX])
    vix = group("VIX", [50, 51], [60, 61, 62, 63])
    result = plan_assign([nifty, vix], fleet, None)
    assert_valid([nifty, vix], fleet, result)
    assert by_connection(result.plan) == {(1, 0): {1, 2, 3, 4, NIFTY_INDEX}, (1, 1): {50, 60, 61, 62, 63}}
    assert [error.unplaced for error in result.errors] == [frozenset({51})]


# --- stickiness ---------------------------------------------------------------------------------


def test_re_planning_the_same_inputs_moves_nothing() -> None:
    groups = [
        group("NIFTY", range(1, 5001), [NIFTY_INDEX, NIFTY_FUT]),
        group("BN", range(6000, 7000), [BANKNIFTY_INDEX]),
    ]
    fleet = accounts(1, 2)
    first = plan_assign(groups, fleet, None)
    again = plan_assign(groups, fleet, first.plan)
    assert again == PlanResult(plan=first.plan, errors=(), moved=frozenset())
    assert plan_diff(first.plan, again.plan) == {}


def test_an_account_turning_unhealthy_moves_only_its_tokens() -> None:
    groups = [group(f"U{i}", range(i * 10_000, i * 10_000 + 2000), [COMPANION + i]) for i in range(6)]
    first = plan_assign(groups, accounts(1, 2, 3), None)
    assert first.errors == ()
    lost = {token for token, (account_id, _) in primaries(first.plan).items() if account_id == 2}
    assert lost
    fleet = [*accounts(1), *accounts(2, healthy=False), *accounts(3)]
    second = plan_assign(groups, fleet, first.plan)
    assert_valid(groups, fleet, second)
    assert second.errors == ()
    assert second.moved == frozenset(lost)
    before, after = primaries(first.plan), primaries(second.plan)
    assert all(after[token] == where for token, where in before.items() if token not in lost)


def test_a_removed_account_is_drained_like_an_unhealthy_one() -> None:
    groups = [group("NIFTY", range(1, 3001), [NIFTY_INDEX])]
    first = plan_assign(groups, accounts(1, 2), None)
    second = plan_assign(groups, accounts(2), first.plan)
    assert {account_id for account_id, _ in primaries(first.plan).values()} == {1, 2}
    assert second.moved == {
        token for token, (account_id, _) in primaries(first.plan).items() if account_id == 1
    }
    assert {row.account_id for row in second.plan} == {2}


def test_a_rebalance_swaps_strikes_on_the_same_connection() -> None:
    fleet = accounts(1, 2)
    nifty, banknifty = (
        group("NIFTY", range(100, 200), [NIFTY_INDEX]),
        group("BN", range(500, 600), [BANKNIFTY_INDEX]),
    )
    first = plan_assign([nifty, banknifty], fleet, None)
    shifted = group("NIFTY", range(110, 210), [NIFTY_INDEX])
    second = plan_assign([shifted, banknifty], fleet, first.plan)
    assert second.moved == frozenset()
    assert plan_diff(first.plan, second.plan) == {
        (1, 0): ConnectionDiff(subscribe=frozenset(range(200, 210)), unsubscribe=frozenset(range(100, 110)))
    }


def test_a_shrunk_connection_sheds_its_highest_tokens() -> None:
    nifty = group("NIFTY", range(1, 11), [NIFTY_INDEX])
    first = plan_assign([nifty], accounts(1, 2, per_connection=20), None)
    fleet = accounts(1, 2, per_connection=6)
    second = plan_assign([nifty], fleet, first.plan)
    assert_valid([nifty], fleet, second)
    assert by_connection(second.plan)[(1, 0)] == {1, 2, 3, 4, 5, NIFTY_INDEX}
    assert second.moved == frozenset(range(6, 11))


def test_connections_beyond_a_lowered_limit_are_drained() -> None:
    groups = [group(f"U{i}", range(i * 100, i * 100 + 5), [9000 + i]) for i in range(3)]
    first = plan_assign(groups, accounts(1, per_connection=6), None)
    assert set(by_connection(first.plan)) == {(1, 0), (1, 1), (1, 2)}
    fleet = [*accounts(1, max_connections=2, per_connection=6), *accounts(2, per_connection=6)]
    second = plan_assign(groups, fleet, first.plan)
    assert second.moved == groups[2].option_tokens | groups[2].companion_tokens
    assert {key for key in by_connection(second.plan) if key[1] == 2} == set()


def test_a_companion_keeps_its_primary_when_a_lower_connection_starts_carrying_it() -> None:
    small = [*accounts(1, healthy=False), *accounts(2, max_connections=1, per_connection=10)]
    first = plan_assign([group("NIFTY", range(1, 10), [NIFTY_INDEX])], small, None)
    assert primaries(first.plan)[NIFTY_INDEX] == (2, 0)
    grown = group("NIFTY", range(1, 13), [NIFTY_INDEX])
    fleet = [*accounts(1), *accounts(2, max_connections=1, per_connection=10)]
    second = plan_assign([grown], fleet, first.plan)
    assert_valid([grown], fleet, second)
    assert by_connection(second.plan)[(1, 0)] == {10, 11, 12, NIFTY_INDEX}
    assert primaries(second.plan)[NIFTY_INDEX] == (2, 0)
    assert second.moved == frozenset()


def test_tokens_no_longer_desired_are_dropped_without_counting_as_moved() -> None:
    fleet = accounts(1)
    first = plan_assign([group("NIFTY", range(1, 11), [NIFTY_INDEX])], fleet, None)
    second = plan_assign([group("NIFTY", range(1, 6), [NIFTY_INDEX])], fleet, first.plan)
    assert set(primaries(second.plan)) == {1, 2, 3, 4, 5, NIFTY_INDEX}
    assert second.moved == frozenset()


def test_a_corrupt_previous_plan_is_tolerated() -> None:
    nifty = group("NIFTY", range(1, 4), [NIFTY_INDEX])
    previous = (
        Assignment(1, 1, 1, True),
        Assignment(1, 1, 0, True),  # a second primary: the lowest location wins
        Assignment(2, 7, 0, True),  # an account that no longer exists
        Assignment(3, 1, 9, True),  # a connection beyond the limit
        Assignment(99, 1, 0, True),  # no longer desired
    )
    fleet = accounts(1)
    result = plan_assign([nifty], fleet, previous)
    assert_valid([nifty], fleet, result)
    assert primaries(result.plan)[1] == (1, 0)
    assert result.moved == frozenset({2, 3})


# --- determinism and validation -----------------------------------------------------------------


def test_the_plan_does_not_depend_on_account_order_or_set_construction() -> None:
    groups = [
        group(f"U{i}", range(i * 10_000, i * 10_000 + 1500), [COMPANION + i, COMPANION + 99])
        for i in range(5)
    ]
    fleet = accounts(4, 2, 9, per_connection=1000)
    expected = plan_assign(groups, fleet, None)
    shuffled = list(fleet)
    random.Random(7).shuffle(shuffled)
    rebuilt = [
        DesiredGroup(g.underlying_key, frozenset(sorted(g.option_tokens, reverse=True)), g.companion_tokens)
        for g in groups
    ]
    assert plan_assign(rebuilt, shuffled, None) == expected


@pytest.mark.parametrize(
    ("groups", "fleet", "argument"),
    [
        ([group("A", [1]), group("A", [2])], accounts(1), "groups"),
        ([group("A", [1]), group("B", [1])], accounts(1), "groups"),
        ([group("A", [1], [2]), group("B", [2])], accounts(1), "groups"),
        ([group("A", [1])], accounts(1, 1), "accounts"),
        ([group("A", [1])], accounts(1, per_connection=0), "accounts"),
        ([group("A", [1])], accounts(1, max_connections=-1), "accounts"),
    ],
)
def test_inconsistent_inputs_are_refused(
    groups: list[DesiredGroup], fleet: list[AccountCapacity], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        plan_assign(groups, fleet, None)


# --- the diff -----------------------------------------------------------------------------------


def test_the_diff_from_nothing_subscribes_everything() -> None:
    plan = plan_assign([group("NIFTY", range(1, 5001), [NIFTY_INDEX])], accounts(1), None).plan
    diff = plan_diff((), plan)
    assert {key: d.subscribe for key, d in diff.items()} == {
        k: frozenset(v) for k, v in by_connection(plan).items()
    }
    assert all(d.unsubscribe == frozenset() for d in diff.values())
    assert plan_diff(plan, ()) == {key: ConnectionDiff(frozenset(), d.subscribe) for key, d in diff.items()}


def test_a_moved_token_is_subscribed_at_its_new_home_and_dropped_at_its_old() -> None:
    old = (Assignment(5, 1, 0, True), Assignment(6, 1, 0, True))
    new = (Assignment(5, 1, 0, True), Assignment(6, 2, 1, True))
    assert plan_diff(old, new) == {
        (1, 0): ConnectionDiff(subscribe=frozenset(), unsubscribe=frozenset({6})),
        (2, 1): ConnectionDiff(subscribe=frozenset({6}), unsubscribe=frozenset()),
    }


def test_a_primary_flag_change_alone_is_no_subscription_change() -> None:
    old = (Assignment(5, 1, 0, True), Assignment(5, 1, 1, False))
    new = (Assignment(5, 1, 0, False), Assignment(5, 1, 1, True))
    assert plan_diff(old, new) == {}


# --- a full fleet ---------------------------------------------------------------------------------


def test_three_accounts_filled_to_the_last_slot() -> None:
    groups = [
        group(f"U{i}", range(i * 10_000, i * 10_000 + 2998), [COMPANION + i, COMPANION + 50 + i])
        for i in range(9)
    ]
    fleet = accounts(1, 2, 3)
    result = plan_assign(groups, fleet, None)
    assert_valid(groups, fleet, result)
    assert result.errors == ()
    assert len(result.plan) == 27_000
    carriers = by_connection(result.plan)
    assert len(carriers) == 9 and all(len(tokens) == 3000 for tokens in carriers.values())
    assert all(row.primary for row in result.plan)  # each group fits one connection: no copies
    again = plan_assign(groups, fleet, result.plan)
    assert again.plan == result.plan and again.moved == frozenset()
    one_more = plan_assign([*groups, group("EXTRA", [COMPANION - 1])], fleet, result.plan)
    assert one_more.plan == result.plan
    assert [(e.underlying_key, e.unplaced) for e in one_more.errors] == [
        ("EXTRA", frozenset({COMPANION - 1}))
    ]


def test_three_underlyings_of_nine_thousand_each_span_the_fleet() -> None:
    groups = [
        group(f"U{i}", range(i * 100_000, i * 100_000 + 8990), [COMPANION + i, COMPANION + 50 + i])
        for i in range(3)
    ]
    fleet = accounts(1, 2, 3)
    result = plan_assign(groups, fleet, None)
    assert_valid(groups, fleet, result)
    assert result.errors == ()
    assert sorted(by_connection(result.plan)) == [(a, c) for a in (1, 2, 3) for c in range(3)]
    assert sum(row.primary for row in result.plan) == 3 * 8992
