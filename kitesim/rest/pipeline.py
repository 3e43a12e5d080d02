"""The REST request path: the edge middleware and the per-route wrapper.

Edge (app middleware, REST routes and unknown routes only): injected faults, Kite error envelopes,
the one catch-all that turns a bug into a logged GeneralException 500, and injected latency.
Per route: the X-Kite-Version check, authentication, then the per-api_key rate limit.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from kitesim.errors import GeneralException, KiteError, NetworkException
from kitesim.rest.auth import authenticate, require_version
from kitesim.rest.envelope import error_response, from_http_exception
from kitesim.rest.keys import ACCOUNT, LIMITER, STATE

log = logging.getLogger("kitesim.rest")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REST_MARK = "__kitesim_rest__"
TOO_MANY = "Too many requests"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    bucket: str = "default"  # rate-limit bucket, see ratelimit.KITE_LIMITS
    auth: bool = True        # needs Authorization (the session routes do not)
    versioned: bool = True   # needs X-Kite-Version (the browser login pages do not)


def kite_route(route: Route) -> Handler:
    """Wrap a handler with version check, authentication and rate limiting."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if route.versioned:
            require_version(request)
        if route.auth:
            account = authenticate(request, request.app[STATE])
            request[ACCOUNT] = account
            if not request.app[LIMITER].allow(account.api_key, route.bucket):
                raise NetworkException(TOO_MANY, status=429)
        return await route.handler(request)

    setattr(handle, REST_MARK, True)
    return handle


def _is_rest(request: web.Request) -> bool:
    match_info = request.match_info
    if match_info.http_exception is not None:
        return request.headers.get("Upgrade", "").lower() != "websocket"
    return getattr(match_info.handler, REST_MARK, False)


def _injected_fault(request: web.Request) -> KiteError | None:
    faults = request.app[STATE].faults
    if faults.take("rest_5xx_next"):
        return GeneralException("Service unavailable (injected fault)", status=503)
    if faults.take("rest_429_next"):
        return NetworkException(TOO_MANY, status=429)
    return None


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is None:
        fault = _injected_fault(request)
        if fault is not None:
            raise fault
    try:
        return await handler(request)
    except web.HTTPException as exc:
        raise from_http_exception(exc) from exc


@web.middleware
async def kite_edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_rest(request):
        return await handler(request)
    try:
        response = await _answer(request, handler)
    except KiteError as error:
        log.warning("rejected %s %s: %d %s %s", request.method, request.rel_url, error.status,
                    error.error_type, error.message)
        response = error_response(error)
    except Exception:  # the request edge: a bug must not kill the server or leave the client hanging
        log.exception("internal error answering %s %s", request.method, request.rel_url)
        response = error_response(GeneralException("Something went wrong. Please try again.", status=500))
    latency_ms = request.app[STATE].faults.rest_latency_ms
    if latency_ms > 0:
        await asyncio.sleep(latency_ms / 1000.0)
    return response
