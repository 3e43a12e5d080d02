"""The planner at fleet scale (hypothesis): 100 underlyings of 1-3 expiry groups (100-300 groups) on
5-10 accounts, with chains shaped like the real dump's (a few to 40 strikes, CE and PE, ATM +- N), each
group carrying the underlying's spot and near future and its own same-expiry future as companions."""

from dataclasses import dataclass

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.ticks.feeds.planning import assert_valid, primaries, unplaced
from ticks.feeds.capacity import UnderlyingNeed, capacity_report
from ticks.feeds.planner import AccountCapacity, DesiredGroup, plan_assign, plan_diff

UNDERLYINGS = 100
COMPANION_BASE = 10_000_000  # companions far above option tokens


@dataclass(frozen=True)
class Chain:
    """One underlying's expiry: ``strikes`` listed strikes, CE/PE tokens ``first + 2 * i + leg``."""

    underlying: int
    expiry: int
    strikes: int
    first: int

    def group(self, n: int, shift: int = 0) -> DesiredGroup:
        centre = min(self.strikes // 2 + shift, self.strikes - 1)
        low, high = max(0, centre - n), min(self.strikes, centre + n + 1)
        options = frozenset(range(self.first + 2 * low, self.first + 2 * high))
        spot, near = COMPANION_BASE + 10 * self.underlying, COMPANION_BASE + 10 * self.underlying + 1
        same_expiry = COMPANION_BASE + 10 * self.underlying + 2 + self.expiry
        return DesiredGroup(
            f"U{self.underlying}:{self.expiry}", options, frozenset({spot, near, same_expiry})
        )


@dataclass(frozen=True)
class Fleet:
    chains: tuple[Chain, ...]
    n: int

    def groups(self, shift: int = 0) -> list[DesiredGroup]:
        return [chain.group(self.n, shift) for chain in self.chains]


@st.composite
def fleets_of_chains(draw: st.DrawFn) -> Fleet:
    expiries = draw(st.lists(st.integers(1, 3), min_size=UNDERLYINGS, max_size=UNDERLYINGS))
    sizes = draw(st.lists(st.integers(3, 40), min_size=sum(expiries), max_size=sum(expiries)))
    chains, first = [], 0
    pairs = [(u, e) for u, count in enumerate(expiries) for e in range(count)]
    for (underlying, expiry), strikes in zip(pairs, sizes, strict=True):
        chains.append(Chain(underlying, expiry, strikes, first))
        first += 2 * strikes
    return Fleet(tuple(chains), draw(st.integers(1, 8)))


def accounts(per_connection: st.SearchStrategy[int]) -> st.SearchStrategy[list[AccountCapacity]]:
    one = st.tuples(st.integers(1, 3), per_connection)
    return st.lists(one, min_size=5, max_size=10).map(
        lambda shapes: [AccountCapacity(i, True, c, p) for i, (c, p) in enumerate(shapes, start=1)]
    )


TIGHT = accounts(st.integers(20, 400))  # often short of the fleet's 1,000-20,000 tokens
ROOMY = accounts(st.integers(1_000, 3_000))  # always enough


def needs(groups: list[DesiredGroup]) -> list[UnderlyingNeed]:
    """The capacity report's count of the same groups: per underlying, options plus companions per group."""
    by_underlying: dict[str, list[DesiredGroup]] = {}
    for group in groups:
        by_underlying.setdefault(group.underlying_key.split(":")[0], []).append(group)
    return [
        UnderlyingNeed(
            key,
            sum(len(g.option_tokens) + len(g.companion_tokens) for g in own),
            max(len(g.companion_tokens) for g in own),
        )
        for key, own in by_underlying.items()
    ]


@settings(max_examples=60, deadline=None)
@given(fleet=fleets_of_chains(), fleet_accounts=TIGHT)
def test_every_token_is_primary_once_and_no_connection_overflows(
    fleet: Fleet, fleet_accounts: list[AccountCapacity]
) -> None:
    groups = fleet.groups()

    result = plan_assign(groups, fleet_accounts, None)

    assert_valid(groups, fleet_accounts, result)  # once as primary, capacity, companions alongside


@settings(max_examples=40, deadline=None)
@given(fleet=fleets_of_chains(), fleet_accounts=TIGHT)
def test_re_planning_unchanged_inputs_moves_nothing(
    fleet: Fleet, fleet_accounts: list[AccountCapacity]
) -> None:
    groups = fleet.groups()
    first = plan_assign(groups, fleet_accounts, None)

    again = plan_assign(groups, fleet_accounts, first.plan)

    assert again.moved == frozenset()
    assert again.plan == first.plan
    assert plan_diff(first.plan, again.plan) == {}


@settings(max_examples=40, deadline=None)
@given(fleet=fleets_of_chains(), fleet_accounts=ROOMY)
def test_a_re_centre_by_one_strike_moves_only_the_tokens_that_left_or_entered(
    fleet: Fleet, fleet_accounts: list[AccountCapacity]
) -> None:
    before, after = fleet.groups(), fleet.groups(shift=1)
    first = plan_assign(before, fleet_accounts, None)
    assume(not first.errors)

    second = plan_assign(after, fleet_accounts, first.plan)

    assert_valid(after, fleet_accounts, second)
    assert second.errors == ()
    assert second.moved == frozenset()
    old, new = primaries(first.plan), primaries(second.plan)
    assert all(new[token] == where for token, where in old.items() if token in new)
    options_before = set().union(*(g.option_tokens for g in before))
    options_after = set().union(*(g.option_tokens for g in after))
    companions = set().union(*(g.companion_tokens for g in after))
    for diff in plan_diff(first.plan, second.plan).values():
        assert diff.subscribe <= (options_after - options_before) | companions
        assert diff.unsubscribe <= (options_before - options_after) | companions


@settings(max_examples=60, deadline=None)
@given(fleet=fleets_of_chains(), fleet_accounts=TIGHT | ROOMY)
def test_what_the_capacity_report_streams_a_fresh_plan_places_whole(
    fleet: Fleet, fleet_accounts: list[AccountCapacity]
) -> None:
    groups = fleet.groups()
    report = capacity_report(needs(groups), fleet_accounts)

    result = plan_assign(groups, fleet_accounts, None)

    missing = unplaced(result)
    streamed = set(report.streamed)
    for group in groups:
        if group.underlying_key.split(":")[0] in streamed:
            assert not (group.option_tokens | group.companion_tokens) & missing
    if not report.not_streamed:
        assert result.errors == ()
    if result.errors:
        assert report.not_streamed
