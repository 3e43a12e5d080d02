from django.apps import AppConfig
from django.conf import settings


class TicksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ticks"

    def ready(self) -> None:
        from ticks import schema  # noqa: F401 - registers the API-key scheme with drf-spectacular
        from ticks.clocks import check_clock_setting

        check_clock_setting(settings.MARKET_CLOCK)  # a malformed clock stops start-up, naming the variable
