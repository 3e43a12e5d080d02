"""The benches' market: a fresh database and Redis database, kitesim's demo account with its
instruments, NIFTY watched and the feed plan made. Import after django.setup()."""

from pathlib import Path

from django.core.management import call_command

from ticks.clocks import market_now
from ticks.models import BrokerAccount, WatchSpec
from ticks.services import broker_account_set_token, instruments_refresh_from_kite
from workers.services import feed_plan_refresh, redis_client


def nifty_watched(workdir: Path, *, expiry_count: int, strikes_around_atm: int) -> None:
    (workdir / "db.sqlite3").unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    redis_client().flushdb()
    account = BrokerAccount(name="demo", api_key="demo", api_secret="demosecret")
    broker_account_set_token(account=account, access_token="demotoken", issued_at=market_now())
    instruments_refresh_from_kite(account=account)
    WatchSpec.objects.create(
        underlying="NIFTY", expiry_count=expiry_count, strikes_around_atm=strikes_around_atm, mode="full"
    )
    feed_plan_refresh(client=redis_client())
