"""Production: secrets have no default and are checked at start-up; TLS ends at the reverse proxy.

A missing or bad value stops every process (web, workers, beat, flower) at settings import, naming
the variable (README "Configuration", "Production deployment").
"""

from django.core.exceptions import ImproperlyConfigured

from tickerproject.logging import logging_settings
from tickerproject.settings import secrets
from tickerproject.settings.base import *  # noqa: F403
from tickerproject.settings.base import (
    CELERY_BROKER_URL,
    CELERY_RESULT_BACKEND,
    CSRF_TRUSTED_ORIGINS,
    DEV_FIELD_ENCRYPTION_KEY,
    DEV_SECRET_KEY,
    INSTALLED_APPS,
    LOG_LEVEL,
    MARKET_CLOCK,
    database_from_url,
)
from tickerproject.settings.environment import env

DEBUG = False
# JSON lines, one per record, with the request, order, account and task ids (README "Logs").
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logging_settings(LOG_FORMAT, LOG_LEVEL)

# --- Secrets and addresses: required, checked now --------------------------
SECRET_KEY = secrets.secret_key("DJANGO_SECRET_KEY", env.str("DJANGO_SECRET_KEY"), DEV_SECRET_KEY)
FIELD_ENCRYPTION_KEYS = secrets.fernet_keys(
    "FIELD_ENCRYPTION_KEYS", env.list("FIELD_ENCRYPTION_KEYS"), published=DEV_FIELD_ENCRYPTION_KEY
)
# base.py checked the URL's scheme; here it must be given.
DATABASES = {"default": database_from_url(env.str("DATABASE_URL"))}
REDIS_URL = secrets.url("REDIS_URL", env.str("REDIS_URL"), secrets.REDIS_SCHEMES)
secrets.url("CELERY_BROKER_URL", CELERY_BROKER_URL, secrets.REDIS_SCHEMES)
secrets.url("CELERY_RESULT_BACKEND", CELERY_RESULT_BACKEND, secrets.REDIS_SCHEMES)
METRICS_TOKEN = secrets.token("METRICS_TOKEN", env.str("METRICS_TOKEN"), secrets.METRICS_TOKEN_MIN_LENGTH)
# Flower reads the variable itself (tickerproject/flowerconfig.py); checked here too, so a deployment
# missing it fails at its first process, not at the one nobody watches.
secrets.basic_auth("FLOWER_BASIC_AUTH", env.str("FLOWER_BASIC_AUTH"))

# --- Kite: the real one, never the simulator ------------------------------
KITE_ROOT = secrets.url("KITE_ROOT", env.str("KITE_ROOT"), secrets.HTTP_SCHEMES)
KITE_WS_ROOT = secrets.url(
    "KITE_WS_ROOT",
    env.str("KITE_WS_ROOT", default=KITE_ROOT.replace("http", "ws", 1)),
    secrets.WEBSOCKET_SCHEMES,
)
KITE_LOGIN_URL = secrets.url(
    "KITE_LOGIN_URL",
    env.str("KITE_LOGIN_URL", default="https://kite.zerodha.com/connect/login"),
    secrets.HTTP_SCHEMES,
)
# kitesim is a dev/demo tool: not installed, so `manage.py kitesim` does not exist and nothing imports it.
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "kitesim"]
if MARKET_CLOCK != "wall":
    # kitesim's clock would be read from the simulator; a frozen one would trade on a stopped clock.
    raise ImproperlyConfigured(f"MARKET_CLOCK must be wall in production, got {MARKET_CLOCK!r}")

# --- Hosts and HTTPS (TLS ends at nginx: deploy/) --------------------------
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must name the service's hosts (no '*')")
for origin in CSRF_TRUSTED_ORIGINS:
    if not origin.startswith("https://"):
        raise ImproperlyConfigured(f"DJANGO_CSRF_TRUSTED_ORIGINS: {origin!r} is not an https:// origin")
# The proxy sets this header and must strip any copy a client sends: whoever can set it can claim HTTPS.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# A load balancer's probe and Prometheus may call uvicorn on loopback over plain HTTP (metrics needs its token).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = False  # collectstatic on release
