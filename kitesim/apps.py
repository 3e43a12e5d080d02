from django.apps import AppConfig


class KitesimConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "kitesim"
