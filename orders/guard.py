"""One synchronous Kite call from a web request or a beat task, behind the account's circuit breaker
and the api_key's request bucket, with Kite's failures turned into KiteCallErrors.

The submission path (orders.submission) uses the same breaker and buckets but decides itself what
each outcome means for an order, because there an unknown outcome is not an error but a lookup.
"""

import logging
import math
from collections.abc import Callable
from typing import TypeVar

import redis
from django.utils import timezone
from kiteconnect import KiteConnect

from orders.breaker import CircuitBreaker
from orders.errors import KiteCallError, KiteRateLimitedError, KiteRejectedError, KiteUnavailableError
from orders.kite import KITE_CALL_ERRORS, KiteOutcome, classify, describe
from orders.ratelimit import request_bucket
from orders.redis_io import orders_redis
from ticks.kite import kite_client_for
from ticks.models import BrokerAccount
from ticks.services import broker_account_mark_health

logger = logging.getLogger(__name__)
T = TypeVar("T")


def kite_call(account: BrokerAccount, call: Callable[[KiteConnect], T], *, max_wait: float = 1.0) -> T:
    client = orders_redis()
    breaker = CircuitBreaker(client, account.pk)
    paused = breaker.allow()
    if paused:
        raise KiteUnavailableError(
            f"Kite calls for account {account.name} are paused after repeated failures; retry in {math.ceil(paused)} s.",
            extra={"retry_after": math.ceil(paused)},
        )
    wait = request_bucket(client, account.api_key).acquire(max_wait)
    if wait:
        raise KiteRateLimitedError(
            f"Kite's request rate limit for account {account.name} is reached; retry in {math.ceil(wait)} s.",
            extra={"retry_after": math.ceil(wait)},
        )
    try:
        result = call(kite_client_for(account))
    except KITE_CALL_ERRORS as error:
        raise _mapped(account, breaker, error) from error
    _after_kite(breaker.record_success)
    return result


def _after_kite(record: Callable[[], None]) -> None:
    """Kite has acted: Redis lost just now must not turn the answer into "nothing changed" (503)."""
    try:
        record()
    except redis.RedisError as error:
        logger.warning("circuit breaker not updated after a Kite call: Redis unreachable (%s)", error)


def account_token_refused(account: BrokerAccount, error: Exception) -> None:
    """Kite refused the access token: visible in admin and stops the feeds' retries too."""
    logger.warning("account %s: Kite refused the access token (%s)", account.name, describe(error))
    broker_account_mark_health(
        account=account, health=BrokerAccount.Health.TOKEN_EXPIRED, reason=describe(error), at=timezone.now()
    )


def _mapped(account: BrokerAccount, breaker: CircuitBreaker, error: Exception) -> KiteCallError:
    outcome = classify(error)
    if outcome is KiteOutcome.UNKNOWN:
        _after_kite(breaker.record_failure)
        return KiteUnavailableError(f"Kite did not answer ({describe(error)}); the outcome is unknown.")
    _after_kite(breaker.record_success)
    if outcome is KiteOutcome.TOKEN:
        account_token_refused(account, error)
        return KiteUnavailableError(
            f"Kite refused account {account.name}'s access token; an operator must log in again.",
            field="account",
        )
    if outcome is KiteOutcome.THROTTLED:
        return KiteRateLimitedError("Kite answered 429 Too many requests.", extra={"retry_after": 1})
    return KiteRejectedError(str(error), extra={"kite_error": type(error).__name__})
