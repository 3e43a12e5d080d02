"""Structured logs (README "Logs"): one JSON line per record, the request id from the header to the response
and every line of the request, on into the Celery task that serves it; the domain ids; secrets masked."""

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from structlog.contextvars import bound_contextvars

from orders.models import Order
from tests.asgi_server import free_port
from tests.orders.conftest import limit_body, make_trader, next_trading_day_at, queued_submissions
from tests.orders.kitebook import atm_option
from tests.ticks.factories import BrokerAccountFactory, OptionFactory
from tests.waiting import until
from tests.workers.conftest import WorkerProcess, fleet, kitesim, stack_env, start_worker  # noqa: F401 - fixtures
from tickerproject.logging import REDACTED, formatter_build, logging_settings, secrets_redact
from ticks.feeds.connection import ConnectionSettings, Credentials, FeedConnection
from ticks.models import BrokerAccount

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_log() -> Iterator[LogLines]:
    """Every record logged during the test, as production writes it (one JSON line), parsed back."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_build("json"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # the test settings log warnings only
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(level)


def _is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


# --- the request id ----------------------------------------------------------------------------------


def test_every_line_of_a_request_is_json_with_the_request_id_the_response_echoes(
    client: Client, json_log: LogLines
) -> None:
    response = client.get("/no-such-page")

    request_id = response["X-Request-ID"]
    assert response.status_code == 404 and _is_uuid(request_id)
    lines = json_log()
    # Django's own line comes last, after the middleware has unbound the request's context.
    events = ["request_started", "request_finished", "Not Found: /no-such-page"]
    assert [line["event"] for line in lines] == events
    assert {line["request_id"] for line in lines} == {request_id}
    assert lines[1]["code"] == 404 and lines[1]["request"] == "GET /no-such-page"
    assert lines[2]["logger"] == "django.request" and lines[2]["request"] == "GET /no-such-page"


def test_a_request_is_logged_without_its_query_string(
    client: Client, json_log: LogLines, caplog: pytest.LogCaptureFixture
) -> None:
    """Kite's callback carries its request_token in the query: neither our lines nor any other handler's
    records (caplog here) may hold it."""
    caplog.set_level(logging.INFO)
    client.get("/no-such-page?request_token=rt-0123456789abcdef&other=kept-out")

    lines = json_log()
    assert {line["request"] for line in lines} == {"GET /no-such-page"}
    assert "rt-0123456789abcdef" not in caplog.text and "kept-out" not in caplog.text


@pytest.mark.parametrize("given", ["nginx-7f3a9c", "4bf92f3577b34da6a3ce929d0e0e4736", "trace:1.2_3"])
def test_a_safe_request_id_from_the_caller_is_kept(client: Client, json_log: LogLines, given: str) -> None:
    response = client.get("/no-such-page", HTTP_X_REQUEST_ID=given)

    assert response["X-Request-ID"] == given
    assert {line["request_id"] for line in json_log()} == {given}


@pytest.mark.parametrize(
    "given", ["", "two words", "x" * 129, 'quote"d', "semi;colon", "new\nline", "über-id"]
)
def test_an_unsafe_request_id_is_replaced_by_a_new_one(
    client: Client, json_log: LogLines, given: str
) -> None:
    response = client.get("/no-such-page", HTTP_X_REQUEST_ID=given)

    request_id = response["X-Request-ID"]
    assert request_id != given and _is_uuid(request_id)
    assert {line["request_id"] for line in json_log()} == {request_id}


def test_requests_get_different_ids_and_none_is_left_bound_after_a_request(
    client: Client, json_log: LogLines
) -> None:
    first = client.get("/no-such-page")["X-Request-ID"]
    second = client.get("/no-such-page")["X-Request-ID"]
    logging.getLogger("tests").warning("between requests")

    assert first != second
    assert "request_id" not in json_log()[-1]


# --- an order: web, message, worker --------------------------------------------------------------------


@pytest.mark.clock  # the option's expiry and the open market are the next session's
@pytest.mark.django_db(transaction=True)  # the submission is enqueued on commit, inside the request
def test_an_order_logs_its_ids_and_its_message_carries_the_request_id(
    json_log: LogLines, redis_client: redis.Redis, settings
) -> None:
    settings.MARKET_CLOCK = next_trading_day_at(10).isoformat()
    trader = make_trader(BrokerAccountFactory(name="demo"))
    body = limit_body(OptionFactory(), price=101.5)

    response = trader.place(body, key="idem-77", HTTP_X_REQUEST_ID="client-run-42")

    assert response.status_code == 201, response.json()
    order_id = response.json()["id"]
    assert queued_submissions(redis_client) == [order_id]
    lines = [line for line in json_log() if line.get("request_id") == "client-run-42"]
    accepted = next(line for line in lines if line["event"].startswith("order accepted"))
    assert (accepted["order_id"], accepted["idempotency_key"]) == (order_id, "idem-77")
    enqueued = next(line for line in lines if line["event"] == "task_enqueued")
    assert enqueued["order_id"] == order_id and enqueued["child_task_name"] == "orders.submit"
    (message,) = [json.loads(raw) for raw in redis_client.lrange("orders", 0, -1)]
    assert message["headers"]["id"] == enqueued["child_task_id"]
    carried = message["headers"]["__django_structlog__"]
    assert (carried["request_id"], carried["order_id"]) == ("client-run-42", order_id)


def _json_lines(log: Path) -> list[dict[str, Any]]:
    """The worker's log lines that are records (Celery prints its banner without logging)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


@pytest.mark.integration
def test_the_worker_that_submits_an_order_logs_the_request_id_beside_its_task_id(
    fleet: dict[str, BrokerAccount],  # noqa: F811 - the fixture imported above
    start_worker: Callable[..., WorkerProcess],  # noqa: F811
    json_log: LogLines,
    settings,
) -> None:
    settings.MARKET_CLOCK = "kitesim"
    worker = start_worker(queues="orders", LOG_FORMAT="json")
    trader = make_trader(fleet["demo"])
    body = limit_body(atm_option(), order_type="MARKET", price=None)

    response = trader.place(body, key="idem-worker-1", HTTP_X_REQUEST_ID="desk-trace-9")
    assert response.status_code == 201, response.json()
    order = Order.objects.get(pk=response.json()["id"])
    until(lambda: Order.objects.filter(pk=order.pk, broker_order_id__isnull=False).exists(), timeout=30)
    until(lambda: any(line["event"] == "order submission: placed" for line in _json_lines(worker.log)))

    enqueued = next(line for line in json_log() if line["event"] == "task_enqueued")
    assert enqueued["request_id"] == "desk-trace-9"
    traced = [line for line in _json_lines(worker.log) if line.get("request_id") == "desk-trace-9"]
    started = next(line for line in traced if line["event"] == "task_started")
    placed = next(line for line in traced if line["event"] == "order submission: placed")
    assert started["task"] == "orders.submit" and started["task_id"] == enqueued["child_task_id"]
    assert placed["task_id"] == enqueued["child_task_id"]
    assert (placed["order_id"], placed["idempotency_key"]) == (order.pk, "idem-worker-1")
    assert placed["account_id"] == fleet["demo"].pk
    assert all(line["task_id"] == enqueued["child_task_id"] for line in traced)


# --- secrets and settings --------------------------------------------------------------------------------


def test_secret_values_are_masked_under_their_keys_and_inside_text() -> None:
    event = {
        "event": "GET /api/v1/instruments?limit=1&api_key=abc.DEF123 answered",
        "access_token": "tok-1",
        "API_SECRET": "sec-2",
        "headers": {"Authorization": "Api-Key abc.DEF123", "Accept": "application/json"},
        "detail": "{'request_token': 'rt-3', 'checksum': 'cs-4', 'status': 'success'}",
        "note": "Authorization: Bearer tok-5",
        "order_id": 7,
    }

    masked = secrets_redact(None, "info", event)

    assert masked == {
        "event": f"GET /api/v1/instruments?limit=1&api_key={REDACTED} answered",
        "access_token": REDACTED,
        "API_SECRET": REDACTED,
        "headers": {"Authorization": REDACTED, "Accept": "application/json"},
        "detail": f"{{'request_token': '{REDACTED}', 'checksum': '{REDACTED}', 'status': 'success'}}",
        "note": f"Authorization: {REDACTED}",
        "order_id": 7,
    }


def test_no_secret_reaches_a_rendered_line(json_log: LogLines) -> None:
    logger = logging.getLogger("tests.secrets")
    with bound_contextvars(password="pw-bound-9"):
        logger.warning("login with access_token=tok-inline-8", extra={"api_secret": "sec-extra-7"})
        try:
            raise ValueError("Kite refused api_key=key-in-exc-6")
        except ValueError:
            logger.exception("call failed")

    text = json.dumps(json_log())
    assert "call failed" in text and "ValueError" in text
    for secret in ("pw-bound-9", "tok-inline-8", "sec-extra-7", "key-in-exc-6"):
        assert secret not in text


def test_development_lines_are_readable_and_carry_the_bound_ids() -> None:
    record = logging.LogRecord("orders.submission", logging.INFO, __file__, 1, "order %s placed", (7,), None)
    with bound_contextvars(request_id="r-1", order_id=7):
        line = formatter_build("console").format(record)

    assert not line.startswith("{")
    assert "order 7 placed" in line and "request_id=r-1" in line and "order_id=7" in line


def test_log_format_must_be_json_or_console() -> None:
    assert logging_settings("json", "INFO")["root"] == {"handlers": ["console"], "level": "INFO"}
    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT must be json or console, got 'xml'"):
        logging_settings("xml", "INFO")


async def test_a_feed_connection_names_itself_and_its_account_on_its_lines(json_log: LogLines) -> None:
    stop = asyncio.Event()

    async def credentials() -> Credentials:
        return Credentials(api_key="kite-key", access_token="tok-in-url-5")

    async def on_frame(frame: bytes, received_at: float) -> None:
        raise AssertionError("nothing listens there")

    connection = FeedConnection(
        index=2,
        settings=ConnectionSettings(ws_root=f"ws://127.0.0.1:{free_port()}", open_timeout_s=5),
        credentials=credentials,
        on_frame=on_frame,
        on_text=lambda message: None,
        on_reconnect=lambda reason: stop.set(),  # one failed connect is enough
    )
    with bound_contextvars(account_id=5):  # as workers.feed binds it for the whole feed
        await asyncio.wait_for(connection.run(stop), timeout=30)

    (line,) = [line for line in json_log() if line["event"].startswith("connection 2: cannot connect")]
    assert (line["feed_connection"], line["account_id"]) == (2, 5)
    assert "tok-in-url-5" not in json.dumps(json_log())
