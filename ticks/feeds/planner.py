"""Token assignment for the feed fleet: which account and connection streams each instrument token.

Pure: frozen dataclasses in, frozen dataclasses out; no Django, no Redis, no clock.

Vocabulary:

- A *group* is one underlying's option chain slice (``DesiredGroup``). Its *companions* (the index and
  the same-expiry future) ride on every connection that carries any of its options, so each feed shard
  can compute greeks on its own.
- A token's *primary* copy is the one whose ticks feed bars; there is exactly one per placed token
  across the fleet. Other copies of a companion only feed greeks.
- Connections are numbered ``0 .. max_connections - 1`` per account; a connection with nothing assigned
  does not appear in the plan (the feed pool leaves it closed).

The plan is sticky (a token stays where it is unless its account fails or its connection overflows), so
re-planning with unchanged inputs moves nothing and the feeds apply no diff.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Literal, NamedTuple

ConnectionKey = tuple[int, int]  # (account_id, connection index)
_NO_GROUP = -1  # lone companions belong to no group's option set


@dataclass(frozen=True)
class DesiredGroup:
    """One underlying's wanted options and the companions (index, same-expiry future) they need."""

    underlying_key: str
    option_tokens: frozenset[int]
    companion_tokens: frozenset[int]


@dataclass(frozen=True)
class AccountCapacity:
    """What one broker account may stream; Kite allows 3 connections of 3000 tokens per API key."""

    account_id: int
    healthy: bool
    max_connections: int = 3
    tokens_per_connection: int = 3000


class Assignment(NamedTuple):
    """One token on one connection. Immutable like the dataclasses here, but a NamedTuple because a
    full fleet builds ~27,000 of them per plan and a frozen dataclass costs twice as much to build."""

    token: int
    account_id: int
    connection: int
    primary: bool


# Sorted by (account_id, connection, token); at most one row per token and connection.
Plan = tuple[Assignment, ...]


@dataclass(frozen=True)
class PlanError:
    kind: Literal["capacity", "no_healthy_accounts"]
    underlying_key: str | None  # None for fleet-wide errors
    unplaced: frozenset[int]
    message: str


@dataclass(frozen=True)
class PlanResult:
    plan: Plan
    errors: tuple[PlanError, ...]
    moved: frozenset[int]  # tokens in both plans whose primary (account, connection) changed


@dataclass(frozen=True)
class ConnectionDiff:
    subscribe: frozenset[int]
    unsubscribe: frozenset[int]


@dataclass(eq=False)
class _Account:
    account_id: int
    capacity: int
    used: int = 0

    def load(self) -> float:
        return self.used / self.capacity


@dataclass(eq=False)
class _Connection:
    account: _Account
    index: int
    capacity: int
    options: list[int] = field(default_factory=list)
    companions: set[int] = field(default_factory=set)  # primary or copy, decided at the end
    groups: set[int] = field(default_factory=set)  # indexes of groups with options here

    @property
    def key(self) -> ConnectionKey:
        return (self.account.account_id, self.index)

    @property
    def free(self) -> int:
        return self.capacity - len(self.options) - len(self.companions)

    def room_for(self, group: int, companions: frozenset[int]) -> int:
        """How many of ``group``'s options fit here once its missing companions are added."""
        if group in self.groups:
            return self.free
        return self.free - len(companions - self.companions)

    def add_options(self, group: int, companions: frozenset[int], tokens: Sequence[int]) -> None:
        before = len(self.companions)
        self.companions |= companions
        self.groups.add(group)
        self.options.extend(tokens)
        self.account.used += len(self.companions) - before + len(tokens)

    def add_companion(self, token: int) -> None:
        if token not in self.companions:
            self.companions.add(token)
            self.account.used += 1


@dataclass(frozen=True)
class _Desired:
    groups: tuple[DesiredGroup, ...]
    group_of_option: Mapping[int, int]
    # Companions whose every group wants no options: they are placed on their own.
    standalone: frozenset[int]

    def companions(self, group: int) -> frozenset[int]:
        return self.groups[group].companion_tokens


@dataclass
class _Placement:
    fleet: dict[ConnectionKey, _Connection]
    home: dict[int, _Connection] = field(default_factory=dict)  # option or standalone token -> primary
    unplaced: dict[int, set[int]] = field(default_factory=dict)  # group -> tokens that did not fit


def plan_assign(
    groups: Sequence[DesiredGroup],
    accounts: Sequence[AccountCapacity],
    previous: Plan | None,
) -> PlanResult:
    """Assign every desired token to one (account, connection) of a healthy account.

    Order of work: keep ``previous`` primaries that are still desired and still fit (connection by
    connection, tokens ascending, so a shrunk connection sheds its highest tokens), then place the rest
    group by group in the order of ``groups`` (the caller's priority when capacity runs out), tokens
    ascending. A group's options go first to connections already carrying it, then to the connection
    that takes the whole remainder on the least-loaded account (tightest fit within it), else to the
    connection with the most room, so a group spans as few connections, and adds as few companion
    copies, as possible. Companions left uncarried (their group wants no options, or none fit) stream on
    their own, where they were if that still fits. What does not fit is reported per group as a capacity
    error, never dropped silently.
    """
    desired = _desired(groups)
    fleet = _fleet(accounts)
    if not fleet:
        return _no_capacity(desired, accounts)
    placement = _Placement(fleet=fleet)
    before = _primaries(previous or ())
    _keep_sticky(desired, placement, before)
    for group in range(len(desired.groups)):
        _place_options(desired, placement, group)
    _place_standalone(desired, placement, before)
    primary_of = _companion_primaries(placement, before)
    return PlanResult(
        plan=_build_plan(placement, primary_of),
        errors=_capacity_errors(desired, placement),
        moved=_moved(placement, primary_of, before),
    )


def plan_diff(old: Plan, new: Plan) -> dict[ConnectionKey, ConnectionDiff]:
    """Per (account, connection), the tokens to subscribe and to unsubscribe to go from ``old`` to ``new``.

    Make-before-break: the caller must apply every ``subscribe`` on every connection before any
    ``unsubscribe``, so a token moving between connections is briefly streamed twice rather than not at
    all. Only connections with a change appear. A change of primary flag alone is not a subscription
    change; the feeds read primary flags from the plan itself.
    """
    old_sets = _tokens_by_connection(old)
    new_sets = _tokens_by_connection(new)
    diffs: dict[ConnectionKey, ConnectionDiff] = {}
    for key in sorted(old_sets.keys() | new_sets.keys()):
        before, after = old_sets.get(key, frozenset()), new_sets.get(key, frozenset())
        if before != after:
            diffs[key] = ConnectionDiff(subscribe=after - before, unsubscribe=before - after)
    return diffs


def _desired(groups: Sequence[DesiredGroup]) -> _Desired:
    keys = [group.underlying_key for group in groups]
    if len(set(keys)) != len(keys):
        raise ValueError("groups: underlying_key values must be unique")
    group_of_option: dict[int, int] = {}
    for index, group in enumerate(groups):
        for token in group.option_tokens:
            if group_of_option.setdefault(token, index) != index:
                raise ValueError(f"groups: option token {token} is listed by more than one group")
    all_companions = frozenset().union(*(group.companion_tokens for group in groups))
    if not all_companions.isdisjoint(group_of_option):
        raise ValueError("groups: a token is both an option and a companion")
    carried = frozenset().union(*(group.companion_tokens for group in groups if group.option_tokens))
    return _Desired(
        groups=tuple(groups), group_of_option=group_of_option, standalone=all_companions - carried
    )


def _fleet(accounts: Sequence[AccountCapacity]) -> dict[ConnectionKey, _Connection]:
    if len({account.account_id for account in accounts}) != len(accounts):
        raise ValueError("accounts: account_id values must be unique")
    fleet: dict[ConnectionKey, _Connection] = {}
    for spec in sorted(accounts, key=lambda spec: spec.account_id):
        if spec.max_connections < 0 or spec.tokens_per_connection < 1:
            raise ValueError(
                f"accounts: account {spec.account_id} needs max_connections >= 0 and tokens_per_connection >= 1"
            )
        if not spec.healthy or spec.max_connections == 0:
            continue
        account = _Account(spec.account_id, capacity=spec.max_connections * spec.tokens_per_connection)
        for index in range(spec.max_connections):
            fleet[(spec.account_id, index)] = _Connection(account, index, spec.tokens_per_connection)
    return fleet


def _no_capacity(desired: _Desired, accounts: Sequence[AccountCapacity]) -> PlanResult:
    wanted = frozenset(desired.group_of_option) | desired.standalone
    wanted |= frozenset().union(*(desired.companions(group) for group in range(len(desired.groups))))
    if not wanted:
        return PlanResult(plan=(), errors=(), moved=frozenset())
    message = (
        f"no healthy account with capacity among {len(accounts)} accounts; {len(wanted)} tokens unplaced"
    )
    error = PlanError(kind="no_healthy_accounts", underlying_key=None, unplaced=wanted, message=message)
    return PlanResult(plan=(), errors=(error,), moved=frozenset())


def _primaries(plan: Iterable[Assignment]) -> dict[int, ConnectionKey]:
    """token -> where its primary sits; a corrupt plan with two primaries keeps the lowest location."""
    primaries: dict[int, ConnectionKey] = {}
    for token, account_id, connection, primary in plan:
        if primary:
            key = (account_id, connection)
            if primaries.setdefault(token, key) > key:
                primaries[token] = key
    return primaries


def _keep_sticky(desired: _Desired, placement: _Placement, before: Mapping[int, ConnectionKey]) -> None:
    """Keep still-desired tokens where they were while they fit, connection by connection, in token order."""
    by_connection: dict[ConnectionKey, list[int]] = {}
    for token, key in before.items():
        if key in placement.fleet and (token in desired.group_of_option or token in desired.standalone):
            by_connection.setdefault(key, []).append(token)
    for key in sorted(by_connection):
        connection, tokens = placement.fleet[key], sorted(by_connection[key])
        if not _keep_all(desired, placement, connection, tokens):
            for token in tokens:
                _keep_one(desired, placement, connection, token)


def _keep_all(desired: _Desired, placement: _Placement, connection: _Connection, tokens: list[int]) -> bool:
    """Fast path for the usual case: everything that was on this (still empty) connection fits again."""
    by_group: dict[int, list[int]] = {}
    lone: list[int] = []
    for token in tokens:
        group = desired.group_of_option.get(token)
        if group is None:
            lone.append(token)
        else:
            by_group.setdefault(group, []).append(token)
    companions = set(lone).union(*(desired.companions(group) for group in by_group))
    if len(tokens) - len(lone) + len(companions) > connection.free:
        return False
    for group, options in by_group.items():
        connection.add_options(group, desired.companions(group), options)
    for token in lone:
        connection.add_companion(token)
    placement.home.update(dict.fromkeys(tokens, connection))
    return True


def _keep_one(desired: _Desired, placement: _Placement, connection: _Connection, token: int) -> None:
    group = desired.group_of_option.get(token)
    if group is None:
        if connection.free >= 1:
            connection.add_companion(token)
            placement.home[token] = connection
        return
    companions = desired.companions(group)
    if connection.room_for(group, companions) >= 1:
        connection.add_options(group, companions, (token,))
        placement.home[token] = connection


def _place_options(desired: _Desired, placement: _Placement, group: int) -> None:
    companions = desired.companions(group)
    pending = sorted(token for token in desired.groups[group].option_tokens if token not in placement.home)
    carriers = sorted((c for c in placement.fleet.values() if group in c.groups), key=_account_order)
    for connection in carriers:
        pending = _fill(placement, connection, group, companions, pending)
    while pending:
        connection = _choose(placement.fleet.values(), group, companions, len(pending))
        if connection is None:
            placement.unplaced.setdefault(group, set()).update(pending)
            return
        pending = _fill(placement, connection, group, companions, pending)


def _fill(
    placement: _Placement, connection: _Connection, group: int, companions: frozenset[int], pending: list[int]
) -> list[int]:
    """Put as many of ``pending`` on ``connection`` as fit; returns the rest."""
    room = connection.room_for(group, companions)
    if room < 1:
        return pending
    taken, rest = pending[:room], pending[room:]
    connection.add_options(group, companions, taken)
    for token in taken:
        placement.home[token] = connection
    return rest


def _choose(
    connections: Iterable[_Connection], group: int, companions: frozenset[int], wanted: int
) -> _Connection | None:
    """Where the next slice of a group goes: a whole fit on the least-loaded account, else the most room."""
    rooms = [(c, c.room_for(group, companions)) for c in connections if group not in c.groups]
    usable = [(c, room) for c, room in rooms if room >= 1]
    if not usable:
        return None
    whole = [(c, room) for c, room in usable if room >= wanted]
    if whole:
        return min(whole, key=lambda item: (*_account_order(item[0]), item[1], item[0].index))[0]
    return min(usable, key=lambda item: (-item[1], *_account_order(item[0]), item[0].index))[0]


def _account_order(connection: _Connection) -> tuple[float, int]:
    return (connection.account.load(), connection.account.account_id)


def _place_standalone(desired: _Desired, placement: _Placement, before: Mapping[int, ConnectionKey]) -> None:
    """Companions no connection carries (their groups want no options, or none fit) go on their own."""
    carried = set().union(*(c.companions for c in placement.fleet.values()))
    for group in range(len(desired.groups)):
        pending = _restore(placement, sorted(desired.companions(group) - carried), before)
        carried.update(desired.companions(group))
        while pending:
            connection = _choose(placement.fleet.values(), _NO_GROUP, frozenset(), len(pending))
            if connection is None:
                placement.unplaced.setdefault(group, set()).update(pending)
                break
            room = connection.free
            taken, pending = pending[:room], pending[room:]
            for token in taken:
                connection.add_companion(token)
                placement.home[token] = connection


def _restore(placement: _Placement, tokens: list[int], before: Mapping[int, ConnectionKey]) -> list[int]:
    """Put lone companions back where their primary was while that connection has room; returns the rest."""
    rest: list[int] = []
    for token in tokens:
        key = before.get(token)
        connection = placement.fleet.get(key) if key is not None else None
        if connection is not None and connection.free >= 1:
            connection.add_companion(token)
            placement.home[token] = connection
        else:
            rest.append(token)
    return rest


def _build_plan(placement: _Placement, primary_of: Mapping[int, ConnectionKey]) -> Plan:
    rows: list[Assignment] = []
    for key in sorted(placement.fleet):
        connection = placement.fleet[key]
        primary = dict.fromkeys(connection.options, True)
        primary.update((token, primary_of[token] == key) for token in connection.companions)
        tokens = sorted(primary)
        fields = zip(tokens, repeat(key[0]), repeat(key[1]), map(primary.__getitem__, tokens), strict=False)
        rows.extend(map(_assignment, fields))
    return tuple(rows)


# Assignment(*fields) runs a Python-level __new__ per row; tuple.__new__ builds the same NamedTuple
# in C, a third of _build_plan's time at 30,000 tokens (bench/planner.py).
_assignment = partial(tuple.__new__, Assignment)


def _companion_primaries(
    placement: _Placement, before: Mapping[int, ConnectionKey]
) -> dict[int, ConnectionKey]:
    """Each companion's primary: where it already was if still carried there, else its first carrier."""
    carriers: dict[int, list[ConnectionKey]] = {}
    for key in sorted(placement.fleet):
        for token in placement.fleet[key].companions:
            carriers.setdefault(token, []).append(key)
    primary_of: dict[int, ConnectionKey] = {}
    for token, keys in carriers.items():
        home = placement.home.get(token)
        previous = before.get(token)
        if home is not None:
            primary_of[token] = home.key
        elif previous in keys:
            primary_of[token] = previous
        else:
            primary_of[token] = keys[0]
    return primary_of


def _moved(
    placement: _Placement, primary_of: Mapping[int, ConnectionKey], before: Mapping[int, ConnectionKey]
) -> frozenset[int]:
    moved = [token for token, key in primary_of.items() if before.get(token, key) != key]
    for key, connection in placement.fleet.items():
        moved.extend(token for token in connection.options if before.get(token, key) != key)
    return frozenset(moved)


def _capacity_errors(desired: _Desired, placement: _Placement) -> tuple[PlanError, ...]:
    errors = []
    for group, unplaced in sorted(placement.unplaced.items()):
        spec = desired.groups[group]
        total = len(spec.option_tokens | spec.companion_tokens)
        message = (
            f"{spec.underlying_key}: {len(unplaced)} of {total} tokens did not fit on the healthy connections"
        )
        errors.append(
            PlanError(
                kind="capacity",
                underlying_key=spec.underlying_key,
                unplaced=frozenset(unplaced),
                message=message,
            )
        )
    return tuple(errors)


def _tokens_by_connection(plan: Plan) -> dict[ConnectionKey, frozenset[int]]:
    sets: dict[ConnectionKey, set[int]] = {}
    for row in plan:
        sets.setdefault((row.account_id, row.connection), set()).add(row.token)
    return {key: frozenset(tokens) for key, tokens in sets.items()}
