from django.apps import AppConfig
from django.conf import settings


class TicksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ticks"

    def ready(self) -> None:
        from orders.ratelimit import parse_limits
        from ticks import schema  # noqa: F401 - registers the API-key scheme with drf-spectacular
        from ticks.bars.retention import check_retention_setting
        from ticks.clocks import check_clock_setting

        # Malformed values stop start-up naming the variable, not the first task that reads them.
        check_clock_setting(settings.MARKET_CLOCK)
        parse_limits(settings.BARS_HISTORICAL_RATE_LIMITS, "BARS_HISTORICAL_RATE_LIMITS")
        check_retention_setting(settings.BARS_RETENTION_DAYS)
