"""The request id: taken from ``X-Request-ID`` when it is a safe token, else made here; echoed in the response.

django-structlog's RequestMiddleware binds a ``request_id`` for every log line of the request (and
for the Celery tasks the request enqueues), but it either trusts the header blindly or ignores it, and
never echoes it. This middleware runs just outside it: it picks the id, and a receiver of the
library's ``bind_extra_request_metadata`` signal binds that id before the ``request_started`` line.
"""

import re
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django_structlog.signals import bind_extra_request_metadata

HEADER = "X-Request-ID"
# A proxy's or a client's id (nginx's $request_id, a UUID, a trace id): bounded, and nothing that could
# forge a log line or a header (no spaces, quotes, newlines).
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_accept(given: str | None) -> str:
    """The given id when it is acceptable, otherwise a new one."""
    if given is not None and _ACCEPTABLE.fullmatch(given):
        return given
    return str(uuid.uuid4())


class RequestIdMiddleware:
    """Must come right before ``django_structlog.middlewares.RequestMiddleware`` in MIDDLEWARE."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_accept(request.headers.get(HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


@receiver(bind_extra_request_metadata, dispatch_uid="tickerproject.request_id")
def _request_id_bind(request: HttpRequest, **kwargs: Any) -> None:
    """Replaces the id RequestMiddleware generated, before it logs ``request_started``."""
    request_id = getattr(request, "request_id", None)
    if request_id is not None:
        structlog.contextvars.bind_contextvars(request_id=request_id)
