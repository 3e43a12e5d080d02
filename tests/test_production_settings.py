"""The production profile (tickerproject/settings/production.py): `check --deploy` clean, every secret
checked at start-up naming its variable, kitesim absent, HTTPS enforced except the loopback probes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from tickerproject.settings import secrets
from tickerproject.settings.base import DEV_FIELD_ENCRYPTION_KEY, DEV_SECRET_KEY

ROOT = Path(__file__).parents[1]
GOOD_FERNET_KEY = "r4AJ7ZvAm-xTQbwJLW9Iq_avCXd9HAlC6Y_IDlcd7QA="
# What a real deployment sets (README "Production deployment"); every value here passes its check.
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "tickerproject.settings.production",
    "DJANGO_SECRET_KEY": "k3Jq9-vXb2LmN8pR4sT6uW0yZ1aC5dE7fG9hJ2kM4nP6qR8sT0uV2wX4yZ6aB8cD0e",
    "FIELD_ENCRYPTION_KEYS": GOOD_FERNET_KEY,
    # Port 1: nothing answers, so /healthz reports the database down instead of touching a shared one.
    "DATABASE_URL": "postgres://ticker@127.0.0.1:1/ticker",
    "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/5"),
    "DJANGO_ALLOWED_HOSTS": "ticker.example.com,testserver",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://ticker.example.com",
    "METRICS_TOKEN": "m3tr1cs-T0ken-for-prometheus-scrapes-0123456789",
    "FLOWER_BASIC_AUTH": "ops:fl0wer-Pa55word-xyz",
    "KITE_ROOT": "https://kite.example.com",
}
# Variables of the developer's shell or the test run that would change what production reads.
_INHERITED = (
    "DJANGO_",
    "DATABASE_URL",
    "FIELD_",
    "REDIS_URL",
    "CELERY_",
    "KITE_",
    "METRICS_",
    "FLOWER_",
    "MARKET_",
)


def _run(code: str, *, without: tuple[str, ...] = (), **overrides: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED)}
    env = {**clean, **PRODUCTION_ENV, **overrides}
    for name in without:
        env.pop(name)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


# --- the checks themselves (pure, in-process) -----------------------------


def test_a_fernet_key_list_must_hold_only_valid_keys() -> None:
    assert secrets.fernet_keys("K", [GOOD_FERNET_KEY, Fernet.generate_key().decode()])
    with pytest.raises(ImproperlyConfigured, match="K: key 2 is not a Fernet key"):
        secrets.fernet_keys("K", [GOOD_FERNET_KEY, "notakey"])
    with pytest.raises(ImproperlyConfigured, match="K needs at least one"):
        secrets.fernet_keys("K", [])
    with pytest.raises(ImproperlyConfigured, match="K: key 1 is the published development key"):
        secrets.fernet_keys("K", [DEV_FIELD_ENCRYPTION_KEY], published=DEV_FIELD_ENCRYPTION_KEY)


@pytest.mark.parametrize(
    "value", [DEV_SECRET_KEY, "django-insecure-" + "a1b2c3d4e5" * 5, "short-but-varied-123", "ab" * 40]
)
def test_a_secret_key_must_be_long_varied_and_unpublished(value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^S ") as refused:
        secrets.secret_key("S", value, DEV_SECRET_KEY)
    assert value not in str(refused.value)


@pytest.mark.parametrize(
    "value", ["", "ops", "ops:", ":password-long-enough", "ops:short", "ops:long-enough-pw,dev:tiny"]
)
def test_basic_auth_must_be_user_colon_password_pairs(value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^F"):
        secrets.basic_auth("F", value)


def test_basic_auth_accepts_several_users() -> None:
    assert secrets.basic_auth("F", "ops:long-enough-pw,dev:another-long-pw") == [
        "ops:long-enough-pw",
        "dev:another-long-pw",
    ]


@pytest.mark.parametrize(
    ("value", "schemes", "ok"),
    [
        ("https://api.kite.trade", secrets.HTTP_SCHEMES, True),
        ("api.kite.trade", secrets.HTTP_SCHEMES, False),
        ("wss://ws.kite.trade", secrets.WEBSOCKET_SCHEMES, True),
        ("https://ws.kite.trade", secrets.WEBSOCKET_SCHEMES, False),
        ("redis://:pw@cache:6379/0", secrets.REDIS_SCHEMES, True),
        ("unix:///run/redis.sock?db=1", secrets.REDIS_SCHEMES, True),
        ("http://cache:6379/0", secrets.REDIS_SCHEMES, False),
    ],
)
def test_urls_must_have_their_scheme_and_a_host(value: str, schemes: frozenset[str], ok: bool) -> None:
    if ok:
        assert secrets.url("U", value, schemes) == value
    else:
        with pytest.raises(ImproperlyConfigured, match=r"^U must be"):
            secrets.url("U", value, schemes)


def test_a_database_url_needs_a_known_scheme() -> None:
    assert secrets.database_url("D", "postgres://u@h:5432/db")
    with pytest.raises(ImproperlyConfigured, match=r"^D has no known database scheme"):
        secrets.database_url("D", "notaurl")


# --- the profile, as a process starts it ----------------------------------


@pytest.mark.integration
def test_check_deploy_is_clean_with_a_realistic_environment() -> None:
    result = _run(
        "from django.core.management import execute_from_command_line as m; m(['x', 'check', '--deploy'])"
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


BAD_VALUES = [
    ("FIELD_ENCRYPTION_KEYS", "notakey"),
    ("FIELD_ENCRYPTION_KEYS", f"{GOOD_FERNET_KEY},notakey"),
    ("FIELD_ENCRYPTION_KEYS", DEV_FIELD_ENCRYPTION_KEY),
    ("DJANGO_SECRET_KEY", DEV_SECRET_KEY),
    ("DJANGO_SECRET_KEY", "too-short-s3cret"),
    ("KITE_ROOT", "api.kite.trade"),
    ("KITE_WS_ROOT", "https://ws.kite.trade"),
    ("DATABASE_URL", "notaurl"),
    ("REDIS_URL", "http://127.0.0.1:6379/0"),
    ("CELERY_BROKER_URL", "amqp://127.0.0.1//"),
    ("METRICS_TOKEN", "short-t0ken"),
    ("FLOWER_BASIC_AUTH", "ops"),
    ("FLOWER_BASIC_AUTH", "ops:sh0rt"),
    ("DJANGO_ALLOWED_HOSTS", "*"),
    ("DJANGO_CSRF_TRUSTED_ORIGINS", "http://ticker.example.com"),
    ("MARKET_CLOCK", "kitesim"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_bad_value_stops_django_setup_naming_the_variable(name: str, value: str) -> None:
    result = _run("import django; django.setup()", **{name: value})

    assert result.returncode != 0
    line = _last_line(result.stderr)
    assert line.startswith(f"django.core.exceptions.ImproperlyConfigured: {name}"), line


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("FIELD_ENCRYPTION_KEYS", "leakyNotAKey", "leakyNotAKey"),
        ("DJANGO_SECRET_KEY", "leaky-s3cret", "leaky-s3cret"),
        ("METRICS_TOKEN", "leaky-t0ken", "leaky-t0ken"),
        ("FLOWER_BASIC_AUTH", "ops:leakyPw", "leakyPw"),
    ],
)
def test_a_refused_secret_is_not_repeated_in_the_error(name: str, value: str, secret: str) -> None:
    result = _run("import django; django.setup()", **{name: value})

    assert result.returncode != 0
    assert name in _last_line(result.stderr)
    assert secret not in result.stderr


REQUIRED = [
    "DJANGO_SECRET_KEY",
    "FIELD_ENCRYPTION_KEYS",
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_ALLOWED_HOSTS",
    "METRICS_TOKEN",
    "FLOWER_BASIC_AUTH",
    "KITE_ROOT",
]


@pytest.mark.integration
@pytest.mark.parametrize("name", REQUIRED)
def test_a_missing_secret_stops_settings_import_naming_it(name: str) -> None:
    result = _run("import tickerproject.settings.production", without=(name,))

    assert result.returncode != 0
    assert _last_line(result.stderr) == (
        f"django.core.exceptions.ImproperlyConfigured: Set the {name} environment variable"
    )


@pytest.mark.integration
def test_base_refuses_a_bad_fernet_key_at_import_too() -> None:
    result = _run("import tickerproject.settings.base", FIELD_ENCRYPTION_KEYS="notakey")

    assert result.returncode != 0
    assert "ImproperlyConfigured: FIELD_ENCRYPTION_KEYS: key 1 is not a Fernet key" in result.stderr


KITESIM_ABSENT = """
import json, sys
import django
django.setup()
from django.apps import apps
from django.core.management import get_commands
from django.urls import get_resolver
import tickerproject.asgi, tickerproject.urls
from tickerproject.celery import app
app.loader.import_default_modules()
get_resolver().url_patterns
print(json.dumps({
    "modules": sorted(m for m in sys.modules if m == "kitesim" or m.startswith("kitesim.")),
    "app": apps.is_installed("kitesim"),
    "command": "kitesim" in get_commands(),
}))
"""


@pytest.mark.integration
def test_kitesim_is_neither_installed_nor_imported_in_production() -> None:
    result = _run(KITESIM_ABSENT)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"modules": [], "app": False, "command": False}


HTTPS_ANSWERS = """
import json
import django
django.setup()
from django.test import Client, override_settings
c = Client()
token = {"HTTP_AUTHORIZATION": "Bearer m3tr1cs-T0ken-for-prometheus-scrapes-0123456789"}
# Production serves collectstatic's manifest, which this checkout has not built.
plain_files = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
with override_settings(STORAGES={**django.conf.settings.STORAGES, **plain_files}):
    login = c.get("/login/", headers={"X-Forwarded-Proto": "https"})
print(json.dumps({
    "plain_login": [c.get("/login/").status_code, c.get("/login/").headers.get("Location")],
    "plain_healthz": c.get("/healthz").status_code,
    "plain_metrics": c.get("/metrics").status_code,
    "plain_metrics_token": c.get("/metrics", **token).status_code,
    "https_login": login.status_code,
    "hsts": login.headers.get("Strict-Transport-Security"),
    "frame": login.headers.get("X-Frame-Options"),
    "referrer": login.headers.get("Referrer-Policy"),
    "csrf_cookie_secure": bool(login.cookies["csrftoken"]["secure"]),
}))
"""


@pytest.mark.integration
def test_plain_http_is_redirected_except_the_loopback_probes() -> None:
    result = _run(HTTPS_ANSWERS)

    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.splitlines()[-1])
    assert answers["plain_login"] == [301, "https://testserver/login/"]
    assert answers["plain_healthz"] == 503  # answered over HTTP; the database on port 1 is down
    assert answers["plain_metrics"] == 401
    assert answers["plain_metrics_token"] == 200
    assert answers["https_login"] == 200
    assert answers["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert answers["frame"] == "DENY"
    assert answers["referrer"] == "same-origin"
    assert answers["csrf_cookie_secure"] is True
