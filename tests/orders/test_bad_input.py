"""Garbage, wrong types, huge numbers, unknown fields: always 400/413/415, never a row or a message."""

import json

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders.apis import OrderListApi
from orders.models import Order, OrderEvent
from tests.orders.conftest import Trader, limit_body, queued_submissions
from ticks.models import Instrument

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def nothing_is_created(redis_client: redis.Redis, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        yield
    assert not Order.objects.exists()
    assert not OrderEvent.objects.exists()
    assert queued_submissions(redis_client) == []


@pytest.mark.parametrize(
    "raw",
    [
        "garbage",
        "{",
        '{"quantity": 65,}',
        "",
        "null",
        "[]",
        '"a string"',
        "65",
        '{"quantity": NaN}',
        '{"price": Infinity}',
        '{"quantity": 65, "quantity": 130}',
        "[" * 100_000 + "]" * 100_000,
        b"\xff\xfe\x00garbage".decode("latin-1"),
    ],
)
def test_garbage_json_is_a_400(trader: Trader, raw: str) -> None:
    response = trader.place(raw)

    assert response.status_code in (400, 413), response.content


def test_a_body_over_the_limit_is_a_413(trader: Trader, option: Instrument) -> None:
    response = trader.place(json.dumps(limit_body(option, tag="x" * 20_000)))

    assert response.status_code == 413


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quantity": "65"}, "quantity"),
        ({"quantity": 65.0}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"quantity": [65]}, "quantity"),
        ({"quantity": 10**30}, "quantity"),
        ({"quantity": -65}, "quantity"),
        ({"price": "101.5"}, "price"),
        ({"price": True}, "price"),
        ({"price": 1e308}, "price"),
        ({"price": 10**400}, "price"),
        ({"price": -1}, "price"),
        ({"price": 0.00001}, "price"),
        ({"trigger_price": {"a": 1}}, "trigger_price"),
        ({"exchange": 1}, "exchange"),
        ({"exchange": "NYSE"}, "exchange"),
        ({"transaction_type": "buy"}, "transaction_type"),
        ({"variety": ["regular"]}, "variety"),
        ({"account": 7}, "account"),
        ({"tradingsymbol": {"$ne": ""}}, "tradingsymbol"),
        ({"tag": "no/slashes"}, "tag"),
        ({"tag": "x" * 21}, "tag"),
        ({"autoslice": "true"}, "autoslice"),
        ({"validity_ttl": 1.5, "validity": "TTL"}, "validity_ttl"),
        ({"disclosed_quantity": 10}, "disclosed_quantity"),
        ({"__proto__": {}}, "__proto__"),
        ({"account": None}, "account"),
    ],
)
def test_wrong_types_huge_numbers_and_unknown_fields_name_the_field(
    trader: Trader, option: Instrument, changes: dict, field: str
) -> None:
    body = {**limit_body(option), **changes}
    response = trader.place(json.dumps(body))

    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_1e309_is_infinity_and_refused(trader: Trader, option: Instrument) -> None:
    raw = json.dumps(limit_body(option)).replace('"price": 101.5', '"price": 1e309')
    response = trader.place(raw)

    assert response.status_code == 400
    assert "price" in response.json()


@pytest.mark.parametrize(
    "missing", ["account", "exchange", "tradingsymbol", "variety", "quantity", "product"]
)
def test_a_missing_field_is_named(trader: Trader, option: Instrument, missing: str) -> None:
    body = limit_body(option)
    del body[missing]

    response = trader.place(body)

    assert response.status_code == 400
    assert missing in response.json()


@pytest.mark.parametrize(
    ("content_type", "data"),
    [("text/plain", "quantity=65"), ("application/x-www-form-urlencoded", "quantity=65&account=demo")],
)
def test_other_media_types_are_a_415(trader: Trader, content_type: str, data: str) -> None:
    response = trader.api.post("/api/v1/orders", data, content_type=content_type, HTTP_IDEMPOTENCY_KEY="k")

    assert response.status_code == 415


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


FIELDS = [
    "account", "exchange", "tradingsymbol", "variety", "transaction_type", "order_type", "product",
    "quantity", "price", "trigger_price", "validity", "tag", "bogus",
]  # fmt: skip


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), _json, max_size=12))
def test_arbitrary_json_objects_never_cause_a_500(trader: Trader, body: dict) -> None:
    response = trader.place(json.dumps(body), key="fuzz")

    assert response.status_code in (400, 403), (body, response.content)


def test_each_request_validates_with_its_own_field_copies() -> None:
    body = {"account": "demo", "exchange": "NFO", "tradingsymbol": "X", "variety": "regular"}
    body |= {"transaction_type": "BUY", "order_type": "MARKET", "product": "NRML"}
    good = OrderListApi.InputSerializer(data={**body, "quantity": 65})
    bad = OrderListApi.InputSerializer(data={**body, "quantity": "65"})

    assert good.is_valid() and not bad.is_valid()
    assert (good.fields["quantity"].parent, bad.fields["quantity"].parent) == (good, bad)
    declared = OrderListApi.InputSerializer._declared_fields["quantity"]
    assert (declared.parent, declared.field_name) == (None, None)
    assert list(bad.errors) == ["quantity"]
