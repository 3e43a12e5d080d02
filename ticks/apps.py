from django.apps import AppConfig


class TicksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ticks"
