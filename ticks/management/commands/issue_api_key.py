from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ticks.models import ClientApiKey


class Command(BaseCommand):
    help = "Issue a REST API key for USERNAME. The key is printed once, as the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label for the key (default: the username)")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        api_key, key = ClientApiKey.objects.create_key(name=options["name"] or username, user=user)
        self.stdout.write(f"Issued API key {api_key.prefix} for {username}; it is shown once, store it now:")
        self.stdout.write(key)
