"""REST API limits: per key, per address (sessions), failed authentications per address; 429 with
Retry-After; counters in Redis (shared by every web process); with Redis gone, requests go through."""

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from orders.authentication import API_KEYS
from tests.ticks.factories import UserFactory
from tickerproject import throttling
from ticks.models import ClientApiKey

pytestmark = pytest.mark.django_db

READ_URL = "/api/v1/instruments"
ORDERS_URL = "/api/v1/orders"  # cached key check (orders.authentication)


@pytest.fixture(autouse=True)
def _fresh(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """This run's Redis database, flushed; no key remembered by another test; the warning not yet given."""
    API_KEYS.clear()
    monkeypatch.setattr(throttling, "_unavailable_logged_at", None)


@pytest.fixture
def rates(settings: Any) -> Any:
    """Set some limits (the test settings lift them all): ``rates(key="3/min")``."""

    def set_rates(**changes: str) -> None:
        framework = settings.REST_FRAMEWORK
        current = framework["DEFAULT_THROTTLE_RATES"]
        settings.REST_FRAMEWORK = {**framework, "DEFAULT_THROTTLE_RATES": {**current, **changes}}

    return set_rates


def _new_key(**fields: Any) -> str:
    _, key = ClientApiKey.objects.create_key(name="algo", user=UserFactory(), **fields)
    return key


def _client(key: str | None = None, ip: str = "10.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def _retry_after(response: Any, period_s: int = 60) -> int:
    seconds = int(response["Retry-After"])
    assert 1 <= seconds <= period_s
    return seconds


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not(rates: Any) -> None:
    rates(key="3/min")
    busy, calm = _client(_new_key()), _client(_new_key())
    refused_before = _metric("throttled_total", limit="key")

    answers = [busy.get(READ_URL).status_code for _ in range(4)]
    refused = busy.get(READ_URL)

    assert answers == [200, 200, 200, 429]
    assert refused.status_code == 429
    assert "Request was throttled" in refused.json()["detail"]
    _retry_after(refused)
    assert calm.get(READ_URL).status_code == 200
    assert _metric("throttled_total", limit="key") == refused_before + 2


def test_a_key_is_limited_however_many_addresses_use_it(rates: Any) -> None:
    rates(key="2/min")
    key = _new_key()

    answers = [_client(key, ip=f"10.0.1.{n}").get(READ_URL).status_code for n in range(3)]

    assert answers == [200, 200, 429]


def test_the_count_lives_in_redis_so_another_process_s_requests_count_here(
    rates: Any, redis_client: redis.Redis
) -> None:
    rates(key="10/min")
    client = _client(_new_key())
    assert client.get(READ_URL).status_code == 200
    [counter] = redis_client.keys("throttle:*:key:*")
    assert int(redis_client.get(counter)) == 1
    assert 0 < redis_client.ttl(counter) <= 60

    redis_client.incrby(counter, 9)  # nine requests served by another web process

    assert client.get(READ_URL).status_code == 429


def test_a_write_is_counted_like_a_read(rates: Any) -> None:
    rates(key="1/min")
    client = _client(_new_key())

    assert client.post(ORDERS_URL, {}, format="json").status_code == 400  # counted, then refused as input
    assert client.get(ORDERS_URL).status_code == 429


def test_sessions_are_limited_per_address_which_a_forwarded_header_does_not_change(rates: Any) -> None:
    rates(ip="2/min")
    user = UserFactory()
    here, elsewhere = _client(ip="10.0.2.1"), _client(ip="10.0.2.2")
    here.force_login(user)
    elsewhere.force_login(user)

    answers = [here.get(READ_URL).status_code for _ in range(3)]
    spoofed = here.get(READ_URL, HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert answers == [200, 200, 429]
    assert spoofed.status_code == 429
    _retry_after(spoofed)
    assert elsewhere.get(READ_URL).status_code == 200
    assert _client(_new_key(), ip="10.0.2.1").get(READ_URL).status_code == 200  # keys have their own


@pytest.mark.parametrize("url", [READ_URL, ORDERS_URL])
def test_wrong_keys_from_one_address_meet_429_and_then_even_the_right_key_is_not_checked(
    rates: Any, url: str
) -> None:
    rates(auth_failure="5/min")
    right_key = _new_key()
    assert _client(right_key, ip="10.0.3.1").get(url).status_code == 200  # remembered by the order API
    guesser = _client(ip="10.0.3.1")

    answers = [guesser.get(url, HTTP_X_API_KEY=f"guess-{n}").status_code for n in range(7)]
    right_key_here = _client(right_key, ip="10.0.3.1").get(url)

    assert answers == [401] * 5 + [429] * 2
    assert right_key_here.status_code == 429
    assert right_key_here.json()["detail"].startswith("Too many failed authentications from this address.")
    _retry_after(right_key_here)
    assert _client(right_key, ip="10.0.3.2").get(url).status_code == 200


def test_right_keys_do_not_count_as_failures_and_revoked_ones_do(rates: Any) -> None:
    rates(auth_failure="2/min")
    good = _client(_new_key())
    revoked = _client(_new_key(revoked=True))

    assert [good.get(READ_URL).status_code for _ in range(5)] == [200] * 5
    assert [revoked.get(READ_URL).status_code for _ in range(3)] == [401, 401, 429]


@pytest.fixture
def redis_gone(settings: Any) -> None:
    """The limits' Redis refuses connections (port 1: nothing listens there)."""
    settings.CACHES = {
        **settings.CACHES,
        "throttle": {**settings.CACHES["throttle"], "LOCATION": "redis://127.0.0.1:1/0"},
    }


def test_without_redis_the_limits_let_requests_through_count_them_and_warn_once(
    rates: Any, redis_gone: None, caplog: pytest.LogCaptureFixture
) -> None:
    rates(key="1/min", auth_failure="1/min")
    client = _client(_new_key())
    unavailable_before = _metric("throttle_unavailable_total")

    with caplog.at_level(logging.WARNING, logger="tickerproject.throttling"):
        answers = [client.get(READ_URL).status_code for _ in range(3)]
        wrong = [_client("wrong").get(READ_URL).status_code for _ in range(3)]

    assert answers == [200] * 3
    assert wrong == [401] * 3
    # each key request asks twice (failures so far, then the key's window); each wrong key, twice too
    assert _metric("throttle_unavailable_total") == unavailable_before + 12
    warnings = [record.getMessage() for record in caplog.records if record.name == "tickerproject.throttling"]
    assert len(warnings) == 1
    assert warnings[0].startswith("REST limits not enforced: Redis unreachable")


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("1200/min", (1200, 60)), ("20/m", (20, 60)), ("10/s", (10, 1)), ("5000/day", (5000, 86400))],
)
def test_rates_read_like_drf_s(rate: str, parsed: tuple[int, int]) -> None:
    assert throttling.rate_parse(rate) == parsed


@pytest.mark.parametrize(
    ("name", "value"), [("THROTTLE_KEY_RATE", "lots"), ("AUTH_FAILURE_RATE", "20/month")]
)
def test_a_malformed_rate_stops_start_up_naming_the_variable(name: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import tickerproject.settings.base"],
        cwd=Path(__file__).parents[1],
        env={**os.environ, name: value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name} must be COUNT/PERIOD" in result.stderr
