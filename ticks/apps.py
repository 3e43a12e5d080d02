from django.apps import AppConfig


class TicksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ticks"

    def ready(self) -> None:
        from ticks import schema  # noqa: F401 - registers the API-key scheme with drf-spectacular
