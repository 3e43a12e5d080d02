"""The reconciler: feeds on an older plan version are told again, and the drift it found is kept."""

import json

import pytest
import redis
from prometheus_client import REGISTRY

from tests.ticks.factories import BrokerAccountFactory
from tests.workers.plan_factories import FeedAssignmentFactory, FeedPlanFactory
from ticks.models import BrokerAccount
from workers.control import CONTROL_CHANNEL, DRIFT_LAST_KEY, feed_status_key
from workers.services import feed_reconcile

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def _report(client: redis.Redis, account_id: int, version: int, tokens: list[int]) -> None:
    status = {"holder": "h", "plan_version": version, "connections": {"0": tokens}, "last_frame_at": 0}
    client.set(feed_status_key(account_id), json.dumps(status))


def test_a_feed_behind_the_plan_is_told_again_and_the_drift_is_recorded(redis_client: redis.Redis) -> None:
    behind, current = BrokerAccountFactory(), BrokerAccountFactory()
    FeedPlanFactory(version=1)
    plan = FeedPlanFactory(version=2)
    for token in (1, 2, 3):
        FeedAssignmentFactory(plan=plan, account=behind, instrument_token=token)
    FeedAssignmentFactory(plan=plan, account=current, instrument_token=4)
    _report(redis_client, behind.pk, 1, [1, 2])
    _report(redis_client, current.pk, 2, [4])
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(CONTROL_CHANNEL)
    listener.get_message(timeout=1)

    drifts = feed_reconcile(client=redis_client, now=1_000.0)

    assert [(d.account_id, d.planned, d.reported, d.stale_version) for d in drifts] == [
        (behind.pk, 3, 2, True),
        (current.pk, 1, 1, False),
    ]
    assert json.loads(listener.get_message(timeout=2)["data"]) == {"action": "plan", "version": 2}
    assert listener.get_message(timeout=0.2) is None
    assert json.loads(redis_client.get(DRIFT_LAST_KEY)) == {
        "at": 1_000.0,
        "plan_version": 2,
        "drifts": [{"account_id": behind.pk, "planned": 3, "reported": 2, "stale_version": True}],
    }


def test_a_fleet_on_its_plan_records_no_drift(redis_client: redis.Redis) -> None:
    account = BrokerAccountFactory()
    plan = FeedPlanFactory(version=1)
    FeedAssignmentFactory(plan=plan, account=account, instrument_token=7)
    _report(redis_client, account.pk, 1, [7])

    feed_reconcile(client=redis_client, now=1_000.0)

    assert redis_client.get(DRIFT_LAST_KEY) is None


def test_an_account_that_left_the_healthy_fleet_reads_no_drift(redis_client: redis.Redis) -> None:
    account = BrokerAccountFactory()
    plan = FeedPlanFactory(version=1)
    FeedAssignmentFactory(plan=plan, account=account, instrument_token=7)
    feed_reconcile(client=redis_client, now=1_000.0)  # planned 1, reported nothing
    assert _drift_gauge(account.pk) == 1

    account.health = BrokerAccount.Health.TOKEN_EXPIRED
    account.save(update_fields=["health"])
    feed_reconcile(client=redis_client, now=1_060.0)

    assert _drift_gauge(account.pk) == 0


def _drift_gauge(account_id: int) -> float:
    return REGISTRY.get_sample_value("feed_drift_tokens", {"account_id": str(account_id)})
