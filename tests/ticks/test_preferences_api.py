"""GET/PUT /api/v1/dashboard/preferences: authentication, validation per field, round trip, isolation."""

import json

import pytest
from django.contrib.auth.models import AbstractBaseUser
from rest_framework.response import Response
from rest_framework.test import APIClient

from tests.ticks.factories import UserFactory
from ticks.models import DASHBOARD_COLUMNS, DASHBOARD_DEFAULT_COLUMNS, ClientApiKey, DashboardPreferences
from ticks.selectors import dashboard_preferences
from ticks.services import dashboard_preferences_save

pytestmark = pytest.mark.django_db

URL = "/api/v1/dashboard/preferences"
DEFAULTS = {"columns": list(DASHBOARD_DEFAULT_COLUMNS), "strike_range": 10}
GOOD = {"columns": ["oi", "oi_change", "gamma", "iv", "last_price"], "strike_range": 15}


def _key_client(user: AbstractBaseUser) -> APIClient:
    _, key = ClientApiKey.objects.create_key(name="script", user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def _browser(user: AbstractBaseUser) -> APIClient:
    """A logged-in browser that checks CSRF as the real one does, holding the cookie the login page set."""
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/login/").status_code == 200
    return browser


def _put(client: APIClient, body: object, **headers: str) -> Response:
    return client.put(URL, json.dumps(body), content_type="application/json", **headers)


@pytest.mark.parametrize("method", ["get", "put"])
def test_anonymous_requests_get_401_with_the_scheme(method: str) -> None:
    response = getattr(APIClient(), method)(URL, GOOD, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"


def test_a_wrong_key_is_refused_and_saves_nothing() -> None:
    response = _put(APIClient(), GOOD, HTTP_X_API_KEY="nope.nope")

    assert response.status_code == 401
    assert not DashboardPreferences.objects.exists()


def test_a_script_with_an_api_key_reads_the_defaults_then_its_saved_preferences(
    django_assert_num_queries,
) -> None:
    user = UserFactory()
    client = _key_client(user)

    with django_assert_num_queries(2):  # key with its user, preferences
        first = client.get(URL)
    saved = _put(client, {"columns": ["last_price", "iv", "oi"], "strike_range": 30})
    again = client.get(URL)

    assert first.status_code == 200 and first.json() == DEFAULTS
    assert saved.status_code == 200
    assert saved.json() == {"columns": ["oi", "iv", "last_price"], "strike_range": 30}
    assert again.json() == saved.json()
    assert dashboard_preferences(user=user) == saved.json()


def test_the_dashboard_saves_with_its_session_and_csrf_token() -> None:
    user = UserFactory()
    browser = _browser(user)
    token = browser.cookies["csrftoken"].value

    refused = _put(browser, GOOD)
    saved = _put(browser, GOOD, HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert saved.status_code == 200 and saved.json() == GOOD
    assert browser.get(URL).json() == GOOD


def test_a_session_without_csrf_changes_nothing() -> None:
    user = UserFactory()
    dashboard_preferences_save(user=user, columns=["oi"], strike_range=6)

    assert _put(_browser(user), GOOD).status_code == 403
    assert dashboard_preferences(user=user) == {"columns": ["oi"], "strike_range": 6}


def test_one_user_neither_sees_nor_changes_anothers_preferences() -> None:
    trader, other = UserFactory(), UserFactory()
    trader_client, other_client = _key_client(trader), _key_client(other)
    _put(trader_client, GOOD)

    assert other_client.get(URL).json() == DEFAULTS
    _put(other_client, {"columns": ["vega"], "strike_range": 5})

    assert trader_client.get(URL).json() == GOOD
    assert other_client.get(URL).json() == {"columns": ["vega"], "strike_range": 5}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"columns": [], "strike_range": 10}, "columns"),
        ({"columns": "oi,iv", "strike_range": 10}, "columns"),
        ({"columns": ["oi", "pcr"], "strike_range": 10}, "columns"),
        ({"columns": ["oi", "oi"], "strike_range": 10}, "columns"),
        ({"columns": ["oi", None], "strike_range": 10}, "columns"),
        ({"columns": None, "strike_range": 10}, "columns"),
        ({"columns": ["oi"], "strike_range": True}, "strike_range"),
        ({"columns": ["oi"], "strike_range": 4}, "strike_range"),
        ({"columns": ["oi"], "strike_range": 31}, "strike_range"),
        ({"columns": ["oi"], "strike_range": "10"}, "strike_range"),
        ({"columns": ["oi"], "strike_range": 10.0}, "strike_range"),
        ({"columns": ["oi"], "strike_range": 2**70}, "strike_range"),
        ({"columns": ["oi"]}, "strike_range"),
        ({"strike_range": 10}, "columns"),
        ({"columns": ["oi"], "strike_range": 10, "theme": "dark"}, "theme"),
        (["oi"], "non_field_errors"),
        ("oi", "non_field_errors"),
    ],
)
def test_a_bad_body_gets_400_naming_the_field_and_keeps_what_was_stored(body: object, field: str) -> None:
    user = UserFactory()
    client = _key_client(user)
    _put(client, GOOD)

    response = _put(client, body)

    assert response.status_code == 400
    assert field in response.json()
    assert client.get(URL).json() == GOOD


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("[" * 5_000 + "]" * 5_000, 400),  # under the size limit, past the parser's recursion limit
        ('{"columns": ["oi"], "strike_range": NaN}', 400),
        ('{"columns": ["oi"], "columns": ["iv"], "strike_range": 10}', 400),
        ('{"columns": ["oi"], ', 400),
        ('{"columns": ["oi"], "strike_range": 10, "pad": "' + "x" * 20_000 + '"}', 413),
    ],
    ids=["deep", "nan", "repeated-key", "truncated", "too-large"],
)
def test_malformed_json_is_refused_not_a_500(raw: str, status: int) -> None:
    client = _key_client(UserFactory())

    response = client.put(URL, raw, content_type="application/json")

    assert response.status_code == status
    assert client.get(URL).json() == DEFAULTS


def test_a_form_body_is_refused_as_unsupported() -> None:
    response = _key_client(UserFactory()).put(
        URL, "columns=oi", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 415


def test_the_openapi_schema_documents_both_methods_and_the_body() -> None:
    schema = (
        _key_client(UserFactory()).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    )

    operations = schema["paths"][URL]
    assert {"get", "put"} <= set(operations)
    reference = operations["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert set(body["properties"]) == {"columns", "strike_range"}
    assert body["properties"]["strike_range"]["minimum"] == 5
    assert body["properties"]["strike_range"]["maximum"] == 30
    columns = schema["components"]["schemas"][
        body["properties"]["columns"]["items"]["$ref"].rsplit("/", 1)[1]
    ]
    assert columns["enum"] == list(DASHBOARD_COLUMNS)
