"""API-key authentication: ``Authorization: Api-Key <key>`` or ``X-Api-Key: <key>``.

Every failure (wrong, revoked or expired key) counts against the client's address; past
AUTH_FAILURE_RATE in a window the address gets 429 before its key is looked at, so keys cannot be
guessed at request speed (tickerproject.throttling).
"""

from django.contrib.auth.models import AbstractBaseUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tickerproject.throttling import auth_failure_count, auth_failures_refuse
from ticks.models import ClientApiKey

KEYWORD = "Api-Key"

Authenticated = tuple[AbstractBaseUser, ClientApiKey]


def key_from(request: Request) -> str | None:
    """The key the request carries, from either header; None without one."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    keyword, _, key = header.partition(" ")
    if keyword == KEYWORD and key:
        return key.strip()
    return request.META.get("HTTP_X_API_KEY") or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Resolve a hashed client key to its user; a wrong key is a 401, never a fallthrough."""

    def authenticate(self, request: Request) -> Authenticated | None:
        key = key_from(request)
        if key is None:
            return None
        auth_failures_refuse(request)
        try:
            return self.authenticate_key(key)
        except exceptions.AuthenticationFailed:
            auth_failure_count(request)
            raise

    def authenticate_key(self, key: str) -> Authenticated:
        try:
            api_key = ClientApiKey.objects.get_from_key(key)  # verifies the hash
        except ClientApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        if api_key.has_expired or not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("API key revoked, expired or its user is inactive.")
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD
