"""Does a watch list fit the healthy accounts? The report an operator reads before enabling one.

Pure: counts in, a frozen report out; no Django, no Redis, no clock.

How it counts, so that what it promises the planner (ticks/feeds/planner.py) keeps:

- An underlying's ``tokens`` are its options plus, for each of its expiry groups, that group's
  companions (index, nearest future, same-expiry future). The planner shares a companion between
  two expiries of one underlying on the same connection, so this may overcount by a few tokens per
  underlying; it never undercounts.
- A group that straddles connections carries its companions on each, and a connection whose last
  few slots cannot take the next group's companions stays partly empty. Both are bounded by one
  companion set per connection each, so the report holds back ``reserve`` = 2 x the largest
  companion set x the healthy connections.
- Underlyings are taken in priority order (the planner's group order) until the first that does not
  fit whole; it and every later one are "not streamed": the planner gives a group that does not fit
  all the room that is left, so a later underlying gets at most scraps. Whatever the report streams,
  a fresh plan of the same groups places in full (tests/ticks/feeds/test_planner_fleet.py).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ticks.feeds.planner import AccountCapacity

NAMES_IN_MESSAGE = 20


@dataclass(frozen=True)
class UnderlyingNeed:
    """One underlying's tokens, options plus companions counted once per expiry group."""

    key: str
    tokens: int
    companions: int = 0  # the largest companion set of one of its expiry groups


@dataclass(frozen=True)
class CapacityReport:
    needed: int
    capacity: int  # tokens the healthy accounts can stream
    accounts: int  # healthy accounts
    accounts_needed: int  # of the ``connections`` x ``per_connection`` shape, reserve included
    per_account: int
    streamed: tuple[str, ...]
    not_streamed: tuple[str, ...]
    reserve: int  # tokens held back for companion copies on the healthy connections
    connections: int  # per account, of the shape ``accounts_needed`` counts in
    per_connection: int

    def message(self) -> str:
        held = f" (+{self.reserve:,} held for companion copies)" if self.reserve else ""
        head = (
            f"this list needs {self.needed:,} tokens{held} = {_accounts(self.accounts_needed)} at "
            f"{self.connections} x {self.per_connection:,}; you have {self.accounts}"
        )
        if not self.not_streamed:
            return f"{head}: every underlying fits ({self.capacity:,} tokens of capacity)"
        names = ", ".join(self.not_streamed[:NAMES_IN_MESSAGE])
        more = len(self.not_streamed) - NAMES_IN_MESSAGE
        tail = f" and {more} more" if more > 0 else ""
        return f"{head}: these underlyings will not be streamed: {names}{tail}"


def capacity_report(needs: Sequence[UnderlyingNeed], accounts: Sequence[AccountCapacity]) -> CapacityReport:
    """Which of ``needs`` (priority order) the healthy ``accounts`` stream whole, and how many accounts
    the whole list would take."""
    healthy = [a for a in accounts if a.healthy and a.max_connections > 0]
    connections = sum(a.max_connections for a in healthy)
    capacity = sum(a.max_connections * a.tokens_per_connection for a in healthy)
    spare_per_connection = 2 * max((need.companions for need in needs), default=0)
    reserve = spare_per_connection * connections
    fitting = _fitting_prefix(needs, capacity - reserve)
    shape = max(
        healthy, key=lambda a: a.max_connections * a.tokens_per_connection, default=AccountCapacity(0, True)
    )
    per_account = shape.max_connections * shape.tokens_per_connection
    needed = sum(need.tokens for need in needs)
    usable = max(1, per_account - spare_per_connection * shape.max_connections)
    return CapacityReport(
        needed=needed,
        capacity=capacity,
        accounts=len(healthy),
        accounts_needed=math.ceil(needed / usable),
        per_account=per_account,
        streamed=tuple(need.key for need in needs[:fitting]),
        not_streamed=tuple(need.key for need in needs[fitting:]),
        reserve=reserve,
        connections=shape.max_connections,
        per_connection=shape.tokens_per_connection,
    )


def _fitting_prefix(needs: Sequence[UnderlyingNeed], room: int) -> int:
    for index, need in enumerate(needs):
        room -= need.tokens
        if room < 0:
            return index
    return len(needs)


def _accounts(count: int) -> str:
    return f"{count} account" if count == 1 else f"{count} accounts"
