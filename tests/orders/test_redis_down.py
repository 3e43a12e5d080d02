"""With Redis stopped, every write answers honestly: an order that was stored is a 201 (the sweeper
submits it once Redis is back), never a 500 that tells the client to send it again without its key."""

import json
import os
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from orders.kite_sync import orders_sweep_stuck
from orders.models import Order, OrderEvent, OrderStatus
from tests.asgi_server import free_port
from tests.browser.web_process import WebProcess
from tests.database import database_url
from tests.orders.conftest import limit_body, make_trader, next_trading_day_at, queued_submissions
from tests.orders.factories import OrderFactory
from tests.ticks.factories import BrokerAccountFactory, OptionFactory
from tests.workers.private_redis import PrivateRedis
from ticks.models import DashboardPreferences

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ORDERS = 6


def _request(url: str, method: str, key: str, body: dict | None = None, **headers: str) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Authorization", f"Api-Key {key}")
    request.add_header("Content-Type", "application/json")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {"retry_after": error.headers.get("Retry-After"), "body": error.read().decode()}


@pytest.fixture
def web_without_redis(tmp_path: Path):
    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    env = {
        "DJANGO_SETTINGS_MODULE": "tickerproject.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DATABASE_URL": database_url(),
        "TEST_REDIS_URL": redis_server.url,
        "TEST_CHANNEL_PREFIX": f"redisdown{free_port()}",
        "MARKET_CLOCK": next_trading_day_at(10).isoformat(),
    }
    web = WebProcess({**os.environ, **env}, free_port(), tmp_path / "web.log")
    redis_server.kill()
    yield web
    web.kill()


def test_orders_posted_while_redis_is_down_are_stored_answered_201_and_swept_once_it_is_back(
    web_without_redis: WebProcess, redis_client: redis.Redis
) -> None:
    account = BrokerAccountFactory(name="demo")
    option = OptionFactory()
    trader = make_trader(account)
    answers = [
        _request(
            f"{web_without_redis.url}/api/v1/orders",
            "POST",
            trader.key,
            limit_body(option),
            **{"Idempotency-Key": f"redis-down-{n}"},
        )
        for n in range(ORDERS)
    ]

    statuses = [status for status, _ in answers]
    stored = Order.objects.filter(client=trader.user).count()
    assert set(statuses) <= {201, 503}, answers
    assert stored == statuses.count(201), answers
    assert all(body["retry_after"] for status, body in answers if status == 503), answers
    assert set(Order.objects.values_list("status", flat=True)) <= {OrderStatus.PENDING}

    # Redis back (here: the suite's): the sweeper queues every stored order for submission, once.
    overdue = timezone.now() + timedelta(seconds=settings.ORDER_STUCK_GRACE_S + 60)
    swept = orders_sweep_stuck(now=overdue)
    assert sorted(swept) == sorted(Order.objects.values_list("pk", flat=True))
    assert queued_submissions(redis_client) == sorted(swept)


def test_writes_that_need_redis_answer_503_with_retry_after_and_change_nothing(
    web_without_redis: WebProcess,
) -> None:
    account = BrokerAccountFactory(name="demo")
    trader = make_trader(account)
    at_kite = OrderFactory(
        client=trader.user,
        account=account,
        status=OrderStatus.OPEN,
        broker_order_id="2612060001",
        placement_attempts=1,
    )
    unsent = OrderFactory(client=trader.user, account=account, status=OrderStatus.PENDING)
    url = f"{web_without_redis.url}/api/v1/orders"
    events = OrderEvent.objects.count()

    modify = _request(f"{url}/{at_kite.pk}", "PATCH", trader.key, {"quantity": 130})
    cancel = _request(f"{url}/{at_kite.pk}", "DELETE", trader.key)
    cancel_unsent = _request(f"{url}/{unsent.pk}", "DELETE", trader.key)

    # Kite calls go through the fleet-wide rate limiter and breaker in Redis: refused before Kite is asked.
    assert [modify[0], cancel[0]] == [503, 503], (modify, cancel)
    assert modify[1]["retry_after"] and cancel[1]["retry_after"]
    at_kite.refresh_from_db()
    assert (at_kite.status, at_kite.quantity) == (OrderStatus.OPEN, 65)
    # Kite never saw this one: cancelled in the database alone, Redis or not.
    assert cancel_unsent[0] == 200, cancel_unsent
    assert cancel_unsent[1]["status"] == OrderStatus.CANCELLED
    assert OrderEvent.objects.count() == events + 1


def test_writes_kept_in_the_database_alone_succeed_while_redis_is_down(web_without_redis: WebProcess) -> None:
    trader = make_trader(BrokerAccountFactory(name="demo"))
    body = {"columns": ["iv", "last_price"], "strike_range": 7}

    answer = _request(f"{web_without_redis.url}/api/v1/dashboard/preferences", "PUT", trader.key, body)

    assert answer == (200, body)
    assert DashboardPreferences.objects.get(user=trader.user).strike_range == 7
