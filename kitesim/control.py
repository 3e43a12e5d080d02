"""``/_sim/*``: the simulator's own admin endpoints (not Kite's): faults, drops, token expiry, state."""

import copy
import json
from datetime import datetime
from typing import Any

from aiohttp import web

from kitesim.clock import IST
from kitesim.state import SimState
from kitesim.ticker import HUB_KEY

STATE_KEY: web.AppKey[SimState] = web.AppKey("kitesim_state", SimState)


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The JSON object body, ``{}`` when empty; 400 when it is not a JSON object."""
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"invalid JSON: {exc}"}), content_type="application/json"
        ) from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        )
    return body


async def faults_get(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].faults.as_dict())


async def faults_post(request: web.Request) -> web.Response:
    """Apply all the changes or none: each field is tried on a copy first, so a 400 names it."""
    faults = request.app[STATE_KEY].faults
    body = await _json_body(request)
    for name, value in body.items():
        try:
            copy.copy(faults).update({name: value})
        except ValueError as exc:
            return web.json_response({"error": str(exc), "field": name}, status=400)
    faults.update(body)
    return web.json_response(faults.as_dict())


async def _api_key_filter(request: web.Request) -> str | None:
    body = await _json_body(request)
    return request.query.get("api_key") or body.get("api_key")


async def drop_post(request: web.Request) -> web.Response:
    dropped = request.app[HUB_KEY].drop(await _api_key_filter(request))
    return web.json_response({"dropped": dropped})


async def expire_tokens_post(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    api_key = await _api_key_filter(request)
    now = state.clock.now()
    if api_key is None:
        state.accounts.expire_all(now)
        expired = len(list(state.accounts))
    else:
        account = state.accounts.get(api_key)
        if account is not None:
            account.token_expires_at = now
        expired = int(account is not None)
    return web.json_response({"expired": expired, "dropped": request.app[HUB_KEY].drop_expired()})


async def clock_post(request: web.Request) -> web.Response:
    """``{"advance_seconds": N}`` moves simulated time forward (the market follows at its next step)."""
    state = request.app[STATE_KEY]
    body = await _json_body(request)
    seconds = body.get("advance_seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return web.json_response(
            {"error": "advance_seconds must be a number >= 0", "field": "advance_seconds"}, status=400
        )
    state.clock.jump(float(seconds))
    return web.json_response(_clock_view(state))


def _clock_view(state: SimState) -> dict[str, Any]:
    now = state.clock.now()
    return {"now": now, "now_ist": datetime.fromtimestamp(now, IST).isoformat(), "speed": state.clock.speed}


async def state_get(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    hub = request.app[HUB_KEY].snapshot()
    market = state.market
    return web.json_response(
        {
            **_clock_view(state),
            "session": market.session.isoformat(),
            "instruments": len(market.universe),
            "subscriptions": sum(c["subscriptions"] for c in hub["connections"].values()),
            **hub,
            "peers": _peers(request),
            "faults": state.faults.as_dict(),
        }
    )


def _peers(request: web.Request) -> dict[str, str]:
    """Each connection's client address: which host streams which account (``make chaos``'s host cut)."""
    peers = {}
    for conn_id, conn in request.app[HUB_KEY].connections.items():
        peer = conn.transport.get_extra_info("peername") if conn.transport is not None else None
        peers[str(conn_id)] = peer[0] if peer else ""
    return peers


def register_control_routes(app: web.Application, state: SimState) -> None:
    app[STATE_KEY] = state
    app.router.add_get("/_sim/faults", faults_get)
    app.router.add_post("/_sim/faults", faults_post)
    app.router.add_post("/_sim/drop", drop_post)
    app.router.add_post("/_sim/expire_tokens", expire_tokens_post)
    app.router.add_post("/_sim/clock", clock_post)
    app.router.add_get("/_sim/state", state_get)
