"""The official kiteconnect REST client, configured for one broker account."""

from django.conf import settings
from kiteconnect import KiteConnect

from ticks.models import BrokerAccount


def kite_client_for(account: BrokerAccount) -> KiteConnect:
    """A client with the account's current token, ``root`` from settings (kitesim in dev)."""
    return KiteConnect(
        api_key=account.api_key,
        access_token=account.access_token or None,
        root=settings.KITE_ROOT,
        timeout=settings.KITE_HTTP_TIMEOUT,
    )
