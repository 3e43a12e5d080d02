"""The login flow: ``/connect/login`` (auto-approving simulated login) and ``/session/token``."""

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from kitesim.accounts import SimAccount
from kitesim.errors import InputException, TokenException
from kitesim.rest.envelope import success
from kitesim.rest.keys import STATE
from kitesim.rest.pipeline import Route
from kitesim.rest.user import profile_payload
from kitesim.timefmt import ist_timestamp

FINISH_PATH = "/connect/finish"
STALE_LOGIN_MESSAGE = "Token is invalid or has expired."


def session_payload(account: SimAccount, now: float) -> dict[str, Any]:
    return {
        **profile_payload(account),
        "api_key": account.api_key,
        "access_token": account.access_token,
        "public_token": account.access_token[:8],
        "enctoken": "",
        "refresh_token": "",
        "silo": "",
        "login_time": ist_timestamp(now),
    }


def _required(values: Any, name: str) -> str:
    value = values.get(name, "")
    if not isinstance(value, str) or not value:
        raise InputException(f"Missing `{name}`.")
    return value


async def login(request: web.Request) -> web.Response:
    """Kite's login page, approved at once: redirect with ``request_token`` (``redirect_url`` is ours)."""
    api_key = _required(request.query, "api_key")
    token = request.app[STATE].accounts.issue_request_token(api_key)
    if token is None:
        raise InputException("Invalid `api_key`.")
    params = {"request_token": token, "action": "login", "type": "login", "status": "success"}
    redirect_params = request.query.get("redirect_params")
    if redirect_params:
        params["redirect_params"] = redirect_params
    target = request.query.get("redirect_url") or FINISH_PATH
    separator = "&" if "?" in target else "?"
    return web.Response(status=302, headers={"Location": f"{target}{separator}{urlencode(params)}"})


async def login_finished(request: web.Request) -> web.Response:
    """Where the login lands without a ``redirect_url``: the redirect's parameters, as data."""
    return success(dict(request.query))


async def token_exchange(request: web.Request) -> web.Response:
    form = await request.post()
    api_key, request_token = _required(form, "api_key"), _required(form, "request_token")
    checksum = _required(form, "checksum")
    state = request.app[STATE]
    now = state.clock.now()
    account = state.accounts.exchange_request_token(api_key, request_token, checksum, now)
    if account is None:
        raise TokenException(STALE_LOGIN_MESSAGE)
    return success(session_payload(account, now))


async def token_invalidate(request: web.Request) -> web.Response:
    api_key, access_token = _required(request.query, "api_key"), _required(request.query, "access_token")
    state = request.app[STATE]
    now = state.clock.now()
    account = state.accounts.authenticate(api_key, access_token, now)
    if account is None:
        raise TokenException("Incorrect `api_key` or `access_token`.")
    account.token_expires_at = now
    return success(True)


ROUTES = (
    Route("GET", "/connect/login", login, auth=False, versioned=False),
    Route("GET", FINISH_PATH, login_finished, auth=False, versioned=False),
    Route("POST", "/session/token", token_exchange, auth=False),
    Route("DELETE", "/session/token", token_invalidate, auth=False),
)
