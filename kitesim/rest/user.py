"""``/user/profile`` and ``/user/margins[/{segment}]``."""

from typing import Any

from aiohttp import web

from kitesim.accounts import SimAccount
from kitesim.errors import InputException
from kitesim.positions import MarginUse, segment_margins
from kitesim.rest.auth import request_account
from kitesim.rest.envelope import success
from kitesim.rest.keys import DESK
from kitesim.rest.pipeline import Route

SEGMENTS = ("equity", "commodity")


def profile_payload(account: SimAccount) -> dict[str, Any]:
    """Kite's profile object (``/user/profile``; the session payload adds the tokens)."""
    return {
        "user_id": account.user_id,
        "user_type": "individual",
        "email": f"{account.user_id.lower()}@kitesim.invalid",
        "user_name": f"Kite Simulator {account.user_id}",
        "user_shortname": "Simulator",
        "broker": "ZERODHA",
        "exchanges": ["NSE", "NFO", "BFO", "BSE"],
        "products": ["CNC", "NRML", "MIS", "BO", "CO"],
        "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
        "avatar_url": None,
        "meta": {"demat_consent": "physical"},
    }


def margins_payload(request: web.Request) -> dict[str, Any]:
    book = request.app[DESK].book(request_account(request))
    return {"equity": book.margins(), "commodity": segment_margins(0.0, 0.0, MarginUse())}


async def profile(request: web.Request) -> web.Response:
    return success(profile_payload(request_account(request)))


async def margins(request: web.Request) -> web.Response:
    return success(margins_payload(request))


async def segment_margin(request: web.Request) -> web.Response:
    segment = request.match_info["segment"]
    if segment not in SEGMENTS:
        raise InputException("Invalid segment. Use `equity` or `commodity`.")
    return success(margins_payload(request)[segment])


ROUTES = (
    Route("GET", "/user/profile", profile),
    Route("GET", "/user/margins", margins),
    Route("GET", "/user/margins/{segment}", segment_margin),
)
