"""One application error family, mapped to HTTP by one DRF exception handler."""

from typing import Any

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


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"detail": exc.message, **exc.extra}
        if exc.field:
            body = {exc.field: [exc.message], **body}
        return Response(body, status=exc.http_status)
    return exception_handler(exc, context)
