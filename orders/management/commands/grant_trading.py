from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.models import TradingPermission
from ticks.models import BrokerAccount


class Command(BaseCommand):
    help = "Let USERNAME's API keys place orders on broker account ACCOUNT (idempotent; admin does the same)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("account", help="the broker account's name")

    def handle(self, *args: Any, **options: Any) -> None:
        username, name = options["username"], options["account"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        account = BrokerAccount.objects.filter(name=name).first()
        if account is None:
            raise CommandError(f"No broker account named {name!r}.")
        _, created = TradingPermission.objects.get_or_create(user=user, account=account)
        verb = "may now trade" if created else "already may trade"
        self.stdout.write(f"{username} {verb} on {name}")
