import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tickerproject.settings.base")

app = Celery("tickerproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
