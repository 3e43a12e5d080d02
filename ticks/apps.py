from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


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
        _warm_market_calendar()


def _warm_market_calendar() -> None:
    """Load the calendar now: the first order or tick does not pay for it, and a bad file stops start-up."""
    from ticks.exchange_calendar import HOLIDAYS_FILE_ENV, HolidayFileError, market_calendar

    try:
        market_calendar()
    except HolidayFileError as error:
        raise ImproperlyConfigured(f"{HOLIDAYS_FILE_ENV}: {error}") from None
    except OSError as error:
        raise ImproperlyConfigured(f"{HOLIDAYS_FILE_ENV}: cannot read the holidays file: {error}") from None
