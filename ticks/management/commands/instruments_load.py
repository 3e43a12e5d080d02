import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tickerproject.exceptions import ApplicationError
from ticks.instruments_csv import HeaderError, parse_csv
from ticks.selectors import broker_account_get
from ticks.services import InstrumentLoadResult, instruments_load, instruments_refresh_from_kite


class Command(BaseCommand):
    help = "Load Kite's instruments dump (a CSV file or live from Kite) atomically."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--file", type=Path, help="path to a Kite instruments CSV")
        source.add_argument("--from-kite", metavar="ACCOUNT", help="broker account name to fetch with")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            result = self._load(options["file"], options["from_kite"])
        except (ApplicationError, HeaderError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"Loaded {result.upserted} instruments ({', '.join(result.exchanges)}), "
            f"deactivated {result.deactivated}, in {elapsed:.2f} s"
        )

    def _load(self, path: Path | None, account_name: str | None) -> InstrumentLoadResult:
        if path is not None:
            parsed = parse_csv(path.read_text(encoding="utf-8"))
            return instruments_load(rows=parsed.rows, errors=parsed.errors)
        account = broker_account_get(name=account_name or "")
        if account is None:
            raise CommandError(f"No broker account named {account_name!r}.")
        return instruments_refresh_from_kite(account=account)
