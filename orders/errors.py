"""The orders' members of the one ApplicationError family (tickerproject.exceptions maps them to HTTP)."""

from rest_framework import status

from tickerproject.exceptions import ApplicationError


class TradingNotPermittedError(ApplicationError):
    """The client may not trade on that account (or it does not exist: the two are not told apart)."""

    http_status = status.HTTP_403_FORBIDDEN


class KiteCallError(ApplicationError):
    """A synchronous Kite call (modify, cancel, positions, order book) did not succeed."""


class KiteRejectedError(KiteCallError):
    """Kite refused the request; its message says why."""


class KiteRateLimitedError(KiteCallError):
    http_status = status.HTTP_429_TOO_MANY_REQUESTS


class KiteUnavailableError(KiteCallError):
    """Kite is down or paused by the circuit breaker, or the account's access token was refused."""

    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
