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

    def converged() -> dict | None:
        """The report once every feed is on the plan in force (the feeds' own tick-driven re-plans may
        have moved it past the first version meanwhile)."""
        body = client.get("/api/v1/feeds/plan", {"limit": 1}).json()
        done = all(
            row["reported_plan_version"] == body["plan"]["version"]
            and row["tokens"]["missing_count"] == row["tokens"]["unplanned_count"] == 0
            for row in body["connections"]
        )
        return body if done else None

    until(converged)
    body = converged()
    assert body is not None
    assert sum(row["tokens"]["planned"] for row in body["connections"]) == body["tokens"]["count"] > 0
