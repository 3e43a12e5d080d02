"""The plan report against real feeds: kitesim, a Celery worker, Redis and the database."""

from collections.abc import Callable

import pytest
import redis
from rest_framework.test import APIClient

from tests.ticks.factories import UserFactory
from tests.waiting import until
from tests.workers.conftest import WorkerProcess
from ticks.models import BrokerAccount
from workers.services import feed_plan_refresh, feed_supervise

pytestmark = pytest.mark.integration


def test_live_feeds_converge_on_the_plan_and_the_report_says_so(
    fleet: dict[str, BrokerAccount], start_worker: Callable[[], WorkerProcess], redis_client: redis.Redis
) -> None:
    plan = feed_plan_refresh(client=redis_client)
    client = APIClient()
    client.force_login(UserFactory())

    before = client.get("/api/v1/feeds/plan").json()
    assert before["plan"]["version"] == plan.version
    assert {row["tokens"]["subscribed"] for row in before["connections"]} == {0}
    assert {row["reported_plan_version"] for row in before["connections"]} == {None}

    start_worker()
    feed_supervise(client=redis_client)

    def converged() -> list[dict] | None:
        rows = client.get("/api/v1/feeds/plan").json()["connections"]
        done = all(
            row["reported_plan_version"] == plan.version
            and row["tokens"]["missing_count"] == row["tokens"]["unplanned_count"] == 0
            for row in rows
        )
        return rows if done else None

    until(converged)
    rows = converged()
    assert rows is not None
    body = client.get("/api/v1/feeds/plan", {"limit": 1}).json()
    assert (
        sum(row["tokens"]["planned"] for row in rows) == body["tokens"]["count"] == plan.assignments.count()
    )
