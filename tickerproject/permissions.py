"""Who may call the REST API: the project's one default permission (REST_FRAMEWORK in settings).

A request authenticated by an API key is held to the key's scope: ``read`` and ``trade`` keys may read
(GET, HEAD, OPTIONS), only ``trade`` keys may write (place, modify, cancel, save). A session (the
dashboard, admin staff) keeps the user's own access: the views decide what a user may touch.
"""

from typing import TYPE_CHECKING

from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.request import Request

from ticks.models import ClientApiKey

if TYPE_CHECKING:  # DRF loads this module while rest_framework.views is still importing
    from rest_framework.views import APIView

Scope = ClientApiKey.Scope


def scope_needed(method: str) -> Scope:
    """The least scope a key needs for ``method``."""
    return Scope.READ if method in SAFE_METHODS else Scope.TRADE


def scope_allows(scope: str, method: str) -> bool:
    return scope == Scope.TRADE or scope_needed(method) == Scope.READ


class ScopedKeyOrSession(IsAuthenticated):
    """Authenticated, and an API key's scope covers the method; a refusal (403) names the scope needed."""

    def has_permission(self, request: Request, view: "APIView") -> bool:
        if not super().has_permission(request, view):
            return False  # DRF answers 401 when no credentials were given, 403 otherwise
        api_key = request.auth
        if not isinstance(api_key, ClientApiKey) or scope_allows(api_key.scope, request.method):
            return True
        # One instance per request (APIView.get_permissions), so the message is this request's own.
        self.message = (
            f"This API key's scope is {api_key.scope}; {request.method} needs a "
            f"{scope_needed(request.method)} key."
        )
        return False
