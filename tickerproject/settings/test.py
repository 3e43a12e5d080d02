"""Test settings: the same env, with fast hashing. DATABASE_URL picks SQLite or PostgreSQL."""

from tickerproject.settings.base import *  # noqa: F403
from tickerproject.settings.environment import env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
