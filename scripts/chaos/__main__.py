"""`make chaos`: run the fault scenarios end to end and print one table row each (scripts/chaos/outcome.py).

    .venv/bin/python -m scripts.chaos [--only orders,feeds.feed_stall] [--json] [--keep]

The groups run in order: orders (this package's orders.py), feeds, hostcut. ``--only`` takes group names
or ``group.scenario`` (a scenario function's name). Exits 1 when a scenario did not recover, or lost or
duplicated an order. The processes' logs are kept (and their directory printed) when one did not, or
with ``--keep``.
"""

import argparse
import dataclasses
import importlib
import json
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from types import ModuleType

from scripts.chaos.outcome import Outcome
from scripts.chaos.stack import WORKDIR, django_setup

GROUPS = ("orders", "feeds", "hostcut")
HEADER = ("scenario", "recovered", "recover s", "orders lost", "orders dup", "ticks lost", "detail")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups or group.scenario")
    parser.add_argument("--json", action="store_true", help="print one JSON object per outcome, no table")
    parser.add_argument("--keep", action="store_true", help=f"keep the logs in {WORKDIR}")
    return parser.parse_args()


def selected(only: str) -> Iterator[Callable[[], Outcome]]:
    """The scenarios ``--only`` names, group by group in GROUPS order; a group module is imported only
    when named (a missing one fails loudly rather than shrinking the table)."""
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in wanted if name.split(".")[0] not in GROUPS]
    if unknown:
        raise SystemExit(f"unknown scenario group(s) {unknown}; the groups are {GROUPS}")
    for group in GROUPS:
        names = {name.partition(".")[2] for name in wanted if name.split(".")[0] == group}
        if not names:
            continue
        scenarios = _group(group).SCENARIOS
        missing = names - {"", *(scenario.__name__ for scenario in scenarios)}
        if missing:
            raise SystemExit(f"no scenario {sorted(missing)} in scripts/chaos/{group}.py")
        yield from (scenario for scenario in scenarios if "" in names or scenario.__name__ in names)


def _group(group: str) -> ModuleType:
    module = f"scripts.chaos.{group}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        raise SystemExit(f"scripts/chaos/{group}.py is missing; run the others with --only") from error


def failed(outcome: Outcome) -> bool:
    return not outcome.recovered or bool(outcome.orders_lost) or bool(outcome.orders_duplicated)


def _cells(outcome: Outcome) -> tuple[str, ...]:
    def number(value: int | None) -> str:
        return "-" if value is None else str(value)

    seconds = "-" if outcome.seconds_to_recover is None else f"{outcome.seconds_to_recover:.1f}"
    return (
        outcome.scenario,
        "yes" if outcome.recovered else "NO",
        seconds,
        number(outcome.orders_lost),
        number(outcome.orders_duplicated),
        number(outcome.ticks_lost),
        outcome.detail,
    )


def table(outcomes: list[Outcome]) -> str:
    """Aligned columns; the detail column last and unpadded, since it is free text."""
    rows = [HEADER, *(_cells(outcome) for outcome in outcomes)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def run(scenario: Callable[[], Outcome]) -> Outcome:
    """The scenario's row; one that crashed (a process that would not start, say) is a row that did not
    recover, with the traceback on stderr, so the scenarios after it still run."""
    try:
        return scenario()
    except (Exception, SystemExit) as error:  # noqa: BLE001 - the runner's edge: reported, and exits 1
        traceback.print_exc()
        return Outcome(
            f"{scenario.__module__}.{scenario.__name__}",
            False,
            None,
            None,
            None,
            None,
            f"crashed: {error!r}"[:300],
        )


def main() -> int:
    arguments = _arguments()
    django_setup()
    outcomes = []
    for scenario in list(selected(arguments.only)):  # a missing group fails before anything runs
        outcomes.append(run(scenario))
        if arguments.json:
            print(json.dumps(dataclasses.asdict(outcomes[-1])), flush=True)
        else:
            print(
                f"{outcomes[-1].scenario}: {'recovered' if outcomes[-1].recovered else 'NOT recovered'}",
                flush=True,
            )
    broken = not outcomes or any(failed(outcome) for outcome in outcomes)
    if arguments.keep or broken:
        print(f"logs: {WORKDIR}", file=sys.stderr)
    else:
        shutil.rmtree(WORKDIR, ignore_errors=True)
    if not arguments.json:
        print(table(outcomes))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
