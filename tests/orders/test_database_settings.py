"""Database connections for the order API: kept for 10 minutes and health-checked before reuse (the web
serves HTTP on a fixed pool of reused threads), per request with ?conn_max_age=0; production the same."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_production_settings import PRODUCTION_ENV

ROOT = Path(__file__).parents[2]
SHOW = (
    "import json; from tickerproject.settings import {module} as s; "
    "d = s.DATABASES['default']; print(json.dumps([d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS']]))"
)
PRODUCTION_SECRETS = PRODUCTION_ENV  # every secret production checks at start-up


def _connection_settings(database_url: str, module: str = "base") -> list[object]:
    env = {**os.environ, **PRODUCTION_SECRETS, "DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-c", SHOW.format(module=module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_connections_are_kept_and_checked_before_reuse() -> None:
    assert _connection_settings("sqlite:///var/x.sqlite3") == [600, True]
    assert _connection_settings("postgres://u@127.0.0.1:5432/db") == [600, True]


def test_the_url_can_ask_for_a_connection_per_request() -> None:
    assert _connection_settings("postgres://u@127.0.0.1:5432/db?conn_max_age=0") == [0, True]


def test_production_keeps_connections_too() -> None:
    assert _connection_settings("postgres://u@127.0.0.1:5432/db", module="production") == [600, True]
