"""Makes the request being served known to the audit receivers, which Django's model signals do not carry."""

from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

# The request, not its user: DRF authenticates API keys inside the view and then sets request.user, so
# the user is read when an event is recorded. asgi.py's a2wsgi runs each request in a copy of the
# context; WSGI servers and the test client reuse threads, hence the reset.
current_request: ContextVar[HttpRequest | None] = ContextVar("audit_current_request", default=None)


class AuditRequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            current_request.reset(token)
