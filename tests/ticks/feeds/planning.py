"""Helpers for the planner's tests: building inputs and checking the invariants every plan keeps."""

from collections import Counter, defaultdict
from collections.abc import Sequence

from ticks.feeds.planner import AccountCapacity, DesiredGroup, Plan, PlanResult


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
