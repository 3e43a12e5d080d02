import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from tests.test_production_settings import PRODUCTION_ENV

ROOT = Path(__file__).parents[1]


def _import_settings(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "FIELD_"))}
    return subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("name", "value"), [("DJANGO_DEBUG", "maybe"), ("KITE_HTTP_TIMEOUT", "soon")])
def test_a_malformed_value_fails_at_start_up_naming_the_variable(name: str, value: str) -> None:
    result = _import_settings("tickerproject.settings.base", **{name: value})

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name}" in result.stderr


def test_production_starts_when_every_secret_is_given() -> None:
    result = _import_settings("tickerproject.settings.production", **PRODUCTION_ENV)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BARS_RETENTION_DAYS", "minutes=400", "BARS_RETENTION_DAYS: unknown interval(s) minutes"),
        ("BARS_RETENTION_DAYS", "minute=-1", "BARS_RETENTION_DAYS: days must be 0"),
        ("BARS_HISTORICAL_RATE_LIMITS", "3/soon", "BARS_HISTORICAL_RATE_LIMITS"),
        ("MARKET_CLOCK", "sometime", "MARKET_CLOCK"),
    ],
)
def test_a_malformed_app_setting_stops_django_start_up_naming_it(name: str, value: str, message: str) -> None:
    result = _import_settings(
        "django; django.setup()", DJANGO_SETTINGS_MODULE="tickerproject.settings.base", **{name: value}
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("date,name\n2027-01-26,Republic Day\n2027-13-01,Nothing\n", "holidays.csv:3: not a YYYY-MM-DD date"),
        ("# covers: next year\ndate,name\n", "holidays.csv:1: '# covers:' needs four-digit years"),
        ("2027-01-26,Republic Day\n", "holidays.csv:1: expected the header 'date,name'"),
    ],
)
def test_a_malformed_holidays_file_stops_django_start_up_naming_the_variable_file_and_line(
    tmp_path: Path, lines: str, message: str
) -> None:
    holidays = tmp_path / "holidays.csv"
    holidays.write_text(lines, encoding="utf-8")
    result = _import_settings(
        "django; django.setup()",
        DJANGO_SETTINGS_MODULE="tickerproject.settings.base",
        MARKET_HOLIDAYS_FILE=str(holidays),
    )

    assert result.returncode != 0
    assert f"ImproperlyConfigured: MARKET_HOLIDAYS_FILE: {tmp_path / message}" in result.stderr


def test_a_missing_holidays_file_stops_django_start_up_naming_the_variable_and_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-holidays.csv"
    result = _import_settings(
        "django; django.setup()",
        DJANGO_SETTINGS_MODULE="tickerproject.settings.base",
        MARKET_HOLIDAYS_FILE=str(missing),
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured: MARKET_HOLIDAYS_FILE: cannot read the holidays file" in result.stderr
    assert str(missing) in result.stderr


def test_django_starts_with_a_well_formed_holidays_file(tmp_path: Path) -> None:
    holidays = tmp_path / "holidays.csv"
    holidays.write_text("# covers: 2027\ndate,name\n2027-01-26,Republic Day\n", encoding="utf-8")
    result = _import_settings(
        "datetime, django; django.setup(); from ticks.exchange_calendar import market_calendar;"
        " print(market_calendar().known_until, market_calendar().is_session(datetime.date(2027, 1, 26)))",
        DJANGO_SETTINGS_MODULE="tickerproject.settings.base",
        MARKET_HOLIDAYS_FILE=str(holidays),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2027-12-31", "False"]


@pytest.mark.parametrize("password", ["admin", "short-Pw1", "402918374650192", "password1234"])
def test_a_weak_password_set_through_a_form_is_refused(password: str) -> None:
    with pytest.raises(ValidationError):
        validate_password(password)


def test_a_long_uncommon_password_passes_every_validator() -> None:
    assert settings.PASSWORD_MIN_LENGTH == 12
    validate_password("quartz-lantern-meadow-42")


@pytest.mark.django_db
def test_demo_seed_and_tests_still_create_users_with_short_passwords() -> None:
    # demo_seed's admin/admin (scripts/run.sh prints it) goes through create_superuser, which does not validate.
    user = get_user_model().objects.create_superuser(username="admin", email="", password="admin")

    assert user.check_password("admin")
