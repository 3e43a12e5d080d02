"""Faults injected into kitesim and Redis while a real Celery worker streams."""

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import requests

from kitesim.testing import KitesimThread
from tests.waiting import until
from tests.workers.conftest import WorkerProcess
from tests.workers.private_redis import PrivateRedis
from ticks.feeds.latest import latest_ticks_read
from ticks.feeds.lease import lease_holder_sync
from ticks.models import BrokerAccount
from workers.selectors import feed_plan_current
from workers.services import feed_plan_refresh, feed_supervise

pytestmark = pytest.mark.integration


def _newest(client: redis.Redis, tokens: list[int]) -> int:
    rows = latest_ticks_read(client, tokens)
    return int(rows["exchange_timestamp"].max()) if len(rows) else 0


def _streaming(
    client: redis.Redis, tokens: list[int], timeout: float = 30.0, every: Callable[[], object] | None = None
) -> None:
    """Wait for every token to have ticked, then for fresh ticks (a newer exchange time) after that."""
    until(lambda: len(latest_ticks_read(client, tokens)) == len(tokens), timeout, every)
    mark = _newest(client, tokens)
    until(lambda: _newest(client, tokens) > mark, timeout, every)


@pytest.fixture
def streaming(
    fleet: dict[str, BrokerAccount], start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> tuple[WorkerProcess, list[int]]:
    feed_plan_refresh(client=redis_client)
    tokens = sorted(feed_plan_current().assignments.values_list("instrument_token", flat=True))
    worker = start_worker()
    feed_supervise(client=redis_client)
    _streaming(redis_client, tokens)
    return worker, tokens


def test_an_injected_drop_reconnects_and_ticks_resume(
    streaming, redis_client: redis.Redis, kitesim: KitesimThread
) -> None:
    worker, tokens = streaming

    assert requests.post(f"{kitesim.root}/_sim/drop", timeout=5).json()["dropped"] >= 1

    _streaming(redis_client, tokens)
    assert "closed (no close frame received or sent)" in worker.log.read_text()


def test_a_stalled_connection_is_reconnected_by_the_watchdog(
    streaming, redis_client: redis.Redis, kitesim: KitesimThread
) -> None:
    worker, tokens = streaming

    requests.post(f"{kitesim.root}/_sim/faults", json={"stall_seconds": 4.0}, timeout=5)

    until(lambda: "reconnecting" in worker.log.read_text(), timeout=10)
    _streaming(redis_client, tokens)


def test_malformed_frames_are_counted_and_the_stream_continues(
    streaming, redis_client: redis.Redis, kitesim: KitesimThread
) -> None:
    worker, tokens = streaming

    requests.post(f"{kitesim.root}/_sim/faults", json={"malformed_frames_next": 3}, timeout=5)

    until(lambda: "dropped a malformed frame" in worker.log.read_text(), timeout=10)
    _streaming(redis_client, tokens)


def test_two_workers_never_stream_the_same_account(
    fleet: dict[str, BrokerAccount],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    kitesim: KitesimThread,
) -> None:
    feed_plan_refresh(client=redis_client)
    start_worker()
    start_worker()
    for _ in range(20):  # an over-eager supervisor: every call may enqueue a duplicate
        redis_client.delete(*[f"feeds:starting:{a.pk}" for a in fleet.values()])
        feed_supervise(client=redis_client)
        time.sleep(0.1)
    until(lambda: all(lease_holder_sync(redis_client, a.pk) for a in fleet.values()))
    time.sleep(2)

    live = requests.get(f"{kitesim.root}/_sim/state", timeout=5).json()["connections"].values()
    per_key = Counter(connection["api_key"] for connection in live)
    plan = feed_plan_current()
    planned = {
        a.name: plan.assignments.filter(account=a).values("connection").distinct().count()
        for a in fleet.values()
    }
    assert per_key == Counter({name: count for name, count in planned.items() if count})


def test_feeds_recover_from_a_redis_restart_without_a_process_restart(
    fleet: dict[str, BrokerAccount], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    private = PrivateRedis(tmp_path)
    private.start()
    client = redis.Redis.from_url(private.url)
    try:
        feed_plan_refresh(client=client)
        tokens = sorted(feed_plan_current().assignments.values_list("instrument_token", flat=True))
        worker = start_worker(beat=True, TEST_REDIS_URL=private.url)
        _streaming(client, tokens, timeout=40)
        pid = worker.process.pid

        private.kill()
        time.sleep(2)
        private.start()  # empty: no queue, no leases, no ticks

        _streaming(client, tokens, timeout=60)
        assert worker.process.poll() is None and worker.process.pid == pid
        worker.stop()  # while its Redis runs: without it the warm shutdown waits out stop()'s 20 s
    finally:
        client.close()
        private.kill()
