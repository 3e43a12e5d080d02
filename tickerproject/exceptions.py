"""One application error family, mapped to HTTP by one DRF exception handler."""

from typing import Any

import kombu.exceptions
import redis
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A domain failure a client can act on. ``field`` names the offending input."""

    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, field: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}


class NotFoundError(ApplicationError):
    http_status = status.HTTP_404_NOT_FOUND


class ConflictError(ApplicationError):
    http_status = status.HTTP_409_CONFLICT


# Redis (cache, rate limits, breaker) or the Celery broker out of reach. A view lets one through only
# before it has stored anything (a stored order is answered 201 and left to the sweeper), so the
# honest answer is "nothing happened, try again shortly".
BACKEND_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError)
BACKEND_RETRY_AFTER_S = 5


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"detail": exc.message, **exc.extra}
        if exc.field:
            body = {exc.field: [exc.message], **body}
        # A client library reads the header, not our body (a 429 or 503 from Kite's limits or breaker).
        headers = {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else None
        return Response(body, status=exc.http_status, headers=headers)
    if isinstance(exc, BACKEND_UNAVAILABLE):
        return Response(
            {"detail": "A backing service is unavailable; nothing was changed. Retry shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(BACKEND_RETRY_AFTER_S)},
        )
    return exception_handler(exc, context)
