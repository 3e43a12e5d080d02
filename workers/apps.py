from django.apps import AppConfig


class WorkersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "workers"

    def ready(self) -> None:
        from celery.signals import worker_shutting_down

        from workers.shutdown import feeds_stop_on_shutdown

        worker_shutting_down.connect(feeds_stop_on_shutdown, weak=False)
