import logging
import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging
from celery.worker.consumer import Consumer as CeleryConsumer
from django.conf import settings
from django_structlog.celery.steps import DjangoStructLogInitStep

from tickerproject.logging import logging_configure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tickerproject.settings.base")

app = Celery("tickerproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# django-structlog's worker side: binds task_id and the publisher's context (request_id, order_id, ...)
# at each task's start, and logs task_started/succeeded/failed (DJANGO_STRUCTLOG_CELERY_ENABLED does the
# publishing side, in every process that enqueues).
app.steps["worker"].add(DjangoStructLogInitStep)


@setup_logging.connect
def logging_setup(loglevel: int | str | None = None, **kwargs: Any) -> None:
    """Celery's logging is Django's (README "Logs"): connecting here stops Celery from replacing the root
    logger's handlers with its own plain format. ``--loglevel`` still sets the root level, as before."""
    logging_configure(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


class Consumer(CeleryConsumer):
    """Celery 5.7.0's consumer, made to survive losing a Redis broker while it holds reserved messages
    (settings: CELERY_WORKER_CONSUMER).

    On a lost broker connection 5.7.0 first collects the connection, which drops its transport, and
    then closes it. Closing a Redis channel that still holds reserved, unacknowledged messages restores
    them through that dropped transport: an AttributeError ("'NoneType' object has no attribute
    'hostname'") that is not a connection error, so the worker stopped ("Unrecoverable error") instead
    of reconnecting (tests/workers/test_feed_faults.py, Redis restarted under a worker whose one free
    process was busy). Here the collect is the whole clean-up, as in Celery 5.6: the restart opens a new
    connection, and the reserved messages are Redis's to restore (visibility timeout) or lost with it.
    """

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        if self.connection is not None:
            self.connection.close = _collected  # type: ignore[method-assign]
        super().on_connection_error_after_connected(exc)


def _collected() -> None:
    """The collected connection's close: its transport is already released."""
