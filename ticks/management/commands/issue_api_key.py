from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ticks.models import ClientApiKey


class Command(BaseCommand):
    help = "Issue a REST API key for USERNAME within a scope. The key is printed once, as the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        # Required, no default: whoever issues a key decides whether it may trade.
        parser.add_argument(
            "--scope",
            required=True,
            choices=ClientApiKey.Scope.values,
            help="read: GET only; trade: also place, modify and cancel orders",
        )
        parser.add_argument("--name", default="", help="a label for the key (default: the username)")

    def handle(self, *args: Any, **options: Any) -> None:
        username, scope = options["username"], options["scope"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        api_key, key = ClientApiKey.objects.create_key(
            name=options["name"] or username, user=user, scope=scope
        )
        self.stdout.write(
            f"Issued {scope} API key {api_key.prefix} for {username}; it is shown once, store it now:"
        )
        self.stdout.write(key)
