"""The daily Kite login of a broker account (README "The morning Kite login").

Kite's flow: the operator's browser goes to Kite's login page with the app's ``api_key``; Kite sends it
back to the app's registered redirect URL (our ``/kite/callback``) with a ``request_token``, which we
exchange, with a checksum over the ``api_secret``, for the day's access token. ``redirect_params``
carries our state through Kite: which account, which staff user started the login, and a nonce that
makes the callback single use. The state is signed, so nobody can forge one naming another account,
and it expires, so a login link found in a browser history tomorrow is dead.
"""

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import redis
from django.conf import settings
from django.core import signing
from kiteconnect import KiteConnect
from kiteconnect.exceptions import KiteException, TokenException
from requests.exceptions import RequestException
from rest_framework import status

from tickerproject.exceptions import ApplicationError
from ticks.clocks import market_now
from ticks.market_time import IST
from ticks.models import BrokerAccount
from ticks.services import broker_account_log_in

logger = logging.getLogger(__name__)

STATE_SALT = "ticks.kite_login.state"
STATE_PARAM = "state"  # the one pair our redirect_params holds; Kite hands it back as ?state=…
NONCE_KEY = "kite:login:nonce:{nonce}"
KITE_SUCCESS = "success"


class KiteLoginRefused(ApplicationError):
    """The callback cannot complete this login (bad, expired or replayed state; Kite said no)."""


class KiteLoginForbidden(ApplicationError):
    http_status = status.HTTP_403_FORBIDDEN


class KiteUnreachable(ApplicationError):
    http_status = status.HTTP_502_BAD_GATEWAY


@dataclass(frozen=True, slots=True)
class LoginState:
    account_id: int
    user_id: int
    nonce: str


class _SignerAt(signing.TimestampSigner):
    """Django's timestamp signer with the signing time given, so an expired state can be made in a test
    the same way a stale one arises (verification always ages it against the host clock)."""

    def __init__(self, *, signed_at: float) -> None:
        super().__init__(salt=STATE_SALT)
        self._signed_at = signed_at

    def timestamp(self) -> str:
        return signing.b62_encode(int(self._signed_at))


def state_sign(state: LoginState, *, signed_at: float) -> str:
    payload = {"a": state.account_id, "u": state.user_id, "n": state.nonce}
    return _SignerAt(signed_at=signed_at).sign_object(payload)


def state_verify(token: str, *, max_age_s: float) -> LoginState:
    """The state a callback carries, if it is ours and younger than ``max_age_s``."""
    try:
        payload = signing.TimestampSigner(salt=STATE_SALT).unsign_object(token, max_age=max_age_s)
    except signing.SignatureExpired as expired:
        minutes = max_age_s / 60
        raise KiteLoginRefused(
            f"This login was started more than {minutes:g} minutes ago; start it again from admin."
        ) from expired
    except signing.BadSignature as bad:
        raise KiteLoginRefused("This login's state is not one we issued; start it again from admin.") from bad
    return _state_from(payload)


def _state_from(payload: Any) -> LoginState:
    if not isinstance(payload, dict):
        raise KiteLoginRefused("This login's state is malformed; start it again from admin.")
    account_id, user_id, nonce = payload.get("a"), payload.get("u"), payload.get("n")
    if not (isinstance(account_id, int) and isinstance(user_id, int) and isinstance(nonce, str)):
        raise KiteLoginRefused("This login's state is malformed; start it again from admin.")
    return LoginState(account_id=account_id, user_id=user_id, nonce=nonce)


def login_url(*, base: str, api_key: str, state: str | None = None) -> str:
    """Kite's login page for the app, asking Kite to hand ``state`` (if any) back to our redirect URL."""
    query = {"api_key": api_key, "v": "3"}
    if state is not None:
        query["redirect_params"] = urlencode({STATE_PARAM: state})
    return f"{base}?{urlencode(query)}"


def kite_login_page() -> str:
    # Empty: kitesim's page at KITE_ROOT (dev and tests move KITE_ROOT to their simulator at run time).
    return settings.KITE_LOGIN_URL or f"{settings.KITE_ROOT}/connect/login"


def kite_login_start(*, account: BrokerAccount, user_id: int, client: redis.Redis) -> str:
    """The URL that logs ``account`` in to Kite, with a fresh state only ``user_id`` can complete."""
    nonce = secrets.token_urlsafe(18)
    max_age_s = settings.KITE_LOGIN_STATE_MAX_AGE_S
    # Remembered until the state expires: a callback consumes it, so the state works once.
    client.set(NONCE_KEY.format(nonce=nonce), account.pk, ex=max_age_s)
    state = state_sign(LoginState(account.pk, user_id, nonce), signed_at=time.time())
    return login_url(base=kite_login_page(), api_key=account.api_key, state=state)


def kite_login_complete(
    *, user_id: int, state: str, kite_status: str, request_token: str, client: redis.Redis
) -> BrokerAccount:
    """Kite's redirect back: check the state, exchange the request token, store the access token.

    Another user's state is refused before its nonce is spent, so a leaked link cannot spoil the
    operator's own login. Nothing is stored unless Kite issued an access token.
    """
    if not state:
        raise KiteLoginRefused(
            "This redirect carries no login state (a login started outside admin): complete it with "
            "`manage.py kite_login ACCOUNT --request-token TOKEN`, or start it again from admin."
        )
    login = state_verify(state, max_age_s=settings.KITE_LOGIN_STATE_MAX_AGE_S)
    if login.user_id != user_id:
        raise KiteLoginForbidden("Another user started this login; start your own from admin.")
    if client.delete(NONCE_KEY.format(nonce=login.nonce)) != 1:
        raise KiteLoginRefused(
            "This login was already completed (or has expired); start it again from admin."
        )
    if kite_status != KITE_SUCCESS:
        raise KiteLoginRefused(
            f"Kite reports the login as {kite_status or 'unfinished'!r}; nothing was stored."
        )
    if not request_token:
        raise KiteLoginRefused("Kite's redirect carries no request token; nothing was stored.")
    account = BrokerAccount.objects.filter(pk=login.account_id).first()
    if account is None:
        raise KiteLoginRefused("The account of this login no longer exists.")
    return kite_login_exchange(account=account, request_token=request_token)


def kite_login_exchange(*, account: BrokerAccount, request_token: str) -> BrokerAccount:
    """``generate_session`` (the checksum over the api_secret), then the token stored and the feeds told."""
    session = _session(account, request_token)
    access_token = session.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise KiteUnreachable("Kite's session answer has no access token; nothing was stored.")
    account = broker_account_log_in(account=account, access_token=access_token, issued_at=_issued_at(session))
    logger.info("account %s logged in to Kite; token valid until %s", account, account.token_expires_at)
    return account


def _session(account: BrokerAccount, request_token: str) -> dict[str, Any]:
    kite = KiteConnect(api_key=account.api_key, root=settings.KITE_ROOT, timeout=settings.KITE_HTTP_TIMEOUT)
    try:
        return kite.generate_session(request_token, api_secret=account.api_secret)
    except TokenException as error:
        # Kite's message names no token: "Token is invalid or has expired."
        raise KiteLoginRefused(
            f"Kite refused the request token ({error}); log in again from admin. Nothing was stored."
        ) from error
    except KiteException as error:
        if error.code >= 500:
            raise KiteUnreachable(f"Kite failed the token exchange ({error.code}); try again.") from error
        raise KiteLoginRefused(f"Kite refused the token exchange ({error}); nothing was stored.") from error
    except RequestException as error:
        raise KiteUnreachable(
            f"Kite could not be reached ({type(error).__name__}); nothing was stored. Try again."
        ) from error


def _issued_at(session: dict[str, Any]) -> datetime:
    """Kite's own stamp of the login (IST, naive as the client parses it): the token dies at the next
    06:00 IST on Kite's clock, which in dev is kitesim's."""
    login_time = session.get("login_time")
    if isinstance(login_time, datetime):
        return login_time.replace(tzinfo=IST) if login_time.tzinfo is None else login_time
    return market_now()


def token_state(expires_at: datetime | None, *, now: datetime) -> str:
    """An account's access token at a glance: ``valid until 14 Mar 06:00 IST``, ``expired at …``, ``none``."""
    if expires_at is None:
        return "none"
    when = f"{expires_at.astimezone(IST):%d %b %H:%M} IST"
    return f"valid until {when}" if now < expires_at else f"expired at {when}"
