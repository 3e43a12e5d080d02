"""Test settings: the same env, fast hashing, and Redis database 15 of whatever Redis is configured.

Tests flush that database, so it must never be one a running system uses. The SQLite test
database is a file, so a Celery worker started by an integration test shares it.
"""

import os

from tickerproject.settings.base import *  # noqa: F403
from tickerproject.settings.base import (
    BASE_DIR,
    CACHES,
    CHANNEL_LAYERS,
    DATABASES,
    LOGGING,
    REDIS_URL,
    REST_FRAMEWORK,
)
from tickerproject.settings.environment import env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
LOGGING["root"]["level"] = "WARNING"

REDIS_URL = env.str("TEST_REDIS_URL", default=f"{REDIS_URL.rsplit('/', 1)[0]}/15")
CELERY_BROKER_URL = CELERY_RESULT_BACKEND = REDIS_URL
CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [REDIS_URL]
CACHES["throttle"]["LOCATION"] = REDIS_URL
# A run sends thousands of requests a minute from 127.0.0.1, wrong keys among them on purpose: the
# limits' own tests (tests/test_throttling.py) set the rates they test.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = dict.fromkeys(
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "1000000/min"
)
# Redis pub/sub ignores the database number: a prefix per test run keeps concurrent runs apart.
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = env.str("TEST_CHANNEL_PREFIX", default=f"test{os.getpid()}")
# The feeds' control channel too: another run's "stop account 1" must not stop this run's feed.
FEED_CONTROL_CHANNEL = f"{CHANNEL_LAYERS['default']['CONFIG']['prefix']}:feeds:control"

# Tests serve the app and run database_sync_to_async in threads of the test process, where a kept
# connection outlives its test (pytest-django then refuses it; PostgreSQL cannot drop the test database).
DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Per test run, so two runs on one machine never delete each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")}

# No collectstatic in tests: plain storage, files found in the apps.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
