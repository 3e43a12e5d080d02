"""API-key authentication for the order endpoints, remembered per key (orders.lookup_cache).

Checking a key is a database query on every request; an algo sends the same key hundreds of times a
second. A key revoked or a user deactivated through the ORM stops working at the next request; a key's
expiry date still counts to the second. It runs first in every order request, so it reads the lookup
generation for the request. Failures count against the client's address exactly as in ticks' check,
and an address over AUTH_FAILURE_RATE is refused before the cache is consulted.
"""

import hashlib

from django.conf import settings
from rest_framework.request import Request

from orders.lookup_cache import LookupCache, lookups_begin
from ticks.authentication import ApiKeyAuthentication, Authenticated

# sha256 of the request's API key (the cache never holds a key in clear) -> the user and key it proved.
API_KEYS: LookupCache[bytes, Authenticated] = LookupCache(lambda: settings.ORDER_LOOKUP_CACHE_S)


class CachedApiKeyAuthentication(ApiKeyAuthentication):
    """ticks' API-key check (a wrong key is a 401), its success remembered for ORDER_LOOKUP_CACHE_S."""

    def authenticate(self, request: Request) -> Authenticated | None:
        lookups_begin()
        return super().authenticate(request)

    def authenticate_key(self, key: str) -> Authenticated:
        credentials = hashlib.sha256(key.encode()).digest()
        cached = API_KEYS.get(credentials)
        if cached is not None and not cached[1].has_expired:
            return cached
        authenticated = super().authenticate_key(key)
        API_KEYS.put(credentials, authenticated)
        return authenticated
