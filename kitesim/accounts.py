"""Simulated Kite apps and their sessions: api_key/api_secret/access_token, login and expiry."""

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from kitesim.clock import IST

DEMO_ACCOUNT = "demo:demosecret:demotoken"


@dataclass
class SimAccount:
    api_key: str
    api_secret: str
    access_token: str
    user_id: str
    token_expires_at: float  # epoch seconds: 06:00 IST after the token was issued
    request_tokens: set[str] = field(default_factory=set)
    # The app's registered redirect URL: like Kite, the login sends the browser only there (an app
    # never names it in the login request). Empty: kitesim's own landing page, /connect/finish.
    redirect_url: str = ""


def next_token_expiry(issued_epoch: float) -> float:
    """Kite access tokens die at the next 06:00 IST after issue."""
    issued = datetime.fromtimestamp(issued_epoch, tz=IST)
    expiry = datetime.combine(issued.date(), time(6, 0), tzinfo=IST)
    if issued >= expiry:
        expiry += timedelta(days=1)
    return expiry.timestamp()


def parse_account_spec(spec: str) -> tuple[str, str, str]:
    """``API_KEY:API_SECRET:ACCESS_TOKEN[:REDIRECT_URL]`` -> the first three; raises ValueError naming
    the problem."""
    parts = spec.split(":", 3)
    if len(parts) < 3 or not all(parts):
        raise ValueError(f"--account must be API_KEY:API_SECRET:ACCESS_TOKEN[:REDIRECT_URL], got {spec!r}")
    return parts[0], parts[1], parts[2]


def account_spec_redirect_url(spec: str) -> str:
    """The registered redirect URL a spec ends with (it may hold colons itself), else ``""``."""
    parts = spec.split(":", 3)
    return parts[3] if len(parts) == 4 else ""


class AccountBook:
    """Every account the simulator knows, keyed by api_key."""

    def __init__(self, specs: list[str], now_epoch: float):
        self._accounts: dict[str, SimAccount] = {}
        for index, spec in enumerate(specs or [DEMO_ACCOUNT]):
            api_key, api_secret, access_token = parse_account_spec(spec)
            self._accounts[api_key] = SimAccount(
                api_key=api_key,
                api_secret=api_secret,
                access_token=access_token,
                user_id=f"SIM{index + 1:03d}",
                token_expires_at=next_token_expiry(now_epoch),
                redirect_url=account_spec_redirect_url(spec),
            )

    def __iter__(self) -> Iterator[SimAccount]:
        return iter(self._accounts.values())

    def get(self, api_key: str) -> SimAccount | None:
        return self._accounts.get(api_key)

    def authenticate(self, api_key: str, access_token: str, now_epoch: float) -> SimAccount | None:
        """The account when the pair is valid and unexpired, else None (Kite answers 403)."""
        account = self._accounts.get(api_key)
        if account is None or not secrets.compare_digest(account.access_token, access_token):
            return None
        if now_epoch >= account.token_expires_at:
            return None
        return account

    def register_redirect_url(self, api_key: str, url: str) -> None:
        """What a developer does once on Kite's console: where this app's logins land."""
        account = self._accounts.get(api_key)
        if account is None:
            raise KeyError(api_key)
        account.redirect_url = url

    def issue_request_token(self, api_key: str) -> str | None:
        account = self._accounts.get(api_key)
        if account is None:
            return None
        token = secrets.token_hex(16)
        account.request_tokens.add(token)
        return token

    def exchange_request_token(
        self, api_key: str, request_token: str, checksum: str, now_epoch: float
    ) -> SimAccount | None:
        """Kite's ``POST /session/token``: checksum = sha256(api_key + request_token + api_secret)."""
        account = self._accounts.get(api_key)
        if account is None or request_token not in account.request_tokens:
            return None
        expected = hashlib.sha256(f"{api_key}{request_token}{account.api_secret}".encode()).hexdigest()
        if not secrets.compare_digest(expected, checksum):
            return None
        account.request_tokens.discard(request_token)
        account.access_token = secrets.token_hex(16)
        account.token_expires_at = next_token_expiry(now_epoch)
        return account

    def expire_all(self, now_epoch: float) -> None:
        for account in self._accounts.values():
            account.token_expires_at = now_epoch
