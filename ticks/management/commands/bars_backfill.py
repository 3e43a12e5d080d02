from datetime import date, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from kiteconnect.exceptions import KiteException
from requests.exceptions import RequestException

from orders.redis_io import orders_redis
from ticks.bars.backfill import BackfillArgumentError, BackfillProgress, backfill_targets, bars_backfill
from ticks.bars.intervals import INTERVAL_MINUTES, KITE_MAX_SPAN_DAYS, MINUTE
from ticks.bars.kite_history import HistoryUnavailable, default_account, kite_history_for
from ticks.bars.watched import bars_clock
from ticks.market_time import IST
from ticks.models import BrokerAccount
from ticks.selectors import broker_account_get


def _instant(text: str, argument: str, *, end_of_day: bool) -> datetime:
    """YYYY-MM-DD (the whole IST day) or an ISO datetime (IST unless it carries an offset)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(23, 59, 59) if end_of_day else time(0), tzinfo=IST)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{argument}: {text!r} is not YYYY-MM-DD or an ISO datetime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=IST)


class Command(BaseCommand):
    help = "Backfill bars from Kite's historical candles (resumable: done days are skipped unless --force)."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--underlying", help="e.g. NIFTY: its index, futures and watched options")
        target.add_argument("--token", type=int, help="one instrument token")
        target.add_argument(
            "--symbol", help="one instrument as EXCHANGE:TRADINGSYMBOL, e.g. NFO:NIFTY26AUGFUT"
        )
        parser.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD or ISO datetime (IST)")
        parser.add_argument("--to", dest="end", help="YYYY-MM-DD or ISO datetime (IST); default: market now")
        parser.add_argument("--interval", default=MINUTE, help=f"one of {', '.join(INTERVAL_MINUTES)}")
        parser.add_argument("--account", help="broker account name; default: the first healthy enabled one")
        parser.add_argument("--force", action="store_true", help="refetch days already stored")
        parser.add_argument(
            "--chunk-days", type=int, help="days per request (at most Kite's span for the interval)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options["interval"]
        if interval not in INTERVAL_MINUTES:
            raise CommandError(f"--interval: {interval!r} is not one of {', '.join(INTERVAL_MINUTES)}")
        chunk_days = options["chunk_days"]
        if chunk_days is not None and not 1 <= chunk_days <= KITE_MAX_SPAN_DAYS[interval]:
            raise CommandError(f"--chunk-days: must be 1..{KITE_MAX_SPAN_DAYS[interval]} for {interval}")
        account = self._account(options["account"])
        client = orders_redis()
        start = _instant(options["start"], "--from", end_of_day=False)
        try:
            targets = backfill_targets(
                interval=interval,
                day=start.astimezone(IST).date(),
                underlying=options["underlying"],
                token=options["token"],
                symbol=options["symbol"],
            )
        except BackfillArgumentError as error:
            raise CommandError(f"--{error.argument}: {error}") from None
        now = bars_clock(client, [t.instrument_token for t in targets])
        end = _instant(options["end"], "--to", end_of_day=True) if options["end"] else now
        if end < start:
            raise CommandError(f"--to: {end.isoformat()} is before --from {start.isoformat()}")
        self.stdout.write(
            f"Backfilling {len(targets)} instruments, {interval}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} IST"
        )
        try:
            result = bars_backfill(
                targets=targets,
                interval=interval,
                start=start,
                end=end,
                now=now,
                history=kite_history_for(account, client),
                client=client,
                force=options["force"],
                chunk_days=chunk_days,
                on_progress=self._progress,
            )
        except (HistoryUnavailable, KiteException, RequestException) as error:
            raise CommandError(f"Kite refused ({error}); done chunks are kept, re-run to continue") from error
        self.stdout.write(
            f"Done: {result.chunks} chunks, {result.requests} requests, {result.written} bars written, "
            f"{result.skipped_days} days already stored"
        )

    def _account(self, name: str | None) -> BrokerAccount:
        account = broker_account_get(name=name) if name else default_account()
        if account is None:
            raise CommandError(
                f"--account: no broker account {name!r}"
                if name
                else "--account: no healthy enabled broker account"
            )
        return account

    def _progress(self, progress: BackfillProgress) -> None:
        window = progress.window
        self.stdout.write(
            f"[{progress.chunk}/{progress.chunks}] {progress.target.label} "
            f"{window.start.astimezone(IST):%Y-%m-%d %H:%M}..{window.end.astimezone(IST):%Y-%m-%d %H:%M}: "
            f"{progress.written} bars ({progress.total_written} total)"
        )
