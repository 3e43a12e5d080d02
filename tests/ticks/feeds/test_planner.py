import random
from collections import Counter, defaultdict
from collections.abc import Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ticks.feeds.planner import (
    AccountCapacity,
    Assignment,
    ConnectionDiff,
    DesiredGroup,
    Plan,
    PlanResult,
    plan_assign,
    plan_diff,
)

NIFTY_INDEX, NIFTY_FUT = 256265, 13238786
BANKNIFTY_INDEX, BANKNIFTY_FUT = 260105, 13238530
COMPANION = 50_000_000  # above every option token used here


def group(key: str, options: range | Sequence[int], companions: Sequence[int] = ()) -> DesiredGroup:
    return DesiredGroup(key, frozenset(options), frozenset(companions))


def accounts(
    *ids: int, healthy: bool = True, max_connections: int = 3, per_connection: int = 3000
) -> list[AccountCapacity]:
    return [AccountCapacity(i, healthy, max_connections, per_connection) for i in ids]


def primaries(plan: Plan) -> dict[int, tuple[int, int]]:
    return {row.token: (row.account_id, row.connection) for row in plan if row.primary}


def by_connection(plan: Plan) -> dict[tuple[int, int], set[int]]:
    tokens: dict[tuple[int, int], set[int]] = defaultdict(set)
    for row in plan:
        tokens[(row.account_id, row.connection)].add(row.token)
    return dict(tokens)


def unplaced(result: PlanResult) -> set[int]:
    return set().union(*(error.unplaced for error in result.errors))


def assert_valid(
    groups: Sequence[DesiredGroup], fleet: Sequence[AccountCapacity], result: PlanResult
) -> None:
    """Every invariant a plan must hold, whatever its inputs."""
    plan = result.plan
    assert list(plan) == sorted(plan, key=lambda r: (r.account_id, r.connection, r.token))
    assert len({(r.account_id, r.connection, r.token) for r in plan}) == len(plan)
    _assert_capacity(fleet, plan)
    _assert_exactly_once(groups, result)
    _assert_companions_ride_along(groups, plan)


def _assert_capacity(fleet: Sequence[AccountCapacity], plan: Plan) -> None:
    specs = {spec.account_id: spec for spec in fleet}
    for (account_id, connection), tokens in by_connection(plan).items():
        spec = specs[account_id]
        assert spec.healthy
        assert 0 <= connection < spec.max_connections
        assert len(tokens) <= spec.tokens_per_connection


def _assert_exactly_once(groups: Sequence[DesiredGroup], result: PlanResult) -> None:
    wanted = set().union(*(g.option_tokens | g.companion_tokens for g in groups))
    counts = Counter(row.token for row in result.plan if row.primary)
    assert all(count == 1 for count in counts.values())
    missing = unplaced(result)
    assert set(counts) | missing == wanted
    assert not set(counts) & missing
    assert sum(len(error.unplaced) for error in result.errors) == len(missing)
    for error in result.errors:
        assert str(len(error.unplaced)) in error.message
    assert {row.token for row in result.plan} <= set(counts)


def _assert_companions_ride_along(groups: Sequence[DesiredGroup], plan: Plan) -> None:
    carried = by_connection(plan)
    needed: dict[tuple[int, int], set[int]] = defaultdict(set)
    option_group = {token: g for g in groups for token in g.option_tokens}
    for row in plan:
        if row.token in option_group:
            needed[(row.account_id, row.connection)] |= option_group[row.token].companion_tokens
    for key, companions in needed.items():
        assert companions <= carried[key]
    for row in plan:
        if not row.primary:
            assert row.token in needed[(row.account_id, row.connection)]


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


# --- properties ---------------------------------------------------------------------------------

COMPANIONS = range(10_000, 10_006)


@st.composite
def desires(draw: st.DrawFn) -> list[DesiredGroup]:
    """Up to 5 groups sharing up to 80 options at random and drawing companions from one small pool."""
    count = draw(st.integers(0, 5))
    if count == 0:
        return []
    owners = draw(st.lists(st.integers(0, count - 1), max_size=80))
    groups = []
    for index in range(count):
        mine = [token for token, owner in enumerate(owners, start=1) if owner == index]
        companions = draw(st.sets(st.sampled_from(COMPANIONS), max_size=3))
        groups.append(group(f"U{index}", mine, sorted(companions)))
    return groups


SMALL_CONNECTIONS = st.integers(1, 16)  # small, so that groups often span connections
ANY_HEALTH = st.booleans()
ANY_CONNECTION_LIMIT = st.integers(0, 3)


@st.composite
def fleets(
    draw: st.DrawFn,
    per_connection: st.SearchStrategy[int] = SMALL_CONNECTIONS,
    healthy: st.SearchStrategy[bool] = ANY_HEALTH,
    connections: st.SearchStrategy[int] = ANY_CONNECTION_LIMIT,
) -> list[AccountCapacity]:
    ids = draw(st.permutations(range(1, 7)))[: draw(st.integers(0, 4))]
    return [AccountCapacity(i, draw(healthy), draw(connections), draw(per_connection)) for i in ids]


junk_plans = st.lists(
    st.builds(
        Assignment,
        st.integers(1, 300) | st.sampled_from(COMPANIONS),
        st.integers(1, 6),
        st.integers(0, 3),
        st.booleans(),
    ),
    max_size=40,
).map(tuple)


@settings(max_examples=200, deadline=None)
@given(before=desires(), old_fleet=fleets(), groups=desires(), fleet=fleets())
def test_any_re_plan_is_valid_and_reports_moves(
    before: list[DesiredGroup],
    old_fleet: list[AccountCapacity],
    groups: list[DesiredGroup],
    fleet: list[AccountCapacity],
) -> None:
    previous = plan_assign(before, old_fleet, None).plan
    result = plan_assign(groups, fleet, previous)
    assert_valid(groups, fleet, result)
    old, new = primaries(previous), primaries(result.plan)
    assert result.moved == {token for token, where in new.items() if old.get(token, where) != where}


@settings(max_examples=100, deadline=None)
@given(groups=desires(), fleet=fleets(), previous=junk_plans)
def test_any_previous_plan_yields_a_valid_plan(
    groups: list[DesiredGroup], fleet: list[AccountCapacity], previous: Plan
) -> None:
    assert_valid(groups, fleet, plan_assign(groups, fleet, previous))


@settings(max_examples=200, deadline=None)
@given(groups=desires(), fleet=fleets())
def test_re_planning_is_a_fixed_point(groups: list[DesiredGroup], fleet: list[AccountCapacity]) -> None:
    first = plan_assign(groups, fleet, None)
    assert plan_assign(groups, fleet, None) == first
    assert plan_assign(groups, fleet, first.plan) == PlanResult(first.plan, first.errors, frozenset())


@settings(max_examples=200, deadline=None)
@given(groups=desires(), fleet=fleets(per_connection=st.integers(6, 40)), data=st.data())
def test_losing_an_account_moves_only_its_tokens(
    groups: list[DesiredGroup], fleet: list[AccountCapacity], data: st.DataObject
) -> None:
    first = plan_assign(groups, fleet, None)
    healthy = [spec.account_id for spec in fleet if spec.healthy]
    assume(first.plan and not first.errors)
    lost_account = data.draw(st.sampled_from(healthy))
    after_fleet = [
        AccountCapacity(
            s.account_id,
            s.healthy and s.account_id != lost_account,
            s.max_connections,
            s.tokens_per_connection,
        )
        for s in fleet
    ]
    second = plan_assign(groups, after_fleet, first.plan)
    assert_valid(groups, after_fleet, second)
    before, after = primaries(first.plan), primaries(second.plan)
    lost = {token for token, (account_id, _) in before.items() if account_id == lost_account}
    assert second.moved <= lost
    assert all(after[token] == where for token, where in before.items() if token not in lost)


@settings(max_examples=200, deadline=None)
@given(groups=desires(), data=st.data())
def test_nothing_is_unplaced_when_every_group_fits_its_own_connection(
    groups: list[DesiredGroup], data: st.DataObject
) -> None:
    biggest = max((len(g.option_tokens | g.companion_tokens) for g in groups), default=1)
    per_connection = st.integers(max(biggest, 1), biggest + 5)
    fleet = data.draw(
        fleets(per_connection=per_connection, healthy=st.just(True), connections=st.integers(1, 3))
    )
    assume(groups and len(groups) <= sum(spec.max_connections for spec in fleet))
    assert plan_assign(groups, fleet, None).errors == ()


@settings(max_examples=100, deadline=None)
@given(old_groups=desires(), groups=desires(), fleet=fleets())
def test_applying_the_diff_turns_the_old_subscriptions_into_the_new(
    old_groups: list[DesiredGroup], groups: list[DesiredGroup], fleet: list[AccountCapacity]
) -> None:
    old = plan_assign(old_groups, fleet, None).plan
    new = plan_assign(groups, fleet, old).plan
    current = by_connection(old)
    for key, diff in plan_diff(old, new).items():
        assert diff.subscribe or diff.unsubscribe
        assert not diff.subscribe & current.get(key, set())
        assert diff.unsubscribe <= current.get(key, set())
        current[key] = (current.get(key, set()) | diff.subscribe) - diff.unsubscribe
    assert {key: tokens for key, tokens in current.items() if tokens} == by_connection(new)
