"""REST API limits (README "REST API (v1)", "Limits"), counted in Redis so every web process shares them.

Each limit is a fixed window per client: the first request opens a Redis key that lives one period, and
every request increments it, in one MULTI pipeline (SET NX EX, INCR, PTTL), so no interleaving can
leave a counter without its expiry. DRF's own SimpleRateThrottle keeps a list of timestamps per
client in the cache and rewrites it on every request, unlocked: costlier, and racy across processes.

A Redis that does not answer lets requests through (fail open): a limit is not worth refusing an order
the service could store. Each such request counts in ``throttle_unavailable_total``; the web process
logs it once a minute.

The client's address is REMOTE_ADDR alone: uvicorn sets it from the proxy's X-Forwarded-For when the
proxy is trusted (``--forwarded-allow-ips``); reading the header here would let a client choose its own.
"""

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from axes.helpers import get_cool_off, get_lockout_message
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from ticks.models import ClientApiKey

if TYPE_CHECKING:  # DRF loads this module while rest_framework.views is still importing
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

CACHE = "throttle"  # settings.CACHES entry
AUTH_FAILURE_SCOPE = "auth_failure"  # its rate sits beside the throttles' in DEFAULT_THROTTLE_RATES
UNAVAILABLE_LOG_EVERY_S = 60.0
USERNAME_MAX_LENGTH = 150  # django.contrib.auth's User.username

THROTTLED = Counter("throttled_total", "REST requests refused with 429, by limit", ["limit"])
UNAVAILABLE = Counter(
    "throttle_unavailable_total", "REST requests let through unchecked because Redis did not answer"
)

PERIODS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_unavailable_logged_at: float | None = None


def rate_parse(rate: str) -> tuple[int, int]:
    """``"1200/min"`` -> (1200, 60): DRF's form, COUNT/PERIOD, the period read by its first letter."""
    count, period = rate.split("/")
    return int(count), PERIODS_S[period[0]]


@dataclass(frozen=True)
class Window:
    """A client's current window: requests counted in it so far, and the milliseconds it has left."""

    count: int
    ms_left: int

    @property
    def wait_s(self) -> int:
        """Whole seconds until the window closes (Retry-After), at least 1."""
        return max(1, math.ceil(self.ms_left / 1000))


def client_ip(request: HttpRequest | Request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def window_hit(key: str, period_s: int) -> Window | None:
    """Count one request in ``key``'s window (opened now if none is); None when Redis does not answer."""
    cache = caches[CACHE]
    name = cache.make_key(key)
    try:
        # Django's RedisCache offers no pipeline and its incr() is EXISTS then INCR, which can create a
        # key with no expiry (a limit that never lifts), so the counter goes through its own client.
        client = cache._cache.get_client(name, write=True)
        with client.pipeline(transaction=True) as pipeline:
            pipeline.set(name, 0, ex=period_s, nx=True)
            pipeline.incr(name)
            pipeline.pttl(name)
            _, count, ms_left = pipeline.execute()
    except redis.RedisError as error:
        _fail_open(error)
        return None
    return Window(count=count, ms_left=ms_left)


def window_read(key: str) -> Window | None:
    """``key``'s current window without counting; an empty one when there is none, None without Redis."""
    cache = caches[CACHE]
    name = cache.make_key(key)
    try:
        client = cache._cache.get_client(name)
        with client.pipeline(transaction=True) as pipeline:
            pipeline.get(name)
            pipeline.pttl(name)
            count, ms_left = pipeline.execute()
    except redis.RedisError as error:
        _fail_open(error)
        return None
    return Window(count=int(count or 0), ms_left=max(ms_left, 0))


def _fail_open(error: redis.RedisError) -> None:
    global _unavailable_logged_at
    UNAVAILABLE.inc()
    now = time.monotonic()
    if _unavailable_logged_at is None or now - _unavailable_logged_at >= UNAVAILABLE_LOG_EVERY_S:
        _unavailable_logged_at = now
        logger.warning(
            "REST limits not enforced: Redis unreachable (%s); counting in throttle_unavailable_total", error
        )


class FixedWindowThrottle(SimpleRateThrottle):
    """DRF's rate throttle over one Redis counter per client and window (see the module)."""

    _wait_s = 1

    def get_rate(self) -> str:
        # Read per request (DRF builds the throttles per request), so a changed setting counts at once.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def parse_rate(self, rate: str) -> tuple[int, int]:
        return rate_parse(rate)

    def allow_request(self, request: Request, view: "APIView") -> bool:
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        window = window_hit(f"{self.scope}:{key}", self.duration)
        if window is None or window.count <= self.num_requests:
            return True
        self._wait_s = window.wait_s
        THROTTLED.labels(self.scope).inc()
        return False

    def wait(self) -> int:
        return self._wait_s


class ApiKeyRateThrottle(FixedWindowThrottle):
    """Requests per API key (``THROTTLE_KEY_RATE``), however many processes and addresses use it."""

    scope = "key"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        api_key = request.auth
        return api_key.prefix if isinstance(api_key, ClientApiKey) else None


class ClientIpRateThrottle(FixedWindowThrottle):
    """Requests per address of everything not under an API key: sessions, and anonymous requests where
    a view lets them in (``THROTTLE_IP_RATE``)."""

    scope = "ip"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        return None if isinstance(request.auth, ClientApiKey) else client_ip(request)


def _auth_failure_limit() -> tuple[int, int]:
    return rate_parse(api_settings.DEFAULT_THROTTLE_RATES[AUTH_FAILURE_SCOPE])


def auth_failures_refuse(request: Request) -> None:
    """Raise Throttled (429) when the client's address has failed authentication AUTH_FAILURE_RATE
    times in its window: the key it sends now is not even checked."""
    limit, _ = _auth_failure_limit()
    window = window_read(f"{AUTH_FAILURE_SCOPE}:{client_ip(request)}")
    if window is not None and window.count >= limit:
        THROTTLED.labels(AUTH_FAILURE_SCOPE).inc()
        raise Throttled(wait=window.wait_s, detail="Too many failed authentications from this address.")


def auth_failure_count(request: Request) -> None:
    """Count one failed authentication (wrong, revoked or expired key) against the client's address."""
    _, period_s = _auth_failure_limit()
    window_hit(f"{AUTH_FAILURE_SCOPE}:{client_ip(request)}", period_s)


def login_username(request: HttpRequest, credentials: dict | None) -> str:
    """The username axes counts a login under (AXES_USERNAME_CALLABLE), cut to the longest a user can
    have: axes stores it in a 255-character column, and a longer one was a 500 on PostgreSQL."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    return str(username)[:USERNAME_MAX_LENGTH]


def login_lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): 429 with Retry-After, the
    whole cool-off, as every attempt during a lockout starts it again."""
    response = HttpResponse(get_lockout_message(), status=429, content_type="text/plain")
    cool_off = get_cool_off(request)
    if cool_off is not None:
        response["Retry-After"] = str(math.ceil(cool_off.total_seconds()))
    return response
