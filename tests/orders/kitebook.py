"""Kite's side of the story: what kitesim's order book holds, read with the official client."""

from typing import Any

import requests
from kiteconnect import KiteConnect

from kitesim.testing import KitesimThread
from ticks.kite import kite_client_for
from ticks.models import BrokerAccount, Instrument


def kite_orders(account: BrokerAccount) -> list[dict[str, Any]]:
    account.refresh_from_db()
    return kite_client_for(account).orders()


def tagged(rows: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    return [row for row in rows if tag in (row.get("tags") or [row.get("tag")])]


def faults(kitesim: KitesimThread, **plan: float | int | bool) -> dict[str, Any]:
    response = requests.post(f"{kitesim.root}/_sim/faults", json=plan, timeout=5)
    response.raise_for_status()
    return response.json()


def log_in_again(kitesim: KitesimThread, api_key: str, api_secret: str) -> str:
    """Kite's login flow against kitesim: a request token exchanged for a fresh access token."""
    assert kitesim.state is not None
    request_token = kitesim.call(kitesim.state.accounts.issue_request_token, api_key)
    session = KiteConnect(api_key, root=kitesim.root).generate_session(request_token, api_secret=api_secret)
    return session["access_token"]


def atm_option(underlying: str = "NIFTY") -> Instrument:
    """The nearest expiry's call closest to kitesim's reference level (NIFTY 24,800)."""
    options = Instrument.objects.filter(name=underlying, instrument_type="CE", is_active=True)
    expiry = options.order_by("expiry").values_list("expiry", flat=True).first()
    return min(options.filter(expiry=expiry), key=lambda option: abs(option.strike - 24800))
