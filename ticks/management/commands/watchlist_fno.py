from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from ticks.models import WatchSpec
from ticks.selectors import feed_capacity_report, fno_underlyings

STRIKES_RANGE = (1, 200)  # WatchSpec.strikes_around_atm's validators
EXPIRIES_RANGE = (1, 12)  # WatchSpec.expiry_count's validators


@dataclass(frozen=True)
class _Changes:
    """What to set; None keeps an existing spec's value (a new spec takes the model's default)."""

    strikes: int | None
    expiries: int | None
    enabled: bool | None


class Command(BaseCommand):
    help = (
        "Create or update a WatchSpec for every underlying with active options (stocks and/or indices), "
        "then print the capacity report. Idempotent. New specs are disabled unless --enable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stocks", action="store_true", help="stock underlyings (default: both kinds)")
        parser.add_argument("--indices", action="store_true", help="index underlyings (default: both kinds)")
        parser.add_argument("--strikes", type=int, help="strikes either side of ATM (new specs: 10)")
        parser.add_argument("--expiries", type=int, help="nearest expiries (new specs: 2)")
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true", help="enable the listed specs")
        state.add_argument("--disabled", action="store_true", help="disable the listed specs")

    def handle(self, *args: Any, **options: Any) -> None:
        _check_range("--strikes", options["strikes"], STRIKES_RANGE)
        _check_range("--expiries", options["expiries"], EXPIRIES_RANGE)
        both = not (options["stocks"] or options["indices"])
        names = fno_underlyings(stocks=both or options["stocks"], indices=both or options["indices"])
        if not names:
            raise CommandError("No underlying with active options: load the instruments first.")
        enabled = True if options["enable"] else (False if options["disabled"] else None)
        counts, ids = _specs_upsert(names, _Changes(options["strikes"], options["expiries"], enabled))
        self.stdout.write(
            f"{len(names)} underlyings: created {counts['created']}, updated {counts['updated']}, "
            f"unchanged {counts['unchanged']}"
        )
        self.stdout.write(f"Enabled now: {feed_capacity_report().message()}")
        if not options["enable"]:
            report = feed_capacity_report(with_enabled=ids)
            self.stdout.write(f"With these {len(ids)} enabled: {report.message()}")


def _check_range(flag: str, value: int | None, bounds: tuple[int, int]) -> None:
    if value is not None and not bounds[0] <= value <= bounds[1]:
        raise CommandError(f"{flag} must be between {bounds[0]} and {bounds[1]}, got {value}.")


@transaction.atomic
def _specs_upsert(names: list[str], changes: _Changes) -> tuple[dict[str, int], list[int]]:
    existing = {
        spec.underlying: spec for spec in WatchSpec.objects.select_for_update().filter(underlying__in=names)
    }
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    ids = []
    for name in names:
        spec = existing.get(name) or WatchSpec(underlying=name, enabled=False)
        outcome = _apply(spec, changes)
        counts[outcome] += 1
        ids.append(spec.pk)
    return counts, ids


def _apply(spec: WatchSpec, changes: _Changes) -> str:
    wanted = {
        "strikes_around_atm": changes.strikes,
        "expiry_count": changes.expiries,
        "enabled": changes.enabled,
    }
    differs = [
        field for field, value in wanted.items() if value is not None and getattr(spec, field) != value
    ]
    for field in differs:
        setattr(spec, field, wanted[field])
    if spec.pk is None:
        spec.save()
        return "created"
    if differs:
        spec.save(update_fields=[*differs, "updated_at"])
        return "updated"
    return "unchanged"
