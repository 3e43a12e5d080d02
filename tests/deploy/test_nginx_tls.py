"""nginx (deploy/nginx/ticker.conf) terminating TLS in front of two web processes (deploy/Procfile)
under the production settings: HTTPS, the redirect, proxy headers, the stream, both upstreams."""

import asyncio
import json
import re
import socket
import ssl
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone
from websockets.asyncio.client import connect

from tests.deploy.conftest import api_key_issue
from tests.deploy.stack import ProxyStack, production_env
from tests.deploy.tls import Certificates
from tests.ticks.factories import OptionFactory

pytestmark = [pytest.mark.integration, pytest.mark.proxy, pytest.mark.django_db(transaction=True)]

ADMIN_PASSWORD = "admin-Pa55word-for-the-proxy-test"


@pytest.fixture(scope="module")
def stack(
    django_db_setup: None,
    certificates: Certificates,
    static_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProxyStack]:
    running = ProxyStack(
        tmp_path_factory.mktemp("proxy"), certificates, production_env(STATIC_ROOT=str(static_root))
    )
    yield running
    running.stop()


def _handshake(stack: ProxyStack, **context_options: ssl.TLSVersion) -> tuple[str | None, str]:
    context = stack.certificates.client_context()
    for name, value in context_options.items():
        setattr(context, name, value)
    with (
        socket.create_connection(("127.0.0.1", stack.nginx.https_port), 5) as raw,
        context.wrap_socket(raw, server_hostname=stack.certificates.server_name) as tls,
    ):
        return tls.version(), tls.cipher()[0]


def test_https_serves_the_health_probe_to_a_client_that_checks_the_certificate(stack: ProxyStack) -> None:
    response = stack.browser().get("/healthz")

    assert response.status_code == 200 and response.json()["ok"] is True
    assert _handshake(stack)[0] == "TLSv1.3"
    version, cipher = _handshake(stack, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2" and cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher)


def test_a_client_that_checks_a_different_name_is_refused(stack: ProxyStack) -> None:
    context = stack.certificates.client_context()
    with (
        socket.create_connection(("127.0.0.1", stack.nginx.https_port), 5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="other.test")


def test_plain_http_redirects_to_https_except_the_health_probe(stack: ProxyStack) -> None:
    plain = f"http://127.0.0.1:{stack.nginx.http_port}"
    host = {"Host": f"{stack.certificates.server_name}:{stack.nginx.http_port}"}

    redirected = requests.get(
        f"{plain}/api/v1/instruments?limit=1", headers=host, allow_redirects=False, timeout=5
    )
    probe = requests.get(f"{plain}/healthz", headers=host, timeout=5)

    assert redirected.status_code == 301
    assert redirected.headers["Location"] == f"{stack.browser().origin}/api/v1/instruments?limit=1"
    assert probe.status_code == 200 and probe.json()["ok"] is True


def test_an_api_key_in_a_header_reads_through_the_proxy(stack: ProxyStack) -> None:
    OptionFactory()
    browser = stack.browser()

    good = browser.get("/api/v1/instruments", headers={"X-Api-Key": api_key_issue()})
    wrong = browser.get("/api/v1/instruments", headers={"X-Api-Key": "wrongprefix.wrongsecret"})

    assert good.status_code == 200 and good.json()["count"] == 1
    assert wrong.status_code == 401


def test_django_sees_https_through_the_forwarded_proto_and_only_through_it(
    stack: ProxyStack, production_hasher: None
) -> None:
    get_user_model().objects.create_superuser("ops", password=ADMIN_PASSWORD)
    browser = stack.browser()

    # SECURE_SSL_REDIRECT would answer 301 to https:// if Django did not see this request as secure,
    # and nginx replaces a client's own X-Forwarded-Proto rather than passing it on.
    page = browser.get("/admin/login/", headers={"X-Forwarded-Proto": "http"})
    # The CSRF origin check compares Origin with request.scheme: only an https request passes it.
    login = browser.admin_login("ops", ADMIN_PASSWORD)
    direct = requests.get(
        f"http://127.0.0.1:{stack.web_ports[0]}/admin/login/",
        headers={"Host": stack.certificates.server_name},
        allow_redirects=False,
        timeout=5,
    )

    assert page.status_code == 200
    assert page.raw.headers.getlist("Strict-Transport-Security") == [
        page.headers["Strict-Transport-Security"]
    ]  # Django's, once: nginx adds none
    assert next(cookie for cookie in browser.cookies if cookie.name == "csrftoken").secure
    assert login.status_code == 302 and login.headers["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200
    assert direct.status_code == 301 and direct.headers["Location"].startswith("https://")


def test_the_stream_connects_through_the_proxy_with_a_key_header(stack: ProxyStack) -> None:
    expiry = timezone.localdate() + timedelta(days=7)
    tokens = {
        OptionFactory(expiry=expiry, strike=Decimal(strike)).instrument_token for strike in (24950, 25000)
    }
    key = api_key_issue()

    async def snapshot() -> dict:
        async with connect(stack.ws_url, additional_headers={"X-Api-Key": key}, **stack.ws_options()) as ws:
            await ws.send(json.dumps({"action": "subscribe", "chain": f"NIFTY:{expiry:%Y-%m-%d}"}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    frame = asyncio.run(snapshot())

    assert frame["type"] == "snapshot" and {row["instrument_token"] for row in frame["rows"]} == tokens


def test_requests_land_on_both_web_processes_and_the_access_log_keeps_no_query(stack: ProxyStack) -> None:
    browser = stack.browser()
    for _ in range(6):
        assert browser.get("/healthz?probe=query-never-logged").status_code == 200

    lines = [line for line in stack.nginx.access_log.read_text().splitlines() if '"GET /healthz ' in line]
    upstreams = {match[1] for line in lines if (match := re.search(r"upstream=(\S+)", line))}

    assert len(lines) >= 6
    assert upstreams >= {f"127.0.0.1:{port}" for port in stack.web_ports}
    assert "query-never-logged" not in stack.nginx.access_log.read_text()


def test_the_request_id_is_nginx_s_or_the_client_s_and_its_access_log_shows_it(stack: ProxyStack) -> None:
    browser = stack.browser()
    minted = browser.get("/healthz").headers["X-Request-ID"]
    kept = browser.get("/healthz", headers={"X-Request-ID": "client-7:a.b_c"}).headers["X-Request-ID"]
    bad = browser.get("/healthz", headers={"X-Request-ID": "no spaces allowed"}).headers["X-Request-ID"]

    log = stack.nginx.access_log.read_text()
    assert re.fullmatch(r"[0-9a-f]{32}", minted) and f"rid={minted} " in log
    assert kept == "client-7:a.b_c" and "rid=client-7:a.b_c " in log
    assert re.fullmatch(r"[0-9a-f]{32}", bad) and f"rid={bad} " in log


def test_metrics_and_flower_are_not_served_through_the_proxy(stack: ProxyStack) -> None:
    browser = stack.browser()

    assert browser.get("/metrics").status_code == 404
    assert browser.get("/flower/").status_code == 404
    assert browser.get("/static/admin/css/base.css").status_code == 200  # whitenoise, through the proxy


def test_a_body_over_the_proxy_limit_is_refused_by_nginx(stack: ProxyStack) -> None:
    response = stack.browser().post("/api/v1/orders", data=b"x" * (65 * 1024))

    assert response.status_code == 413 and "nginx" in response.text
