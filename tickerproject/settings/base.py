"""Settings shared by every environment, read through one django-environ ``env``.

Every variable is documented in README "Configuration". A missing or malformed value
fails at import time with the variable's name (django-environ raises ImproperlyConfigured).
"""

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from tickerproject.logging import logging_settings
from tickerproject.settings import secrets
from tickerproject.settings.environment import env

BASE_DIR = Path(__file__).resolve().parents[2]

env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
DEV_SECRET_KEY = "dev-only-insecure-key-change-me"  # noqa: S105 -- published on purpose; production refuses it
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Django's four validators on every password set through a form or changepassword; create_user and
# set_password (demo_seed, tests) do not run them.
PASSWORD_MIN_LENGTH = env.int("PASSWORD_MIN_LENGTH", default=12)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": PASSWORD_MIN_LENGTH},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# /metrics: empty = open to loopback clients only (dev); set = Authorization: Bearer <token> required.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if METRICS_TOKEN:
    secrets.token("METRICS_TOKEN", METRICS_TOKEN, secrets.METRICS_TOKEN_MIN_LENGTH)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",  # login lockout (the "Limits" block below)
    "django_prometheus",  # HTTP metrics per route (the two Prometheus middlewares); served by /metrics
    "ticks",
    "orders",
    "greeks",
    "workers",
    "kitesim",
    "tickerproject.audit",
    "django_structlog",  # request ids in logs and carried into Celery tasks (tickerproject/logging.py)
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # first: times the whole stack
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Request id (README "Logs"): picked and echoed by ours, bound for every log line by django-structlog's.
    "tickerproject.request_id.RequestIdMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tickerproject.audit.middleware.AuditRequestMiddleware",  # after auth: events read request.user
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Innermost but axes: labels by view, and still sees the 429 axes makes of a lockout.
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires: turns a lockout into its 429
]

ROOT_URLCONF = "tickerproject.urls"
ASGI_APPLICATION = "tickerproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_url(url: str) -> dict[str, Any]:
    """One database from its URL, with the settings production.py must not lose when it rebuilds DATABASES."""
    database = env.db_url_config(url)
    # Kept connections (10 minutes unless ?conn_max_age=N in the URL; 0 = one per request), checked before
    # reuse: the web serves HTTP on a fixed pool of reused threads (asgi.py) and Celery closes its own per task.
    database.setdefault("CONN_MAX_AGE", 600)
    database["CONN_HEALTH_CHECKS"] = True
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web process read while a worker writes; IMMEDIATE avoids
        # "database is locked" on read-then-write transactions.
        database.setdefault("OPTIONS", {}).update(
            {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 20}
        )
    return database


DATABASE_URL = secrets.database_url(
    "DATABASE_URL", env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
)
DATABASES = {"default": database_from_url(DATABASE_URL)}
# Threads serving HTTP in each web process (asgi.py); each keeps its own database connection.
WEB_HTTP_THREADS = env.int("WEB_HTTP_THREADS", default=16)
if WEB_HTTP_THREADS < 1:
    raise ImproperlyConfigured(f"WEB_HTTP_THREADS must be at least 1, got {WEB_HTTP_THREADS}")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "Asia/Kolkata"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# collectstatic's output, served by whitenoise (deploy/ tests collect into a directory of their own).
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Dev and tests serve straight from the apps' static folders; production runs collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Secrets at rest -------------------------------------------------------
# Fernet keys (urlsafe base64, 32 bytes). The first encrypts; all decrypt (rotation).
DEV_FIELD_ENCRYPTION_KEY = "pqO0tBm8n0Ch7d1y1NVtPAb7JxCkz6qs2WbH6cXbqfE="  # published: production refuses it
FIELD_ENCRYPTION_KEYS = secrets.fernet_keys(
    "FIELD_ENCRYPTION_KEYS", env.list("FIELD_ENCRYPTION_KEYS", default=[DEV_FIELD_ENCRYPTION_KEY])
)

# --- Redis, Celery, Channels ---------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = timedelta(hours=6)
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (Queue("default"), Queue("orders"), Queue("feeds"))
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CONSUMER = "tickerproject.celery:Consumer"  # survives a Redis restart (see the class)
CELERY_IMPORTS = ["workers.process_memory"]  # its signals start the RSS gauge in workers and beat
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    # kombu sweeps unacked messages every interval x throttle; the defaults (10 x 10)
    # left a killed worker's task unseen for ~100 s (ref/reliability-findings.md).
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
CELERY_TASK_ROUTES = {
    "orders.*": {"queue": "orders"},
    "workers.feed": {"queue": "feeds"},
}
ORDER_RECONCILE_S = env.float("ORDER_RECONCILE_S", default=5.0)  # the rest of the ORDER_* block is at the end
ORDER_SWEEP_S = env.float("ORDER_SWEEP_S", default=15.0)
BARS_SETTLE_S = env.float("BARS_SETTLE_S", default=60.0)
FEED_REBALANCE_S = env.float("FEED_REBALANCE_S", default=5.0)
BARS_GAP_FILL_S = env.float("BARS_GAP_FILL_S", default=300.0)
BARS_PREVIOUS_CLOSE_S = env.float("BARS_PREVIOUS_CLOSE_S", default=60.0)
# /readyz (README "Health and readiness"): beat and every worker write a heartbeat each READYZ_HEARTBEAT_S;
# one older than READYZ_HEARTBEAT_STALE_S, or a feed silent READYZ_FEED_SILENT_S in market hours, is 503.
READYZ_HEARTBEAT_S = env.float("READYZ_HEARTBEAT_S", default=5.0)
READYZ_HEARTBEAT_STALE_S = env.float("READYZ_HEARTBEAT_STALE_S", default=15.0)
READYZ_FEED_SILENT_S = env.float("READYZ_FEED_SILENT_S", default=15.0)
READYZ_WORKER_QUEUES = env.list("READYZ_WORKER_QUEUES", default=["default", "orders"])
# The whole beat schedule lives here, in one place.
CELERY_BEAT_SCHEDULE = {
    # The trading day (06:00 token rollover, 08:30 instruments, 09:00 pre-open plan, 09:15 live, 15:30
    # expiry roll) runs on the market clock and the exchange calendar: day.advance starts each step once.
    "day-advance": {"task": "day.advance", "schedule": 5.0, "options": {"expires": 5}},
    "feeds-supervise": {"task": "feeds.supervise", "schedule": 5.0, "options": {"expires": 5}},
    # Its publish is beat's heartbeat for /readyz (workers/tasks.py); the task itself does nothing.
    "ops-heartbeat": {
        "task": "ops.heartbeat",
        "schedule": READYZ_HEARTBEAT_S,
        "options": {"expires": READYZ_HEARTBEAT_S},
    },
    # Tick-driven re-plans come from the feeds; this is the backstop (and follows health and specs).
    "feeds-rebalance": {
        "task": "feeds.rebalance",
        "schedule": FEED_REBALANCE_S,
        "options": {"expires": FEED_REBALANCE_S},
    },
    "feeds-reconcile": {"task": "feeds.reconcile", "schedule": 15.0, "options": {"expires": 15}},
    "greeks-snapshot": {"task": "greeks.snapshot", "schedule": 60.0, "options": {"expires": 60}},
    # Bars (README "Bars and history"): settle closed minutes against Kite's candles, fill gaps, prune.
    "bars-settle": {"task": "bars.settle", "schedule": BARS_SETTLE_S, "options": {"expires": BARS_SETTLE_S}},
    "bars-fill-gaps": {
        "task": "bars.fill_gaps",
        "schedule": BARS_GAP_FILL_S,
        "options": {"expires": BARS_GAP_FILL_S},
    },
    # The options' previous close (change in OI): strikes a re-plan adds get theirs within a period.
    "bars-previous-close": {
        "task": "bars.previous_close",
        "schedule": BARS_PREVIOUS_CLOSE_S,
        "options": {"expires": BARS_PREVIOUS_CLOSE_S},
    },
    "bars-prune": {
        "task": "bars.prune",
        "schedule": crontab(hour=16, minute=0),
    },  # 16:00 IST, after the close
    # Orders: poll Kite's order book for live orders; re-enqueue orders stuck in PENDING/SUBMITTING.
    "orders-reconcile": {
        "task": "orders.reconcile",
        "schedule": ORDER_RECONCILE_S,
        "options": {"expires": ORDER_RECONCILE_S},
    },
    "orders-sweep-stuck": {
        "task": "orders.sweep_stuck",
        "schedule": ORDER_SWEEP_S,
        "options": {"expires": ORDER_SWEEP_S},
    },
}

# Live stream (ticks/consumers.py): at most one delta per connection per flush interval.
STREAM_FLUSH_MS = env.int("STREAM_FLUSH_MS", default=100)
STREAM_SLOW_CLIENT_S = env.float(
    "STREAM_SLOW_CLIENT_S", default=10.0
)  # a send blocked this long drops the client
STREAM_MAX_CHAINS = env.int("STREAM_MAX_CHAINS", default=8)
STREAM_MAX_TOKENS = env.int("STREAM_MAX_TOKENS", default=500)
STREAM_MAX_MESSAGE_BYTES = env.int("STREAM_MAX_MESSAGE_BYTES", default=64 * 1024)  # a client frame
STREAM_MAX_JSON_DEPTH = env.int("STREAM_MAX_JSON_DEPTH", default=8)  # nesting of a client message
# Stream admission (README "Live stream"): a ticket from POST /api/v1/stream/tickets is good this long, once.
STREAM_TICKET_TTL_S = env.int("STREAM_TICKET_TTL_S", default=30)
# Open connections per API key (or session user) and per client address, counted in Redis across web
# processes; a slot a killed web process held lapses after STREAM_SLOT_TTL_S.
STREAM_MAX_CONNECTIONS_PER_KEY = env.int("STREAM_MAX_CONNECTIONS_PER_KEY", default=50)
STREAM_MAX_CONNECTIONS_PER_IP = env.int("STREAM_MAX_CONNECTIONS_PER_IP", default=200)
STREAM_SLOT_TTL_S = env.int("STREAM_SLOT_TTL_S", default=60)
# Bytes a connection may have sent that its client has not taken; past it nothing more is sent, and
# STREAM_SLOW_CLIENT_S later the client is closed with 4408 (the close frame still fits in the socket).
STREAM_SEND_BUFFER_BYTES = env.int("STREAM_SEND_BUFFER_BYTES", default=256 * 1024)

# Dashboard (/): an option's last trade older than this (market seconds) is marked stale, and its IV
# is then read from the bid/ask mid where there is one.
DASHBOARD_STALE_PRICE_S = env.int("DASHBOARD_STALE_PRICE_S", default=120)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "ticks.channel_layer.StreamPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

# --- Kite ------------------------------------------------------------------
# The market clock for code with no feed frame at hand (ticks/clocks.py): wall | kitesim | ISO datetime.
MARKET_CLOCK = env.str("MARKET_CLOCK", default="wall")
# REST root; the WebSocket root is derived (http -> ws). kitesim in dev and tests.
KITE_ROOT = env.str("KITE_ROOT", default="http://127.0.0.1:8765")
KITE_WS_ROOT = env.str("KITE_WS_ROOT", default=KITE_ROOT.replace("http", "ws", 1))
KITE_HTTP_TIMEOUT = env.float("KITE_HTTP_TIMEOUT", default=7.0)
# The morning login (ticks/kite_login.py): Kite's login page (empty: kitesim's, <KITE_ROOT>/connect/login)
# and how long a login started in admin may take before its state expires.
KITE_LOGIN_URL = env.str("KITE_LOGIN_URL", default="")
KITE_LOGIN_STATE_MAX_AGE_S = env.int("KITE_LOGIN_STATE_MAX_AGE_S", default=600)

# --- Feeds -----------------------------------------------------------------
FEED_LEASE_TTL_MS = env.int("FEED_LEASE_TTL_MS", default=15_000)
FEED_LEASE_RENEW_S = env.float("FEED_LEASE_RENEW_S", default=5.0)
FEED_WATCHDOG_S = env.float(
    "FEED_WATCHDOG_S", default=5.0
)  # silence (no frame, no heartbeat) before reconnect
FEED_REPORT_S = env.float("FEED_REPORT_S", default=2.0)
# Strikes streamed beyond ATM ± N on each side, so ATM ± N stays covered while a re-centre is on its way.
FEED_STRIKE_MARGIN = env.int("FEED_STRIKE_MARGIN", default=2)
# The Redis pub/sub channel of plan and stop messages; pub/sub spans every database of a Redis.
FEED_CONTROL_CHANNEL = env.str("FEED_CONTROL_CHANNEL", default="feeds:control")
# When set, every feed appends its raw frames to <dir>/<account>-<epoch>.frames (see feed_replay).
FEED_RECORD_DIR = env.str("FEED_RECORD_DIR", default="") or None
# Index instrument of each underlying, as Kite keys it (exchange:tradingsymbol).
UNDERLYING_INDEX = env.dict(
    "UNDERLYING_INDEX",
    default={"NIFTY": "NSE:NIFTY 50", "BANKNIFTY": "NSE:NIFTY BANK", "SENSEX": "BSE:SENSEX"},
)

# --- Greeks ----------------------------------------------------------------
# Continuously compounded rate that discounts option prices (Black-76 on the forward); it also
# carries the index to a forward when a chain has neither a future nor a priced ATM pair.
GREEKS_RATE = env.float("GREEKS_RATE", default=0.065)
GREEKS_MODEL = env.str("GREEKS_MODEL", default="black76")  # or "bs": spot-based, mibian's units
GREEKS_BACKEND = env.str("GREEKS_BACKEND", default="numpy")  # or "mibian": slow, for cross-checks
if GREEKS_MODEL not in ("black76", "bs"):
    raise ImproperlyConfigured(f"GREEKS_MODEL must be black76 or bs, got {GREEKS_MODEL!r}")
if GREEKS_BACKEND not in ("numpy", "mibian"):
    raise ImproperlyConfigured(f"GREEKS_BACKEND must be numpy or mibian, got {GREEKS_BACKEND!r}")

# --- Bars (README "Bars and history") ------------------------------------
# Days of bars kept per stored interval; bars.prune deletes older ones (0 or absent: kept forever).
BARS_RETENTION_DAYS = env.dict("BARS_RETENTION_DAYS", cast={"value": int}, default={"minute": 400, "day": 0})
# Kite's historical endpoint: 3 requests/s per api_key, shared fleet-wide (orders.ratelimit buckets).
BARS_HISTORICAL_RATE_LIMITS = env.list("BARS_HISTORICAL_RATE_LIMITS", default=["3/1"])

# --- Limits (README "REST API (v1)", "Limits") ------------------------------


def throttle_rate(name: str, default: str) -> str:
    """A rate as COUNT/PERIOD (s, min, hour, day), DRF's form; anything else stops start-up naming it."""
    value = env.str(name, default=default)
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|m|min|h|hour|d|day)", value):
        raise ImproperlyConfigured(
            f"{name} must be COUNT/PERIOD (s, min, hour, day) like {default}: {value!r}"
        )
    return value


# Per API key. Kite takes at most 400 placements a minute (10/s) per app, so 1200 leaves an algo placing
# at Kite's full speed 800 reads a minute; a flood of 2,000 requests in 10 s meets 429 after 1,200.
THROTTLE_KEY_RATE = throttle_rate("THROTTLE_KEY_RATE", "1200/min")
# Per address, for sessions (dashboard, admin staff) and anonymous requests to open views (the schema).
THROTTLE_IP_RATE = throttle_rate("THROTTLE_IP_RATE", "600/min")
# Failed API-key authentications per address; past it the address gets 429 without its key being checked.
AUTH_FAILURE_RATE = throttle_rate("AUTH_FAILURE_RATE", "20/min")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # The limits' counters (tickerproject/throttling.py), shared by every web process. A Redis that does
    # not answer within the timeouts lets the request through (fail open) instead of holding it.
    "throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "throttle",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    },
}
# Login lockout (django-axes) on /admin/login/ and /login/: LOGIN_FAILURE_LIMIT wrong passwords for one
# username from one address lock that pair out for LOGIN_LOCKOUT_MINUTES (429 + Retry-After). Every
# attempt during a lockout starts it again; the right password does not log in until it ends.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a right password before the limit clears the count
AXES_LOCKOUT_CALLABLE = "tickerproject.throttling.login_lockout_response"
AXES_USERNAME_CALLABLE = "tickerproject.throttling.login_username"

# --- DRF -------------------------------------------------------------------
REST_FRAMEWORK = {
    # API key first so an anonymous request gets 401 with WWW-Authenticate: Api-Key.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "ticks.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Authenticated, and an API key only within its scope (read: safe methods; trade: everything).
    "DEFAULT_PERMISSION_CLASSES": ["tickerproject.permissions.ScopedKeyOrSession"],
    "DEFAULT_THROTTLE_CLASSES": [
        "tickerproject.throttling.ApiKeyRateThrottle",
        "tickerproject.throttling.ClientIpRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "key": THROTTLE_KEY_RATE,
        "ip": THROTTLE_IP_RATE,
        "auth_failure": AUTH_FAILURE_RATE,
    },
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "tickerproject.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "tickerproject.schema.ApiAutoSchema",  # documents every error answer
    "EXCEPTION_HANDLER": "tickerproject.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ticker Service API",
    "DESCRIPTION": "Market data and order routing over Zerodha Kite Connect.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# README "Logs": readable lines here, JSON lines in production (production.py); one config for web,
# workers and beat (tickerproject/logging.py, applied by Django and by Celery's setup_logging).
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOGGING_CONFIG = "tickerproject.logging.logging_configure"
LOGGING = logging_settings(LOG_FORMAT, LOG_LEVEL)
# Tasks a request enqueues log its request_id (and the ids it bound) beside their own task_id.
DJANGO_STRUCTLOG_CELERY_ENABLED = True

# --- Orders (README "Orders") ---------------------------------------------
# Kite's limits per api_key as COUNT/SECONDS, enforced fleet-wide by Redis token buckets that run at
# ORDER_RATE_SAFETY of each limit, so network jitter never pushes Kite over its sliding windows.
ORDER_RATE_LIMITS = env.list("ORDER_RATE_LIMITS", default=["10/1", "400/60", "5000/86400"])  # placements
ORDER_REQUEST_RATE_LIMITS = env.list("ORDER_REQUEST_RATE_LIMITS", default=["10/1"])  # order book, modify, ...
ORDER_RATE_SAFETY = env.float("ORDER_RATE_SAFETY", default=0.8)
ORDER_RATE_MAX_WAIT_S = env.float("ORDER_RATE_MAX_WAIT_S", default=2.0)  # wait in the task, else re-queue
ORDER_BREAKER_FAILURES = env.int("ORDER_BREAKER_FAILURES", default=5)  # consecutive unknown outcomes
ORDER_BREAKER_RESET_S = env.float("ORDER_BREAKER_RESET_S", default=15.0)  # open this long, then probe
ORDER_LEASE_MARGIN_S = env.float("ORDER_LEASE_MARGIN_S", default=5.0)  # lease = KITE_HTTP_TIMEOUT + this
ORDER_RETRY_BASE_S = env.float("ORDER_RETRY_BASE_S", default=2.0)  # backoff after an unknown outcome
ORDER_RETRY_MAX_S = env.float("ORDER_RETRY_MAX_S", default=60.0)
ORDER_SUBMIT_DEADLINE_S = env.float("ORDER_SUBMIT_DEADLINE_S", default=600.0)  # unsent this long: FAILED
ORDER_STUCK_GRACE_S = env.float("ORDER_STUCK_GRACE_S", default=60.0)  # overdue this long: re-enqueued
ORDER_SUBMIT_HOLD_S = env.float("ORDER_SUBMIT_HOLD_S", default=0.0)  # test hook only: pause before placing
ORDER_MAX_SLICES = env.int("ORDER_MAX_SLICES", default=10)
# Exchange freeze quantities per underlying (Kite's dump does not carry them); others are unlimited.
ORDER_FREEZE_QUANTITIES = env.dict(
    "ORDER_FREEZE_QUANTITIES", cast={"value": int}, default={"NIFTY": 1800, "BANKNIFTY": 900, "SENSEX": 1000}
)
ORDER_POSITIONS_CACHE_S = env.float("ORDER_POSITIONS_CACHE_S", default=2.0)
ORDER_MAX_BODY_BYTES = env.int("ORDER_MAX_BODY_BYTES", default=16_384)
# Per web process, the order API remembers API key -> client, client -> tradable account and instrument
# rows this long; a change saved through the ORM counts at once, one that bypasses it this late
# (orders.lookup_cache, README "Orders").
ORDER_LOOKUP_CACHE_S = env.float("ORDER_LOOKUP_CACHE_S", default=5.0)
