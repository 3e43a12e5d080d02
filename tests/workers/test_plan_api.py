import json
from datetime import UTC, datetime

import pytest
import redis
from rest_framework.test import APIClient

from tests.workers.plan_factories import feed_report, plan_world
from workers.control import DRIFT_LAST_KEY

pytestmark = pytest.mark.django_db

URL = "/api/v1/feeds/plan"


def test_the_plan_in_force_with_coverage_drift_and_its_tokens(
    key_client: APIClient, redis_client: redis.Redis, django_assert_num_queries
) -> None:
    world = plan_world()
    feed_report(redis_client, world.alpha, 2, {0: [*world.nifty_options, world.nifty_index]})
    feed_report(redis_client, world.beta, 1, {0: [world.banknifty_index]})
    at = datetime(2026, 12, 8, 4, 0, tzinfo=UTC)
    fix = {
        "at": at.timestamp(),
        "plan_version": 2,
        "drifts": [{"account_id": world.beta.pk, "planned": 5, "reported": 1, "stale_version": True}],
    }
    redis_client.set(DRIFT_LAST_KEY, json.dumps(fix))

    # key with its user, the plan in force, accounts, the plan's tokens, count, page
    with django_assert_num_queries(6):
        response = key_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["plan"] | {"created_at": None} == {
        "version": 2,
        "created_at": None,
        "reason": "rebalance NIFTY:2026-12-08 24800→24850",
        "errors": ["BANKNIFTY:2026-12-09: 3 of 12 tokens did not fit on the healthy connections"],
        "desired_tokens": 10,
        "added_tokens": 2,
        "removed_tokens": 2,
        "moved_tokens": 1,
    }
    connections = {(c["account"], c["connection"]): c for c in body["connections"]}
    assert list(connections) == [("alpha", 0), ("beta", 0), ("beta", 1)]
    assert connections["alpha", 0]["tokens"] == {
        "planned": 6,
        "subscribed": 6,
        "missing_count": 0,
        "missing": [],
        "unplanned_count": 0,
        "unplanned": [],
    }
    assert connections["beta", 0]["reported_plan_version"] == 1
    assert connections["beta", 0]["tokens"]["missing"] == world.banknifty_options[:2]
    assert connections["beta", 1]["tokens"]["subscribed"] == 0
    assert body["last_drift"] == {
        "at": "2026-12-08T09:30:00+05:30",
        "plan_version": 2,
        "drifts": [{"account_id": world.beta.pk, "planned": 5, "reported": 1, "stale_version": True}],
    }
    tokens = body["tokens"]
    assert (tokens["count"], tokens["next"], tokens["previous"]) == (11, None, None)
    assert tokens["results"][1] == {
        "instrument_token": world.nifty_options[0],
        "tradingsymbol": "NIFTY26120824750CE",
        "group": "NIFTY:2026-12-08",
        "underlying": "NIFTY",
        "expiry": "2026-12-08",
        "strike": "24750.00",
        "strike_offset": -2,
        "role": "option",
        "primary": True,
        "account": "alpha",
        "connection": 0,
        "mode": "full",
    }


def test_the_query_count_does_not_grow_with_the_page(
    key_client: APIClient, redis_client: redis.Redis, django_assert_num_queries
) -> None:
    plan_world()

    with django_assert_num_queries(6):
        few = key_client.get(URL, {"limit": 1})
    with django_assert_num_queries(6):
        every = key_client.get(URL, {"limit": 100})

    assert len(few.json()["tokens"]["results"]) == 1
    assert len(every.json()["tokens"]["results"]) == 11


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"account": "beta", "underlying": "BANKNIFTY"}, 5),
        ({"underlying": "NIFTY"}, 6),
        ({"account": "alpha", "underlying": "BANKNIFTY"}, 0),
        ({"token": 260105}, 2),
    ],
)
def test_token_filters(key_client: APIClient, redis_client: redis.Redis, params: dict, expected: int) -> None:
    plan_world()

    body = key_client.get(URL, params).json()

    assert body["tokens"]["count"] == expected
    assert len(body["connections"]) == 3  # the summary is never filtered
    for row in body["tokens"]["results"]:
        assert row.items() >= {k: v for k, v in params.items() if k != "token"}.items()
        assert params.get("token", row["instrument_token"]) == row["instrument_token"]


def test_pages_link_to_the_next(key_client: APIClient, redis_client: redis.Redis) -> None:
    world = plan_world()

    tokens = key_client.get(URL, {"account": "alpha", "limit": 4, "offset": 4}).json()["tokens"]

    assert tokens["count"] == 6
    assert [row["strike_offset"] for row in tokens["results"]] == [1, 2]
    assert "limit=4" in tokens["previous"] and tokens["next"] is None
    assert tokens["results"][-1]["instrument_token"] == world.nifty_options[-1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"account": "nobody"}, "account"),
        ({"token": "abc"}, "token"),
        ({"token": 0}, "token"),
        ({"underlying": "X" * 65}, "underlying"),
    ],
)
def test_bad_params_get_400_naming_the_field(
    key_client: APIClient, redis_client: redis.Redis, params: dict, field: str
) -> None:
    plan_world()

    response = key_client.get(URL, params)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_before_the_first_plan(key_client: APIClient, redis_client: redis.Redis) -> None:
    body = key_client.get(URL).json()

    assert body == {
        "plan": None,
        "connections": [],
        "last_drift": None,
        "tokens": {"count": 0, "next": None, "previous": None, "results": []},
    }


def test_an_api_key_is_required() -> None:
    response = APIClient().get(URL)

    assert response.status_code == 401


def test_the_openapi_schema_documents_the_filters_and_the_report(key_client: APIClient) -> None:
    schema = key_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    operation = schema["paths"][URL]["get"]
    assert {p["name"] for p in operation["parameters"]} == {
        "account",
        "underlying",
        "token",
        "limit",
        "offset",
    }
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    report = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert set(report["properties"]) == {"plan", "connections", "last_drift", "tokens"}
