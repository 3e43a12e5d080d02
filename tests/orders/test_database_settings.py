"""Database connections for the order API: per request by default (Django's ASGI handler runs each
request in a new thread, where a kept connection is never reused); kept ones are health-checked."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
SHOW = (
    "import json; from tickerproject.settings import base; "
    "d = base.DATABASES['default']; print(json.dumps([d.get('CONN_MAX_AGE', 0), d['CONN_HEALTH_CHECKS']]))"
)


def _connection_settings(database_url: str) -> list[object]:
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_connections_are_per_request_unless_the_url_keeps_them() -> None:
    assert _connection_settings("sqlite:///var/x.sqlite3") == [0, False]
    assert _connection_settings("postgres://u@127.0.0.1:5432/db") == [0, False]


def test_kept_connections_are_checked_before_reuse() -> None:
    assert _connection_settings("sqlite:///var/x.sqlite3?conn_max_age=600") == [600, True]
    assert _connection_settings("postgres://u@127.0.0.1:5432/db?conn_max_age=600") == [600, True]
