"""OpenAPI: the order endpoints' cached API-key check is the same ``ApiKeyAuth`` scheme as ticks'."""

from drf_spectacular.drainage import set_override

from orders.authentication import CachedApiKeyAuthentication
from ticks.schema import ApiKeyAuthenticationScheme


class CachedApiKeyAuthenticationScheme(ApiKeyAuthenticationScheme):
    target_class = "orders.authentication.CachedApiKeyAuthentication"


# One scheme, two authenticator classes: without this drf-spectacular warns of a name collision.
set_override(CachedApiKeyAuthentication, "suppress_collision_warning", True)
