"""API-key authentication for the order endpoints, remembered per key (orders.lookup_cache).

Checking a key is a database query on every request; an algo sends the same key hundreds of times a
second. A key revoked or a user deactivated through the ORM stops working at the next request; a key's
expiry date still counts to the second. It runs first in every order request, so it reads the lookup
generation for the request.
"""

import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from rest_framework.request import Request

from orders.lookup_cache import LookupCache, lookups_begin
from ticks.authentication import ApiKeyAuthentication
from ticks.models import ClientApiKey

Authenticated = tuple[AbstractBaseUser, ClientApiKey]

# sha256 of the request's key headers -> the user and key they proved (README "Orders").
API_KEYS: LookupCache[bytes, Authenticated] = LookupCache(lambda: settings.ORDER_LOOKUP_CACHE_S)


def _credentials(request: Request) -> bytes | None:
    """The headers a key can come in, hashed: the cache never holds a key in clear."""
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    header_key = request.META.get("HTTP_X_API_KEY", "")
    if not authorization and not header_key:
        return None
    return hashlib.sha256(f"{authorization}\n{header_key}".encode()).digest()


class CachedApiKeyAuthentication(ApiKeyAuthentication):
    """ticks' API-key check (a wrong key is a 401), its success remembered for ORDER_LOOKUP_CACHE_S."""

    def authenticate(self, request: Request) -> Authenticated | None:
        lookups_begin()
        credentials = _credentials(request)
        if credentials is None:
            return None
        cached = API_KEYS.get(credentials)
        if cached is not None and not cached[1].has_expired:
            return cached
        authenticated = super().authenticate(request)
        if authenticated is not None:
            API_KEYS.put(credentials, authenticated)
        return authenticated
