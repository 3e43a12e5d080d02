from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "tickerproject.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from tickerproject.audit.receivers import connect_receivers

        connect_receivers()
