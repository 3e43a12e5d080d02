"""The web process's HTTP: Django's WSGI handler on a fixed pool of reused threads inside the ASGI app
(tickerproject/asgi.py), served by a real uvicorn; WebSockets stay on Channels."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from websockets.sync.client import connect

from tests.asgi_server import AsgiServer, free_port
from tests.ticks.factories import OptionFactory, UserFactory
from tests.waiting import until
from tickerproject.asgi import application
from ticks.models import ClientApiKey

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

ROOT = Path(__file__).parents[1]
PROCFILE_WEB = next(
    line.removeprefix("web:").strip()
    for line in (ROOT / "Procfile").read_text().splitlines()
    if line.startswith("web:")
)


@pytest.fixture
def server(redis_client) -> Iterator[AsgiServer]:
    with AsgiServer(application) as running:
        yield running


def _logged_in(server: AsgiServer) -> requests.Session:
    """The browser's way in: the login form, its CSRF token and an Origin the CSRF check must accept."""
    UserFactory(username="ops", password="pw-ops-1", is_staff=True, is_superuser=True)
    browser = requests.Session()
    form = browser.get(f"{server.url}/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = browser.post(
        f"{server.url}/login/",
        data={"username": "ops", "password": "pw-ops-1", "csrfmiddlewaretoken": token},
        headers={"Origin": server.url, "Referer": f"{server.url}/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text[:500]
    return browser


def test_a_session_reaches_the_dashboard_the_admin_and_the_api(server: AsgiServer) -> None:
    browser = _logged_in(server)

    assert browser.get(f"{server.url}/", timeout=10).status_code == 200
    assert browser.get(f"{server.url}/admin/", timeout=10).status_code == 200
    assert browser.get(f"{server.url}/api/v1/orders", timeout=10).status_code == 200
    assert browser.get(f"{server.url}/api/docs/", timeout=10).status_code == 200


def test_absolute_links_carry_the_request_scheme_and_host(server: AsgiServer) -> None:
    OptionFactory(strike=Decimal("24900"))
    OptionFactory(strike=Decimal("25000"))
    _, key = ClientApiKey.objects.create_key(name="script", user=UserFactory())
    headers = {"Authorization": f"Api-Key {key}"}

    plain = requests.get(f"{server.url}/api/v1/instruments?limit=1", headers=headers, timeout=10).json()
    proxied = requests.get(
        f"{server.url}/api/v1/instruments?limit=1",
        headers={**headers, "X-Forwarded-Proto": "https", "Host": "localhost"},
        timeout=10,
    ).json()

    assert plain["next"] == f"{server.url}/api/v1/instruments?limit=1&offset=1"
    assert proxied["next"] == "https://localhost/api/v1/instruments?limit=1&offset=1"


def test_static_files_health_and_metrics_are_served(server: AsgiServer) -> None:
    script = requests.get(f"{server.url}/static/ticks/dashboard.js", timeout=10)
    health = requests.get(f"{server.url}/healthz", timeout=10)
    metrics = requests.get(f"{server.url}/metrics", timeout=10)

    assert script.status_code == 200
    assert script.content == (ROOT / "ticks/static/ticks/dashboard.js").read_bytes()
    assert health.json()["ok"] is True
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")


def test_a_body_over_the_limit_is_read_through_the_adapter_and_refused(server: AsgiServer) -> None:
    _, key = ClientApiKey.objects.create_key(name="algo", user=UserFactory())
    body = b'{"pad": "' + b"x" * (settings.ORDER_MAX_BODY_BYTES + 1) + b'"}'

    answer = requests.post(
        f"{server.url}/api/v1/orders",
        data=body,
        headers={
            "Authorization": f"Api-Key {key}",
            "Content-Type": "application/json",
            "Idempotency-Key": "k",
        },
        timeout=10,
    )

    assert answer.status_code == 413


# --- database connections of the Procfile's web line -----------------------------------------------


WEB_SESSIONS = "procfile-web"  # application_name of the web process's sessions


def _web_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            [WEB_SESSIONS],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def procfile_web(redis_client, tmp_path: Path) -> Iterator[str]:
    """The Procfile's web line (its worker count) with 4 HTTP threads a worker, on the test database."""
    database = connection.settings_dict
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
        f"?application_name={WEB_SESSIONS}",
        "REDIS_URL": settings.REDIS_URL,
        "WEB_PORT": str(port),
        "WEB_HTTP_THREADS": "4",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    log = (tmp_path / "web.log").open("w")
    web = subprocess.Popen(
        ["bash", "-c", f"exec {PROCFILE_WEB}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: _answers(f"{url}/healthz"), timeout=60)
        yield url
    finally:
        web.terminate()
        web.wait(20)
        log.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _traffic(url: str, key: str) -> None:
    """300 requests from 4 clients (each request reads the database), then 20 WebSocket connects that
    authenticate through channels' database_sync_to_async."""

    def client(n: int) -> None:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Api-Key {key}"
            for i in range(75):
                path = "/healthz" if i % 2 else "/api/v1/orders"
                assert session.get(f"{url}{path}", timeout=10).status_code == 200

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(client, range(4)))
    for _ in range(20):
        with connect(f"{url.replace('http', 'ws', 1)}/ws/stream/", additional_headers={"X-Api-Key": key}):
            pass  # accepted only once the key was checked in the database


@pytest.mark.skipif(connection.vendor != "postgresql", reason="counts PostgreSQL sessions")
def test_the_web_keeps_at_most_a_connection_per_thread(procfile_web: str) -> None:
    _, key = ClientApiKey.objects.create_key(name="script", user=UserFactory())
    workers = int(
        os.environ.get("WEB_WORKERS") or re.search(r"\$\{WEB_WORKERS:-(\d+)\}", PROCFILE_WEB).group(1)
    )

    started = _web_sessions()  # its readiness checks were answered already
    _traffic(procfile_web, key)
    first = _web_sessions()
    _traffic(procfile_web, key)
    second = _web_sessions()

    # Per uvicorn worker: at most one per HTTP thread and one for channels' database_sync_to_async.
    # Threads start on demand, so a second round may add some, never past the bound (a connection
    # left behind per request, as under Django's ASGI handler, would be hundreds here).
    assert started <= first <= second <= workers * (4 + 1), (started, first, second)
