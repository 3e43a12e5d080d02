"""API-key authentication: ``Authorization: Api-Key <key>`` or ``X-Api-Key: <key>``."""

from django.contrib.auth.models import AbstractBaseUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from ticks.models import ClientApiKey

KEYWORD = "Api-Key"


def key_from(request: Request) -> str | None:
    """The key the request carries, from either header; None without one."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    keyword, _, key = header.partition(" ")
    if keyword == KEYWORD and key:
        return key.strip()
    return request.META.get("HTTP_X_API_KEY") or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Resolve a hashed client key to its user; a wrong key is a 401, never a fallthrough."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, ClientApiKey] | None:
        key = key_from(request)
        if key is None:
            return None
        try:
            api_key = ClientApiKey.objects.get_from_key(key)  # verifies the hash
        except ClientApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        if api_key.has_expired or not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("API key revoked, expired or its user is inactive.")
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD
