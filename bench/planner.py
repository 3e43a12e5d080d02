"""Planner benchmark at fleet scale, on the real dump's chains (Kite's Aug 2026 NFO+BFO dump, bench/data/).

Every underlying with options (indices and ~210 stocks) gets a group per nearest expiry: ATM +- N
strikes x CE/PE around the middle strike of its chain (clipped at the chain's ends), and as companions
its spot (a synthetic token: the dump has no index or equity rows), its nearest future and the
same-expiry future. N is the smallest that makes the fleet want >= 30,000 tokens. Ten accounts of
Kite's 3 x 3,000.

(1) ``plan_assign`` from scratch: p50/p99; target p99 < 200 ms.
(2) Re-plan with unchanged inputs: p50/p99, tokens moved (target 0).
(3) Re-centre every group one strike up: tokens moved vs tokens changed; sticky means only the
    tokens that entered or left the window change subscriptions, and no kept token moves (target 0).
(4) One account lost: tokens moved vs tokens that account carried (target: moved <= carried).

Run: .venv/bin/python bench/planner.py [--data PATH] [--repeats 50]
"""

import argparse
import csv
import gzip
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ticks.feeds.planner import AccountCapacity, DesiredGroup, PlanResult, plan_assign, plan_diff

DUMP = Path(__file__).parent / "data" / "kite-instruments-nfo-bfo-2026-08.csv.gz"  # the real dump, gzipped
TARGET_TOKENS = 30_000
EXPIRIES = 3  # a stock lists three monthlies; with two, even whole chains fall short of 30,000
ACCOUNTS = 10
SPOT_TOKEN_BASE = 9_000_000_000  # synthetic spot tokens, far from Kite's


class Chain:
    """One (underlying, expiry): strikes ascending, each strike's option tokens."""

    def __init__(self) -> None:
        self.legs: dict[float, list[int]] = defaultdict(list)

    def strikes(self) -> list[float]:
        return sorted(self.legs)

    def window(self, n: int, shift: int) -> frozenset[int]:
        strikes = self.strikes()
        middle = min(max(len(strikes) // 2 + shift, 0), len(strikes) - 1)
        picked = strikes[max(0, middle - n) : middle + n + 1]
        return frozenset(token for strike in picked for token in self.legs[strike])


def read_dump(path: Path) -> tuple[dict[str, dict[str, Chain]], dict[str, dict[str, int]]]:
    chains: dict[str, dict[str, Chain]] = defaultdict(lambda: defaultdict(Chain))
    futures: dict[str, dict[str, int]] = defaultdict(dict)
    with gzip.open(path, "rt", newline="") if path.suffix == ".gz" else path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            token, name, expiry = int(row["instrument_token"]), row["name"], row["expiry"]
            if row["instrument_type"] in ("CE", "PE"):
                chains[name][expiry].legs[float(row["strike"])].append(token)
            elif row["instrument_type"] == "FUT":
                futures[name][expiry] = token
    return chains, futures


def build_groups(
    chains: dict[str, dict[str, Chain]], futures: dict[str, dict[str, int]], n: int, shift: int = 0
) -> list[DesiredGroup]:
    groups = []
    for number, name in enumerate(sorted(chains)):
        own_futures = futures.get(name, {})
        near = [own_futures[min(own_futures)]] if own_futures else []
        for expiry in sorted(chains[name])[:EXPIRIES]:
            same = [own_futures[expiry]] if expiry in own_futures else []
            companions = frozenset([SPOT_TOKEN_BASE + number, *near, *same])
            options = chains[name][expiry].window(n, shift)
            groups.append(DesiredGroup(f"{name}:{expiry}", options, companions))
    return groups


def wanted(groups: Sequence[DesiredGroup]) -> int:
    return len(set().union(*(g.option_tokens | g.companion_tokens for g in groups)))


def timings(call: Callable[[], object], repeats: int) -> np.ndarray:
    call()
    out = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        call()
        out[i] = time.perf_counter() - start
    return out * 1e3


def figures(ms: np.ndarray) -> str:
    return f"p50 {np.median(ms):.1f} ms  p99 {np.percentile(ms, 99):.1f} ms  max {ms.max():.1f} ms"


def primaries(result: PlanResult) -> dict[int, tuple[int, int]]:
    return {row.token: (row.account_id, row.connection) for row in result.plan if row.primary}


def section_fresh(groups: list[DesiredGroup], fleet: list[AccountCapacity], repeats: int) -> PlanResult:
    result = plan_assign(groups, fleet, None)
    ms = timings(lambda: plan_assign(groups, fleet, None), repeats)
    print(f"(1) plan from scratch: {figures(ms)}  ({repeats} runs)")
    print(
        f"    {len(result.plan):,} assignments, {len(primaries(result)):,} primaries, "
        f"{len(result.errors)} errors, {len({(r.account_id, r.connection) for r in result.plan})} connections used"
    )
    print(f"    target p99 < 200 ms: {'met' if np.percentile(ms, 99) < 200 else 'MISSED'}")
    return result


def section_unchanged(
    groups: list[DesiredGroup], fleet: list[AccountCapacity], first: PlanResult, repeats: int
) -> None:
    again = plan_assign(groups, fleet, first.plan)
    ms = timings(lambda: plan_assign(groups, fleet, first.plan), repeats)
    print(
        f"(2) re-plan, unchanged inputs: {figures(ms)}; moved {len(again.moved)}, same plan {again.plan == first.plan}"
    )


def section_recentre(
    chains: dict[str, dict[str, Chain]],
    futures: dict[str, dict[str, int]],
    n: int,
    fleet: list[AccountCapacity],
    first: PlanResult,
    repeats: int,
) -> None:
    before = build_groups(chains, futures, n)
    after = build_groups(chains, futures, n, shift=1)
    old = set().union(*(g.option_tokens for g in before))
    new = set().union(*(g.option_tokens for g in after))
    result = plan_assign(after, fleet, first.plan)
    ms = timings(lambda: plan_assign(after, fleet, first.plan), repeats)
    diff = plan_diff(first.plan, result.plan)
    subscribed = sum(len(d.subscribe) for d in diff.values())
    unsubscribed = sum(len(d.unsubscribe) for d in diff.values())
    kept = old & new
    print(f"(3) re-centre every group by one strike up: {figures(ms)}")
    print(
        f"    tokens changed: {len(new - old):,} entered + {len(old - new):,} left; "
        f"subscriptions changed: +{subscribed:,} -{unsubscribed:,} on {len(diff)} connections"
    )
    print(
        f"    tokens moved: {len(result.moved)} of {len(kept):,} kept "
        f"(ratio moved/changed {len(result.moved) / max(1, len(new ^ old)):.3f}); "
        f"target 0 moved: {'met' if not result.moved else 'MISSED'}; errors {len(result.errors)}"
    )


def section_account_lost(groups: list[DesiredGroup], fleet: list[AccountCapacity], first: PlanResult) -> None:
    lost = fleet[0].account_id
    degraded = [AccountCapacity(a.account_id, a.account_id != lost) for a in fleet]
    start = time.perf_counter()
    result = plan_assign(groups, degraded, first.plan)
    ms = (time.perf_counter() - start) * 1e3
    carried = {token for token, (account, _) in primaries(first).items() if account == lost}
    print(
        f"(4) account {lost} lost: re-plan {ms:.1f} ms; moved {len(result.moved):,} of the {len(carried):,} "
        f"it carried; others moved {len(result.moved - carried)} (target 0); errors {len(result.errors)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DUMP)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    chains, futures = read_dump(args.data)
    n = next(n for n in range(1, 200) if wanted(build_groups(chains, futures, n)) >= TARGET_TOKENS)
    groups = build_groups(chains, futures, n)
    fleet = [AccountCapacity(account_id, True) for account_id in range(1, ACCOUNTS + 1)]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"python {platform.python_version()}; numpy {np.__version__}; load average {load}")
    print(
        f"fleet: {len(chains)} underlyings, {len(groups)} groups (nearest {EXPIRIES} expiries, ATM +- {n}), "
        f"{wanted(groups):,} tokens wanted, {ACCOUNTS} accounts x 3 x 3,000"
    )
    first = section_fresh(groups, fleet, args.repeats)
    section_unchanged(groups, fleet, first, args.repeats)
    section_recentre(chains, futures, n, fleet, first, args.repeats)
    section_account_lost(groups, fleet, first)


if __name__ == "__main__":
    main()
