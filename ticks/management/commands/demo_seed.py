from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kiteconnect.exceptions import KiteException
from requests.exceptions import RequestException

from ticks.clocks import market_now
from ticks.models import BrokerAccount, WatchSpec
from ticks.services import broker_account_set_token, instruments_refresh_from_kite

DEMO_ACCOUNT = {"name": "demo", "api_key": "demo", "api_secret": "demosecret", "access_token": "demotoken"}
DEMO_WATCHES = ("NIFTY", "BANKNIFTY")


class Command(BaseCommand):
    help = "Idempotently seed a demo: admin user, kitesim's demo account, instruments, NIFTY/BANKNIFTY."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin-user", default="admin")
        parser.add_argument("--admin-password", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        self._admin(options["admin_user"], options["admin_password"])
        account = self._account()
        try:
            loaded = instruments_refresh_from_kite(account=account)
        except (KiteException, RequestException) as exc:
            raise CommandError(
                f"Could not load instruments from Kite at {settings.KITE_ROOT}: {exc}"
            ) from exc
        self.stdout.write(f"Loaded {loaded.upserted} instruments from {settings.KITE_ROOT}")
        for underlying in DEMO_WATCHES:
            WatchSpec.objects.get_or_create(underlying=underlying, defaults={"strikes_around_atm": 10})
        self.stdout.write(f"Watching {', '.join(DEMO_WATCHES)}")

    def _admin(self, username: str, password: str) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            self.stdout.write(f"Admin user {username!r} exists (password unchanged)")
            return
        user_model.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(f"Created admin user {username!r}")

    def _account(self) -> BrokerAccount:
        account = BrokerAccount.objects.filter(name=DEMO_ACCOUNT["name"]).first()
        if account is None:
            account = BrokerAccount(name=DEMO_ACCOUNT["name"])
        account.api_key = DEMO_ACCOUNT["api_key"]
        account.api_secret = DEMO_ACCOUNT["api_secret"]
        account.enabled = True
        return broker_account_set_token(
            account=account, access_token=DEMO_ACCOUNT["access_token"], issued_at=market_now()
        )
