"""Single-use tickets for ``/ws/stream/`` (README "Live stream").

A browser cannot set a header on a WebSocket, and a key in the URL ends up in every access log on its
way. So a client that holds an API key (or a session) asks ``POST /api/v1/stream/tickets`` for a
ticket and connects with ``?ticket=``: random, valid for STREAM_TICKET_TTL_S, good for one
connection. Redis keeps only its sha256 (a ticket read out of Redis, or off a log line after use,
opens nothing) with the user and the key it was issued to; redeeming is one GETDEL, so two
connections racing with one ticket get one connection between them.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass
from functools import cache

import redis
import redis.asyncio
from django.conf import settings
from django.contrib.auth import get_user_model

from ticks.models import ClientApiKey

TICKET_KEY = "stream:ticket:{}"
TICKET = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
SESSION = "-"  # the key field of a ticket issued to a session


@dataclass(frozen=True, slots=True)
class StreamHolder:
    """Who a stream connection acts for: a user, through one API key or a session (key None)."""

    user_id: int
    key_prefix: str | None

    @property
    def cap_name(self) -> str:
        """What STREAM_MAX_CONNECTIONS_PER_KEY counts: the key, or the session user."""
        return f"key:{self.key_prefix}" if self.key_prefix else f"user:{self.user_id}"


@dataclass(frozen=True, slots=True)
class StreamTicket:
    ticket: str
    expires_in: int


def stream_ticket_issue(*, holder: StreamHolder) -> StreamTicket:
    """A fresh ticket for ``holder``; redis.ConnectionError/TimeoutError when Redis is out of reach
    (the API answers 503 with Retry-After: tickerproject.exceptions)."""
    ticket = secrets.token_urlsafe(32)
    ttl = settings.STREAM_TICKET_TTL_S
    _client(settings.REDIS_URL).set(_key(ticket), f"{holder.user_id}:{holder.key_prefix or SESSION}", ex=ttl)
    return StreamTicket(ticket=ticket, expires_in=ttl)


async def stream_ticket_redeem(client: redis.asyncio.Redis, ticket: str) -> StreamHolder | None:
    """The holder of a ticket, which is then spent; None for a malformed, unknown, spent or expired one."""
    if TICKET.fullmatch(ticket) is None:
        return None
    value = await client.getdel(_key(ticket))
    if value is None:
        return None
    user_id, _, key_prefix = value.decode().partition(":")
    return StreamHolder(int(user_id), None if key_prefix == SESSION else key_prefix)


def stream_holder_of_key(key: str) -> StreamHolder | None:
    """The holder of a usable API key (not revoked, not expired, its user active); None otherwise."""
    try:
        api_key = ClientApiKey.objects.get_from_key(key)  # verifies the hash
    except ClientApiKey.DoesNotExist:
        return None
    if api_key.has_expired or not api_key.user.is_active:
        return None
    return StreamHolder(api_key.user_id, api_key.prefix)


def stream_holder_active(holder: StreamHolder) -> bool:
    """Whether a ticket's holder may still stream: a key revoked or a user deactivated since the
    ticket was issued opens nothing."""
    if holder.key_prefix is None:
        return get_user_model().objects.filter(pk=holder.user_id, is_active=True).exists()
    api_key = ClientApiKey.objects.get_usable_keys().filter(prefix=holder.key_prefix).first()
    return (
        api_key is not None
        and api_key.user_id == holder.user_id
        and not api_key.has_expired
        and api_key.user.is_active
    )


def _key(ticket: str) -> str:
    return TICKET_KEY.format(hashlib.sha256(ticket.encode()).hexdigest())


@cache
def _client(url: str) -> redis.Redis:
    """One pool per web process for the API's threads; a Redis that does not answer fails fast."""
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
