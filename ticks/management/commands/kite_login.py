"""``manage.py kite_login ACCOUNT``: the account's Kite login URL; ``--request-token T`` completes it."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tickerproject.exceptions import ApplicationError
from ticks.clocks import market_now
from ticks.kite_login import kite_login_exchange, kite_login_page, login_url, token_state
from ticks.models import BrokerAccount


class Command(BaseCommand):
    help = (
        "Print ACCOUNT's Kite login URL (the only line printed, for scripts); with --request-token, "
        "exchange the request token from Kite's redirect for the day's access token and store it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="the broker account's name")
        parser.add_argument(
            "--request-token",
            metavar="TOKEN",
            help="the request_token of the redirect after the login (valid a few minutes, once)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = BrokerAccount.objects.filter(name=options["account"]).first()
        if account is None:
            raise CommandError(f"No broker account named {options['account']!r}.")
        if not options["request_token"]:
            self.stdout.write(login_url(base=kite_login_page(), api_key=account.api_key))
            return
        try:
            account = kite_login_exchange(account=account, request_token=options["request_token"])
        except ApplicationError as error:
            raise CommandError(error.message) from error
        token = token_state(account.token_expires_at, now=market_now())
        self.stdout.write(f"{account.name} is logged in to Kite: token {token}.")
