"""The login flow: ``/connect/login`` (the simulated login page) and ``/session/token``."""

import html
from typing import Any
from urllib.parse import parse_qsl, urlencode

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
    """Kite's login page. A browser gets a page with a Login button (Kite's asks for a password and a
    TOTP; the simulator only for the click); a script, which asks for no HTML, is approved at once."""
    account = _login_account(request, request.query)
    if "text/html" not in request.headers.get("Accept", ""):
        return _approved(request, account, request.query.get("redirect_params", ""))
    return web.Response(
        text=_login_page(account, request.query.get("redirect_params", "")),
        content_type="text/html",
        charset="utf-8",
    )


async def login_submit(request: web.Request) -> web.Response:
    """The login page's form: the user approved, so the browser goes on to the app's redirect URL."""
    form = await request.post()
    account = _login_account(request, form)
    redirect_params = form.get("redirect_params", "")
    return _approved(request, account, redirect_params if isinstance(redirect_params, str) else "")


def _login_account(request: web.Request, values: Any) -> SimAccount:
    account = request.app[STATE].accounts.get(_required(values, "api_key"))
    if account is None:
        raise InputException("Invalid `api_key`.")
    return account


def _approved(request: web.Request, account: SimAccount, redirect_params: str) -> web.Response:
    """302 to the registered redirect URL with a fresh request token and ``redirect_params``' pairs.

    Kite sends ``redirect_params`` (a URL-encoded query string) back as the pairs it holds, e.g.
    ``redirect_params=state%3Dabc`` comes back as ``&state=abc``.
    """
    token = request.app[STATE].accounts.issue_request_token(account.api_key)
    params = [("request_token", token), ("action", "login"), ("type", "login"), ("status", "success")]
    params += parse_qsl(redirect_params, keep_blank_values=True)
    target = account.redirect_url or FINISH_PATH
    separator = "&" if "?" in target else "?"
    return web.Response(status=302, headers={"Location": f"{target}{separator}{urlencode(params)}"})


def _login_page(account: SimAccount, redirect_params: str) -> str:
    api_key, params = html.escape(account.api_key), html.escape(redirect_params)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Login to Kite (kitesim)</title></head>
<body><main>
<h1>Kite (simulated)</h1>
<p>App <code>{api_key}</code> asks to log in as <strong>{html.escape(account.user_id)}</strong>.</p>
<form method="post" action="/connect/login">
<input type="hidden" name="api_key" value="{api_key}">
<input type="hidden" name="redirect_params" value="{params}">
<button type="submit">Login</button>
</form>
</main></body></html>
"""


async def login_finished(request: web.Request) -> web.Response:
    """Where the login lands for an app with no registered redirect URL: its parameters, as data."""
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
    Route("POST", "/connect/login", login_submit, auth=False, versioned=False),
    Route("GET", FINISH_PATH, login_finished, auth=False, versioned=False),
    Route("POST", "/session/token", token_exchange, auth=False),
    Route("DELETE", "/session/token", token_invalidate, auth=False),
)
