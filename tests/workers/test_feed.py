"""The whole feed path with real services: kitesim, Redis, Celery workers, the database."""

import json
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
import redis
import requests
from django.core.management import CommandError, call_command
from kiteconnect import KiteConnect
from rest_framework.test import APIClient

from kitesim.testing import KitesimThread
from tests.ticks.factories import UserFactory
from tests.waiting import until
from tests.workers.conftest import WorkerProcess
from ticks.clocks import market_now
from ticks.feeds.lease import lease_holder_sync
from ticks.models import BrokerAccount
from ticks.selectors import latest_ticks
from ticks.services import broker_account_set_token
from workers.control import feed_status_key
from workers.selectors import feed_plan_current
from workers.services import feed_plan_refresh, feed_supervise

pytestmark = pytest.mark.integration


def _planned_tokens() -> set[int]:
    return set(feed_plan_current().assignments.values_list("instrument_token", flat=True))


def _newest_exchange_time(tokens: set[int]) -> int:
    rows = latest_ticks(tokens=sorted(tokens))
    return int(rows["exchange_timestamp"].max()) if len(rows) else 0


def _ticking_after(tokens: set[int], mark: int) -> Callable[[], bool]:
    """True once some token ticked with an exchange time (kitesim's simulated clock) after ``mark``."""
    return lambda: _newest_exchange_time(tokens) > mark


def _holder_accounts(client: redis.Redis, accounts: dict[str, BrokerAccount]) -> dict[str, str | None]:
    return {name: lease_holder_sync(client, account.pk) for name, account in accounts.items()}


def test_the_planned_tokens_stream_into_the_latest_tick_cache(
    fleet: dict[str, BrokerAccount], start_worker: Callable[[], WorkerProcess], redis_client: redis.Redis
) -> None:
    plan = feed_plan_refresh(client=redis_client)
    tokens = _planned_tokens()
    assert plan.errors == [] and len(tokens) >= 10  # 5 strikes x CE/PE + index + futures

    start_worker()
    assert set(feed_supervise(client=redis_client)) == {fleet["demo"].pk, fleet["alt"].pk}

    until(lambda: latest_ticks(tokens=sorted(tokens)).size == len(tokens))
    client = APIClient()
    client.force_login(UserFactory())
    feeds = {feed["account"]: feed for feed in client.get("/api/v1/feeds").json()["feeds"]}
    planned = {name: feeds[name]["planned"] for name in ("demo", "alt")}
    assert sum(planned.values()) >= len(tokens)
    until(
        lambda: all(
            f["state"] == "streaming" for f in client.get("/api/v1/feeds").json()["feeds"] if f["planned"]
        )
    )
    latest = client.get("/api/v1/ticks/latest", {"tokens": ",".join(map(str, sorted(tokens)))}).json()[
        "ticks"
    ]
    assert {tick["instrument_token"] for tick in latest} == tokens


def test_a_feed_outlives_celery_s_global_task_time_limits(
    fleet: dict[str, BrokerAccount], start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    feed_plan_refresh(client=redis_client)
    tokens = _planned_tokens()
    worker = start_worker(CELERY_TASK_SOFT_TIME_LIMIT="2", CELERY_TASK_TIME_LIMIT="3")
    feed_supervise(client=redis_client)
    until(lambda: latest_ticks(tokens=sorted(tokens)).size == len(tokens))
    holders = _holder_accounts(redis_client, fleet)

    time.sleep(5)  # past both global limits
    mark = _newest_exchange_time(tokens)

    until(_ticking_after(tokens, mark))
    assert _holder_accounts(redis_client, fleet) == holders  # the same feeds, never restarted
    assert "TimeLimitExceeded" not in worker.log.read_text()


def test_a_killed_worker_hands_its_accounts_to_another(
    fleet: dict[str, BrokerAccount], start_worker: Callable[[], WorkerProcess], redis_client: redis.Redis
) -> None:
    feed_plan_refresh(client=redis_client)
    tokens = _planned_tokens()
    first = start_worker()
    feed_supervise(client=redis_client)
    until(lambda: all(_holder_accounts(redis_client, fleet).values()))
    second = start_worker()

    first.kill()
    killed_at = time.time()
    time.sleep(0.5)
    mark = _newest_exchange_time(tokens)
    until(
        lambda: all(_holder_accounts(redis_client, fleet).values()) and _ticking_after(tokens, mark)(),
        timeout=20,
        every=lambda: feed_supervise(client=redis_client),
    )
    holders = _holder_accounts(redis_client, fleet)
    assert all(holder.split(":")[1] in {str(pid) for pid in second.pids()} for holder in holders.values())
    assert time.time() - killed_at < 3 + 5 + 5  # lease TTL + supervisor period + start-up


def test_a_rejected_token_moves_the_tokens_and_a_new_token_resumes(
    fleet: dict[str, BrokerAccount],
    start_worker: Callable[[], WorkerProcess],
    redis_client: redis.Redis,
    kitesim: KitesimThread,
) -> None:
    feed_plan_refresh(client=redis_client)
    tokens = _planned_tokens()
    start_worker()
    feed_supervise(client=redis_client)
    until(lambda: latest_ticks(tokens=sorted(tokens)).size == len(tokens))

    requests.post(f"{kitesim.root}/_sim/expire_tokens", json={"api_key": "demo"}, timeout=5)
    until(lambda: BrokerAccount.objects.get(name="demo").health == "token_expired")
    feed_plan_refresh(client=redis_client)  # the rebalance backstop drains the failed account
    assert set(feed_plan_current().assignments.values_list("account_id", flat=True)) == {fleet["alt"].pk}
    mark = _newest_exchange_time(tokens)
    until(_ticking_after(tokens, mark), every=lambda: feed_supervise(client=redis_client))

    kite = KiteConnect("demo", root=kitesim.root)
    # kite.login_url() is always kite.zerodha.com; kitesim serves the same path at its root.
    login = f"{kitesim.root}/connect/login?api_key=demo&v=3"
    request_token = requests.get(login, allow_redirects=False, timeout=5).headers["Location"]
    request_token = request_token.split("request_token=")[1].split("&")[0]
    session = kite.generate_session(request_token, api_secret="demosecret")
    broker_account_set_token(
        account=fleet["demo"], access_token=session["access_token"], issued_at=market_now()
    )
    until(
        lambda: json.loads(redis_client.get(feed_status_key(fleet["demo"].pk)) or "{}").get("holder"),
        every=lambda: feed_supervise(client=redis_client),
    )
    assert BrokerAccount.objects.get(name="demo").health == "ok"


def test_a_recorded_feed_replays_through_the_same_sinks(
    fleet: dict[str, BrokerAccount],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    feed_plan_refresh(client=redis_client)
    tokens = _planned_tokens()
    worker = start_worker(FEED_RECORD_DIR=str(tmp_path / "frames"))
    feed_supervise(client=redis_client)
    until(lambda: latest_ticks(tokens=sorted(tokens)).size == len(tokens))
    worker.stop()
    recorded = latest_ticks(tokens=sorted(tokens))
    (recording,) = (tmp_path / "frames").glob("demo-*.frames")
    redis_client.delete("ticks:latest")

    out = StringIO()
    call_command("feed_replay", str(recording), stdout=out)

    assert out.getvalue().startswith("Replayed ")
    replayed = latest_ticks(tokens=sorted(tokens))
    assert replayed.tobytes() == recorded.tobytes()


def test_feed_replay_refuses_a_foreign_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.frames"
    junk.write_bytes(b"not a recording")

    with pytest.raises(CommandError, match="is not a frame recording"):
        call_command("feed_replay", str(junk))


def test_a_worker_shutdown_stops_its_feeds_and_releases_their_leases(
    fleet: dict[str, BrokerAccount], start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    feed_plan_refresh(client=redis_client)
    tokens = _planned_tokens()
    worker = start_worker(FEED_LEASE_TTL_MS="60000")  # only a release, not expiry, can free it in time
    feed_supervise(client=redis_client)
    until(lambda: latest_ticks(tokens=sorted(tokens)).size == len(tokens))
    assert all(_holder_accounts(redis_client, fleet).values())

    started = time.monotonic()
    worker.stop()  # SIGTERM: Celery's warm shutdown waits for its tasks

    assert time.monotonic() - started < 10
    assert worker.process.returncode == 0
    assert _holder_accounts(redis_client, fleet) == {"demo": None, "alt": None}
    assert "feed stopping (stop_requested)" in worker.log.read_text()
