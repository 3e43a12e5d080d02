"""No secret in any log: a realistic session through nginx against the deploy/ stack (two web processes
and the Procfile's worker, production settings, kitesim as Kite), then every log read whole.

The secrets are distinctive strings, so a grep that finds nothing means something. The logs are
checked to hold the lines a leak would sit next to (the requests, the 401, the task), so a log that
stayed empty cannot pass for a clean one.
"""

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from kitesim.testing import KitesimThread
from orders.models import Order, TradingPermission
from orders.states import OrderStatus
from orders.validation import market_open
from tests.deploy.conftest import api_key_issue
from tests.deploy.stack import Browser, ProcfileProcess, ProxyStack, production_env, worker_wait_ready
from tests.deploy.tls import Certificates
from tests.orders.conftest import limit_body
from tests.orders.kitebook import atm_option
from tests.ticks.factories import UserFactory
from tests.waiting import until
from ticks.clocks import market_now
from ticks.models import BrokerAccount
from ticks.services import instruments_refresh_from_kite

pytestmark = [pytest.mark.integration, pytest.mark.proxy, pytest.mark.django_db(transaction=True)]

ADMIN_PASSWORD = "adminPassQ7vLeakCanary"
WRONG_PASSWORD = "wrongPassZ3kLeakCanary"
KITE_API_KEY = "kiteKeyM4pLeakCanary"
KITE_API_SECRET = "kiteSecretR8wLeakCanary"
KITE_ACCESS_TOKEN = "kiteTokenJ2xLeakCanary"
ACCOUNT = "desk-one"
ORDER_REQUEST_ID = "deploy-order-trace-1"


@pytest.fixture
def kite() -> Iterator[KitesimThread]:
    with KitesimThread(
        seed=5, speed=10, accounts=[f"{KITE_API_KEY}:{KITE_API_SECRET}:{KITE_ACCESS_TOKEN}"]
    ) as sim:
        yield sim


@pytest.fixture
def deployed(
    kite: KitesimThread,
    certificates: Certificates,
    static_root: Path,
    tmp_path: Path,
    redis_client: object,
    production_hasher: None,
    settings,
) -> Iterator[tuple[ProxyStack, ProcfileProcess]]:
    env = production_env(STATIC_ROOT=str(static_root), KITE_ROOT=kite.root)
    # This process writes and reads the broker account too (instruments, permissions): the same key.
    settings.FIELD_ENCRYPTION_KEYS = [env["FIELD_ENCRYPTION_KEYS"]]
    settings.KITE_ROOT, settings.MARKET_CLOCK = kite.root, "wall"
    worker = ProcfileProcess("worker", env, tmp_path / "worker.log")
    stack = ProxyStack(tmp_path, certificates, env)
    worker_wait_ready(worker)
    yield stack, worker
    stack.stop()
    worker.stop()


def _admin_session(browser: Browser) -> None:
    """A mistyped password, then the right one, on the admin's login form."""
    get_user_model().objects.create_superuser("ops", password=ADMIN_PASSWORD)
    browser.get("/admin/login/")
    for password, status in ((WRONG_PASSWORD, 200), (ADMIN_PASSWORD, 302)):
        assert browser.admin_login("ops", password).status_code == status


def _broker_account_add(browser: Browser) -> BrokerAccount:
    browser.get("/admin/ticks/brokeraccount/add/")
    form = {
        "name": ACCOUNT,
        "api_key": KITE_API_KEY,
        "api_secret": KITE_API_SECRET,
        "access_token": KITE_ACCESS_TOKEN,
        "enabled": "on",
        "max_connections": "3",
        "tokens_per_connection": "3000",
        "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        "_save": "Save",
    }
    saved = browser.post("/admin/ticks/brokeraccount/add/", data=form, headers={"Origin": browser.origin})
    assert saved.status_code == 302, saved.text
    return BrokerAccount.objects.get(name=ACCOUNT)


def _rest_calls(browser: Browser, key: str) -> None:
    assert browser.get("/api/v1/instruments?limit=1", headers={"X-Api-Key": key}).status_code == 200
    assert browser.get("/api/v1/orders", headers={"Authorization": f"Api-Key {key}"}).status_code == 200
    wrong = f"{key.partition('.')[0]}.wrongSecretN5tLeakCanary"
    assert browser.get("/api/v1/instruments", headers={"X-Api-Key": wrong}).status_code == 401
    # A careless client: the key in the query string, which the REST API does not read (401).
    assert browser.get(f"/api/v1/instruments?api_key={key}").status_code == 401


async def _stream(stack: ProxyStack, chain: str, key: str) -> list[str]:
    """The first answer of a stream authenticated by header, by query string and by a wrong key."""
    answers = []
    for url, headers in (
        (stack.ws_url, {"X-Api-Key": key}),
        (f"{stack.ws_url}?api_key={key}", {}),
        (stack.ws_url, {"X-Api-Key": "wrongprefix.wrongStreamK9dLeakCanary"}),
    ):
        async with connect(url, additional_headers=headers, **stack.ws_options()) as ws:
            try:
                await ws.send(json.dumps({"action": "subscribe", "chain": chain}))
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["type"])
            except ConnectionClosed as closed:
                answers.append(f"closed {closed.rcvd.code if closed.rcvd else None}")
    return answers


def _order_place(browser: Browser, key: str) -> Order:
    option = atm_option()
    # Outside market hours only an AMO passes validation (kitesim then rejects it): Kite is called either way.
    variety = "regular" if market_open(market_now()) else "amo"
    body = limit_body(option, account=ACCOUNT, variety=variety, price=float(option.tick_size * 2000))
    headers = {"X-Api-Key": key, "Idempotency-Key": "deploy-log-order-1", "X-Request-ID": ORDER_REQUEST_ID}
    response = browser.post("/api/v1/orders", json=body, headers=headers)
    assert response.headers["X-Request-ID"] == ORDER_REQUEST_ID
    assert response.status_code == 201, response.text
    return Order.objects.get(pk=response.json()["id"])


def _kite_answered(order: Order) -> bool:
    order.refresh_from_db()
    return order.status not in (OrderStatus.PENDING, OrderStatus.SUBMITTING)


def test_no_key_password_secret_or_token_reaches_any_log(
    deployed: tuple[ProxyStack, ProcfileProcess],
) -> None:
    stack, worker = deployed
    browser = stack.browser()
    _admin_session(browser)
    account = _broker_account_add(browser)
    instruments_refresh_from_kite(account=account)
    trader = UserFactory()
    TradingPermission.objects.create(user=trader, account=account)
    key = api_key_issue(trader)
    session_id = browser.cookies["sessionid"]

    script = stack.browser()  # an API client: no admin session cookie
    _rest_calls(script, key)
    chain = f"NIFTY:{atm_option().expiry:%Y-%m-%d}"
    answers = asyncio.run(_stream(stack, chain, key))
    order = _order_place(script, key)
    until(lambda: _kite_answered(order), timeout=30)
    stack.stop()
    worker.stop()

    assert answers[0] == "snapshot" and answers[2] == "closed 4401"
    logs = {path.name: path.read_text(errors="replace") for path in [*stack.logs(), worker.log]}
    _assert_logs_recorded_the_session(logs)
    _assert_order_followed_across_processes(logs, order)
    secrets = {
        "client API key": key,
        "client API key's secret part": key.partition(".")[2],
        "admin password": ADMIN_PASSWORD,
        "mistyped admin password": WRONG_PASSWORD,
        "Kite api_key": KITE_API_KEY,
        "Kite api_secret": KITE_API_SECRET,
        "Kite access_token": KITE_ACCESS_TOKEN,
        "admin session id": session_id,
        "wrong keys": "LeakCanary",
    }
    leaks = [
        f"{name} in {log}: {line.strip()[:200]}"
        for log, text in logs.items()
        for name, secret in secrets.items()
        for line in text.splitlines()
        if secret in line
    ]
    assert not leaks, "\n".join(leaks)


def _assert_logs_recorded_the_session(logs: dict[str, str]) -> None:
    access = logs["access.log"]
    for request in ("POST /admin/login/", "POST /admin/ticks/brokeraccount/add/", "GET /api/v1/instruments"):
        assert request in access
    assert re.search(r'"GET /ws/stream/ HTTP/1\.1" 101 ', access)
    assert re.search(r'"POST /api/v1/orders HTTP/1\.1" 201 ', access)
    webs = logs["web-1.log"] + logs["web-2.log"]
    assert "Unauthorized: /api/v1/instruments" in webs  # Django's line for the wrong key
    assert "orders.submit" in logs["worker.log"] and "succeeded" in logs["worker.log"]


def _assert_order_followed_across_processes(logs: dict[str, str], order: Order) -> None:
    """README "Logs": JSON lines, and the order's request id leads from the web's lines to the worker's."""

    def traced(text: str) -> list[dict[str, object]]:
        records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        return [record for record in records if record.get("request_id") == ORDER_REQUEST_ID]

    web = traced("\n".join([logs["web-1.log"], logs["web-2.log"]]))
    assert any(line.get("order_id") == order.pk and line.get("idempotency_key") for line in web)
    worker = traced(logs["worker.log"])
    assert any(line.get("order_id") == order.pk and line.get("task_id") for line in worker)
