"""Who may call what: every REST endpoint, found through the URL resolver (a new one is covered without
touching this file), with every method it answers, anonymous, under each key scope and with a session."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import SAFE_METHODS
from rest_framework.test import APIClient
from rest_framework.views import APIView

from tests.ticks.factories import UserFactory
from ticks.models import ClientApiKey

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"
# A value of each path converter's type: enough to reach the permission check, which runs first.
CONVERTER_SAMPLES = {"int": "1", "str": "NIFTY", "slug": "nifty", "path": "NIFTY", "uuid": "0" * 32}


@dataclass(frozen=True)
class Call:
    method: str
    url: str

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


def _routes(patterns: list[URLPattern | URLResolver], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry.callback


def _sample_url(route: str) -> str:
    url = route
    while "<" in url:
        start, end = url.index("<"), url.index(">")
        converter, _, _ = url[start + 1 : end].rpartition(":")
        url = url[:start] + CONVERTER_SAMPLES[converter or "str"] + url[end + 1 :]
    return "/" + url


def api_calls() -> list[Call]:
    """Every (method, URL) of every DRF view under /api/v1/."""
    calls = []
    for route, callback in _routes(get_resolver().url_patterns):
        view = getattr(callback, "cls", None)
        if not route.startswith(API_PREFIX) or view is None or not issubclass(view, APIView):
            continue
        methods = sorted(view().allowed_methods)
        calls += [Call(method, _sample_url(route)) for method in methods]
    return calls


# Writes open to a read key, each with its reason; any other write a read key gets through fails below.
READ_KEY_WRITES = {
    "POST /api/v1/stream/tickets": "a ticket for the live stream, which only reads",
}

CALLS = api_calls()
READS = [call for call in CALLS if call.method in SAFE_METHODS or str(call) in READ_KEY_WRITES]
WRITES = [call for call in CALLS if call not in READS]


def test_the_resolver_finds_every_kind_of_endpoint() -> None:
    found = {str(call) for call in CALLS}
    assert {"GET /api/v1/instruments", "POST /api/v1/orders", "DELETE /api/v1/orders/1"} <= found
    assert "PUT /api/v1/dashboard/preferences" in found
    assert len(WRITES) >= 4


def _send(client: APIClient, call: Call) -> Any:
    return getattr(client, call.method.lower())(call.url, format="json")


def _key_client(scope: str) -> APIClient:
    _, key = ClientApiKey.objects.create_key(name=scope, user=UserFactory(), scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture(autouse=True)
def _redis(redis_client: redis.Redis) -> None:
    """Feeds, positions and the order lookups read Redis: this run's database, flushed."""


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_anonymous_is_refused_everywhere(call: Call) -> None:
    response = _send(APIClient(), call)

    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize("call", READS, ids=str)
def test_a_read_key_reads(call: Call) -> None:
    response = _send(_key_client("read"), call)

    assert response.status_code not in (401, 403, 429), response.content
    assert response.status_code < 500, response.content


@pytest.mark.parametrize("call", WRITES, ids=str)
def test_a_read_key_writes_nothing_and_is_told_the_scope_it_needs(call: Call) -> None:
    response = _send(_key_client("read"), call)

    assert response.status_code == 403
    assert response.json() == {"detail": f"This API key's scope is read; {call.method} needs a trade key."}


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_a_trade_key_reaches_every_endpoint(call: Call) -> None:
    response = _send(_key_client("trade"), call)

    assert response.status_code not in (401, 403, 429), response.content
    assert response.status_code < 500, response.content


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_a_session_keeps_its_access(call: Call) -> None:
    client = APIClient()
    client.force_login(UserFactory())

    response = _send(client, call)

    assert response.status_code not in (401, 403, 429), response.content
    assert response.status_code < 500, response.content


def test_narrowing_a_key_to_read_stops_its_orders_at_the_next_request(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The order API remembers keys (orders.lookup_cache); a scope saved in admin must still count."""
    api_key, key = ClientApiKey.objects.create_key(name="algo", user=UserFactory(), scope="trade")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.post("/api/v1/orders", {}, format="json").status_code == 400  # past the permission

    api_key.scope = ClientApiKey.Scope.READ
    with django_capture_on_commit_callbacks(execute=True):  # the commit tells every process to forget
        api_key.save()

    assert client.post("/api/v1/orders", {}, format="json").status_code == 403
    assert client.get("/api/v1/orders").status_code == 200


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_admin_offers_read_first_and_issues_the_scope_chosen(admin_client_: Client) -> None:
    user = UserFactory(username="algo")

    form = admin_client_.get("/admin/ticks/clientapikey/add/").content.decode()
    response = admin_client_.post(
        "/admin/ticks/clientapikey/add/", {"name": "algo", "user": user.pk, "scope": "trade"}
    )

    assert re.search(r'<input type="radio" name="scope" value="read"[^>]* checked>', form)
    assert re.search(r'<input type="radio" name="scope" value="trade"[^>]*required id="id_scope_1">', form)
    assert response.status_code == 302
    assert ClientApiKey.objects.get(name="algo").scope == "trade"
    assert (
        '<td class="field-scope">Trade</td>'
        in admin_client_.get("/admin/ticks/clientapikey/").content.decode()
    )
