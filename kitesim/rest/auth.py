"""Kite's request signing: ``X-Kite-Version: 3`` and ``Authorization: token api_key:access_token``."""

import re

from aiohttp import web

from kitesim.accounts import SimAccount
from kitesim.errors import InputException, TokenException
from kitesim.rest.keys import ACCOUNT
from kitesim.state import SimState

AUTHORIZATION = re.compile(r"token (?P<api_key>[^:\s]+):(?P<access_token>\S+)")
INCORRECT_CREDENTIALS = "Incorrect `api_key` or `access_token`."


def require_version(request: web.Request) -> None:
    if request.headers.get("X-Kite-Version") != "3":
        raise InputException("Missing or invalid `X-Kite-Version` header; Kite Connect v3 needs `3`.")


def authenticate(request: web.Request, state: SimState) -> SimAccount:
    """The account signing this request; TokenException (403) when the pair is unknown or expired."""
    match = AUTHORIZATION.fullmatch(request.headers.get("Authorization", "").strip())
    if match is None:
        raise TokenException(INCORRECT_CREDENTIALS)
    account = state.accounts.authenticate(match["api_key"], match["access_token"], state.clock.now())
    if account is None:
        raise TokenException(INCORRECT_CREDENTIALS)
    return account


def request_account(request: web.Request) -> SimAccount:
    """The account :func:`authenticate` stored on an authenticated route's request."""
    return request[ACCOUNT]
