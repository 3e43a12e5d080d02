from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class OrdersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "orders"

    def ready(self) -> None:
        # Malformed order settings stop start-up naming the variable, not the first order.
        from orders import schema  # noqa: F401 - registers the cached API-key scheme with drf-spectacular
        from orders.lookup_cache import forget_lookups_on_change
        from orders.ratelimit import parse_limits

        parse_limits(settings.ORDER_RATE_LIMITS, "ORDER_RATE_LIMITS")
        parse_limits(settings.ORDER_REQUEST_RATE_LIMITS, "ORDER_REQUEST_RATE_LIMITS")
        if not 0 < settings.ORDER_RATE_SAFETY < 1:
            raise ImproperlyConfigured(
                f"ORDER_RATE_SAFETY must be between 0 and 1, got {settings.ORDER_RATE_SAFETY}"
            )
        if settings.ORDER_LOOKUP_CACHE_S < 0:
            raise ImproperlyConfigured(
                f"ORDER_LOOKUP_CACHE_S must be 0 or more, got {settings.ORDER_LOOKUP_CACHE_S}"
            )
        forget_lookups_on_change()
