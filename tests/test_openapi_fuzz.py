"""Fuzzing from the published schema (schemathesis): every operation, with the seeded trader's key and
without one, valid and invalid input. No answer is a 5xx, every answer conforms to the schema, and a
refused request changes no row.

No order reaches Kite by construction: an accepted POST stores the order and queues its submission
with transaction.on_commit, which never fires inside the test's transaction; PATCH and DELETE find
the seeded order PENDING (changed locally) or answer 404; positions are served from the seeded cache.
Derandomized (hypothesis' seed from the test), so CI sees the same requests each run.
"""

from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.openapi_seed import World, in_process, row_counts, seed_world, served_schema
from tests.orders.conftest import next_trading_day_at

EXAMPLES_PER_OPERATION = 30
# Input rules a JSON schema cannot state, so a request valid by the schema may rightly get a 400:
# an order's instrument, lot size, tick size and combinations; a range's order and longest span;
# strike_min <= strike_max; a token-like instrument key inside uint32.
SEMANTIC = {
    ("POST", "/api/v1/orders"),
    ("PATCH", "/api/v1/orders/{order_id}"),
    ("GET", "/api/v1/bars"),
    ("GET", "/api/v1/greeks/history"),
    ("GET", "/api/v1/instruments"),
    ("GET", "/api/v1/feeds/plan"),  # `account` must name an existing broker account
}


def _fuzzed_operations() -> list[tuple[str, str, GenerationMode]]:
    """Every operation with valid input; those that take input with invalid input too."""
    cases = []
    for path, methods in served_schema()["paths"].items():
        for method, operation in methods.items():
            modes = [GenerationMode.POSITIVE]
            if operation.get("parameters") or operation.get("requestBody"):
                modes.append(GenerationMode.NEGATIVE)
            cases += [(method.upper(), path, mode) for mode in modes]
    return cases


@pytest.fixture
def fuzzed(db, redis_client: redis.Redis, settings) -> Iterator[tuple[OpenApiSchema, World]]:
    settings.MARKET_CLOCK = next_trading_day_at(10).isoformat()
    world = seed_world(redis_client)
    with in_process(served_schema()) as loaded:
        yield loaded, world


@pytest.mark.integration
@pytest.mark.parametrize(("method", "path", "mode"), _fuzzed_operations())
def test_no_5xx_every_answer_as_documented_and_nothing_stored_by_a_refusal(
    fuzzed: tuple[OpenApiSchema, World], method: str, path: str, mode: GenerationMode
) -> None:
    loaded, world = fuzzed
    # The key is ours, not generated: the anonymous call below checks the key is needed (401).
    excluded = [ignored_auth, *([positive_data_acceptance] if (method, path) in SEMANTIC else [])]

    @given(case=loaded[path][method].as_strategy(mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def keyed_and_anonymous(case: Case) -> None:
        statuses = []
        for headers in (world.auth, {}):
            before = row_counts()
            response = case.call(headers=headers)
            case.validate_response(response, excluded_checks=excluded)
            statuses.append(response.status_code)
            if response.status_code >= 300:
                assert row_counts() == before, (method, path, response.status_code)
        # Without a key: 401, unless nothing was found before authentication (a path that matches no
        # route, or DRF's `?format=` naming no renderer), which the keyed call got too.
        assert statuses[1] == 401 or statuses == [404, 404], (method, path, statuses)

    keyed_and_anonymous()
