"""The planner's invariants over generated fleets and desires (hypothesis)."""

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.ticks.feeds.planning import assert_valid, by_connection, group, primaries
from ticks.feeds.planner import (
    AccountCapacity,
    Assignment,
    DesiredGroup,
    Plan,
    PlanResult,
    plan_assign,
    plan_diff,
)

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
