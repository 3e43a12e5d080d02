"""The published OpenAPI schema is true: it validates, and what every operation answers (its successes
and its errors, from a seeded database) conforms to it: status, media type, headers and body."""

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from django.core.management import call_command
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.openapi_seed import ACCOUNT, DAY, World, in_process, seed_world, served_schema
from tests.orders.conftest import limit_body, next_trading_day_at
from tickerproject.bounds import DATETIME_YEARS
from tickerproject.schema import YEARS

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ORDERS, ORDER = "/api/v1/orders", "/api/v1/orders/{order_id}"
CHAIN = "/api/v1/chains/{underlying}/{expiry}"


@dataclass
class Call:
    """One request (its parts built from the seeded world) and the status it must get."""

    method: str
    path: str
    status: int
    path_parameters: Callable[[World], dict[str, Any]] = lambda world: {}
    query: Callable[[World], dict[str, Any]] = lambda world: {}
    body: Callable[[World], Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"
    keyed: bool = True


def _day_range(world: World, **extra: Any) -> dict[str, Any]:
    start = f"{DAY.isoformat()}T09:15:00+05:30"
    return {
        "instrument": str(world.option.instrument_token),
        "from": start,
        "to": f"{DAY}T15:30:00+05:30",
        **extra,
    }


def _chain(world: World) -> dict[str, str]:
    return {"underlying": world.option.name, "expiry": world.option.expiry.isoformat()}


def _order(world: World) -> dict[str, int]:
    return {"order_id": world.order.pk}


CALLS = [
    Call("GET", "/api/v1/instruments", 200, query=lambda w: {"name": "NIFTY", "limit": 2}),
    Call("GET", "/api/v1/instruments", 400, query=lambda w: {"limit": 0}),
    Call("GET", "/api/v1/instruments", 400, query=lambda w: {"expiry": "1969-12-31"}),
    Call("GET", "/api/v1/chains/{underlying}/expiries", 200, lambda w: {"underlying": "NIFTY"}),
    Call("GET", "/api/v1/chains/{underlying}/expiries", 404, lambda w: {"underlying": "NOPE"}),
    Call("GET", "/api/v1/chains/{underlying}/expiries", 400, lambda w: {"underlying": "N" * 65}),
    Call("GET", CHAIN, 200, _chain),
    Call("GET", CHAIN, 200, _chain, query=lambda w: {"at": f"{DAY}T10:01:00+05:30"}),
    Call("GET", CHAIN, 200, _chain, query=lambda w: {"at": ""}),  # an empty optional value: absent
    Call("GET", CHAIN, 400, lambda w: {"underlying": "NIFTY", "expiry": "2026-02-30"}),
    Call(
        "GET", f"{CHAIN}/history", 200, _chain, query=lambda w: {"strike": "24800", "date": DAY.isoformat()}
    ),
    Call("GET", f"{CHAIN}/history", 400, _chain, query=lambda w: {"strike": "-1"}),
    Call("GET", "/api/v1/bars", 200, query=lambda w: _day_range(w, interval="minute")),
    Call("GET", "/api/v1/bars", 200, query=lambda w: _day_range(w, interval="5minute", format="csv")),
    Call("GET", "/api/v1/bars", 404, query=lambda w: _day_range(w, interval="minute", instrument="NSE:NOPE")),
    Call("GET", "/api/v1/greeks/history", 200, query=_day_range),
    Call("GET", "/api/v1/greeks/history", 200, query=lambda w: _day_range(w, format="csv")),
    Call("GET", "/api/v1/greeks/history", 400, query=lambda w: _day_range(w, offset=-1)),
    Call("GET", "/api/v1/ticks/latest", 200, query=lambda w: {"tokens": [w.option.instrument_token, 256265]}),
    Call("GET", "/api/v1/ticks/latest", 400, query=lambda w: {"tokens": "1,,2"}),
    Call("GET", "/api/v1/feeds", 200),
    Call("GET", "/api/v1/feeds/capacity", 200),
    Call("GET", "/api/v1/feeds/plan", 200, query=lambda w: {"limit": 5}),
    Call("GET", "/api/v1/feeds/plan", 400, query=lambda w: {"account": "nobody"}),
    Call("GET", "/api/v1/dashboard/preferences", 200),
    Call(
        "PUT",
        "/api/v1/dashboard/preferences",
        200,
        body=lambda w: {"columns": ["oi", "iv"], "strike_range": 5},
    ),
    Call(
        "PUT",
        "/api/v1/dashboard/preferences",
        400,
        body=lambda w: {"columns": ["iv", "iv"], "strike_range": 5},
    ),
    Call("PUT", "/api/v1/dashboard/preferences", 415, body=lambda w: "columns=iv", media_type="text/plain"),
    Call("GET", ORDERS, 200, query=lambda w: {"status": ["PENDING", "OPEN"], "account": ACCOUNT}),
    Call("GET", ORDERS, 200, query=lambda w: {"account": "", "created_before": ""}),
    Call("GET", ORDERS, 400, query=lambda w: {"status": "OPEN,"}),
    Call("POST", ORDERS, 201, body=lambda w: limit_body(w.option), headers={"Idempotency-Key": "schema-1"}),
    Call(
        "POST",
        ORDERS,
        400,
        body=lambda w: limit_body(w.option, quantity=64),
        headers={"Idempotency-Key": "k2"},
    ),
    Call("POST", ORDERS, 400, body=lambda w: limit_body(w.option), headers={"Idempotency-Key": ""}),
    Call(
        "POST",
        ORDERS,
        403,
        body=lambda w: limit_body(w.option, account="x"),
        headers={"Idempotency-Key": "k3"},
    ),
    Call("POST", ORDERS, 413, body=lambda w: {"tag": "x" * 20_000}, headers={"Idempotency-Key": "k4"}),
    Call("GET", ORDER, 200, _order),
    Call("GET", ORDER, 404, lambda w: {"order_id": w.other_clients_order.pk}),
    Call("GET", ORDER, 404, lambda w: {"order_id": -1}),  # no route: Django's HTML page
    Call("PATCH", ORDER, 200, _order, body=lambda w: {"price": 102}),
    Call("PATCH", ORDER, 400, _order, body=lambda w: {}),
    Call("DELETE", ORDER, 200, _order),
    Call("GET", "/api/v1/positions", 200, query=lambda w: {"account": ACCOUNT}),
    Call("GET", "/api/v1/positions", 403, query=lambda w: {"account": "someone-elses"}),
]


@pytest.fixture
def world(db, redis_client: redis.Redis, settings) -> World:
    settings.MARKET_CLOCK = next_trading_day_at(10).isoformat()  # orders are taken at 10:00 IST
    return seed_world(redis_client)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return served_schema()


@pytest.fixture
def schema(document: dict[str, Any], world: World) -> Iterator[OpenApiSchema]:
    with in_process(document) as loaded:
        yield loaded


def _call_and_validate(schema: OpenApiSchema, world: World, call: Call) -> int:
    operation = schema[call.path][call.method]
    headers = {**(world.auth if call.keyed else {}), **call.headers}
    body = {} if call.body is None else {"body": call.body(world), "media_type": call.media_type}
    case = operation.Case(
        path_parameters=call.path_parameters(world), query=call.query(world), headers=headers, **body
    )
    response = case.call()
    case.validate_response(response, checks=CONFORMANCE)
    return response.status_code


def test_the_schema_validates_without_warnings() -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)


@pytest.mark.parametrize("call", CALLS, ids=lambda call: f"{call.method} {call.path} {call.status}")
def test_answers_conform_to_the_schema(schema: OpenApiSchema, world: World, call: Call) -> None:
    assert _call_and_validate(schema, world, call) == call.status


def test_a_replay_and_a_conflict_conform(schema: OpenApiSchema, world: World) -> None:
    first = Call("POST", ORDERS, 201, body=lambda w: limit_body(w.option), headers={"Idempotency-Key": "r"})
    replay = Call("POST", ORDERS, 200, body=lambda w: limit_body(w.option), headers={"Idempotency-Key": "r"})
    conflict = Call(
        "POST", ORDERS, 409, body=lambda w: limit_body(w.option, price=102), headers={"Idempotency-Key": "r"}
    )

    assert [_call_and_validate(schema, world, call) for call in (first, replay, conflict)] == [201, 200, 409]


def test_every_operation_answers_an_anonymous_request_as_documented(
    schema: OpenApiSchema, world: World, document: dict[str, Any]
) -> None:
    """Automatic over every operation, so a new endpoint is covered the day it is routed."""
    statuses = {}
    for path, methods in document["paths"].items():
        for method in methods:
            path_parameters = {name: _example(name, world) for name in re.findall(r"\{(\w+)\}", path)}
            call = Call(method.upper(), path, 401, lambda w, p=path_parameters: p, keyed=False)
            statuses[f"{method} {path}"] = _call_and_validate(schema, world, call)

    assert set(statuses.values()) == {401}, statuses


def _example(name: str, world: World) -> Any:
    return {"order_id": world.order.pk, **_chain(world)}[name]


def test_every_operation_documents_the_answers_of_keys_scopes_and_throttles(document: dict[str, Any]) -> None:
    for methods in document["paths"].values():
        for operation in methods.values():
            assert {"401", "403", "429"} <= set(operation["responses"]), operation["operationId"]
            assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_lists_are_described_as_the_pages_they_answer(document: dict[str, Any]) -> None:
    for path in ("/api/v1/instruments", ORDERS):
        operation = document["paths"][path]["get"]
        page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[
            1
        ]
        assert set(document["components"]["schemas"][page]["properties"]) == {
            "count",
            "next",
            "previous",
            "results",
        }
        limits = {p["name"]: p["schema"] for p in operation["parameters"] if p["name"] in ("limit", "offset")}
        assert limits == {
            "limit": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            "offset": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        }


def test_a_path_parameter_is_not_also_a_query_parameter(document: dict[str, Any]) -> None:
    for path, methods in document["paths"].items():
        for operation in methods.values():
            names = [(p["name"], p["in"]) for p in operation.get("parameters", [])]
            assert len({name for name, _ in names}) == len(names), (path, names)


def test_the_idempotency_key_is_described_as_it_is_checked(document: dict[str, Any]) -> None:
    (header,) = [p for p in document["paths"][ORDERS]["post"]["parameters"] if p["in"] == "header"]

    assert header["required"] and header["schema"]["minLength"] == 1 and header["schema"]["maxLength"] == 255


def test_the_years_pattern_is_the_bounds_years() -> None:
    years = [year for year in range(1, 10_000) if re.match(YEARS, f"{year:04d}-01-01")]

    assert years == list(DATETIME_YEARS)
