"""/readyz against real processes: beat, the default/orders worker and the feeds worker each SIGKILLed in
turn, and each named by a 503 within its stale period (issue 15, "Done when")."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.test import Client

from tests.waiting import until
from tests.workers.conftest import FAST_FEEDS, ROOT, WorkerProcess
from ticks.models import BrokerAccount
from workers.services import feed_plan_refresh

pytestmark = pytest.mark.integration

# Short heartbeats, so that a death shows within seconds; the processes read them from the environment.
READYZ = {"READYZ_HEARTBEAT_S": "0.5", "READYZ_HEARTBEAT_STALE_S": "2", "READYZ_FEED_SILENT_S": "3"}
HEARTBEAT_BOUND_S = float(READYZ["READYZ_HEARTBEAT_STALE_S"]) + float(READYZ["READYZ_HEARTBEAT_S"]) + 1.0
LEASE_BOUND_S = int(FAST_FEEDS["FEED_LEASE_TTL_MS"]) / 1000 + float(FAST_FEEDS["FEED_LEASE_RENEW_S"]) + 1.0


def _not_ready() -> list[str]:
    return Client().get("/readyz").json()["not_ready"]


def _kill(pid: int) -> None:
    """SIGKILL the process group: a dead process writes no farewell to Redis."""
    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def start_beat(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = tmp_path / "beat.log"
        command = [sys.executable, "-m", "celery", "-A", "tickerproject", "beat", "--loglevel=INFO"]
        command += ["--schedule", str(tmp_path / "beat-schedule")]
        started.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env={**stack_env, **READYZ},
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            _kill(process.pid)
        process.wait(10)


def test_readyz_names_each_killed_process_within_its_stale_period(
    fleet: dict[str, BrokerAccount],
    start_worker: Callable[..., WorkerProcess],
    start_beat: Callable[[], subprocess.Popen[bytes]],
    redis_client: redis.Redis,
    settings,
) -> None:
    settings.READYZ_HEARTBEAT_STALE_S = float(READYZ["READYZ_HEARTBEAT_STALE_S"])
    settings.READYZ_FEED_SILENT_S = float(READYZ["READYZ_FEED_SILENT_S"])
    feed_plan_refresh(client=redis_client)
    worker = start_worker(queues="default,orders", **READYZ)
    feeds = start_worker(queues="feeds", **READYZ)
    beat = start_beat()  # its supervisor starts a feed per account on the feeds worker
    until(lambda: _not_ready() == [], timeout=60)

    _kill(beat.pid)
    until(lambda: "beat" in _not_ready(), timeout=HEARTBEAT_BOUND_S)
    assert _not_ready() == ["beat"]

    _kill(worker.process.pid)
    until(lambda: {"worker:default", "worker:orders"} <= set(_not_ready()), timeout=HEARTBEAT_BOUND_S)
    assert _not_ready() == ["beat", "worker:default", "worker:orders"]

    _kill(feeds.process.pid)
    until(lambda: {"feed:alt", "feed:demo"} <= set(_not_ready()), timeout=LEASE_BOUND_S)
    body = Client().get("/readyz")
    assert body.status_code == 503
    assert body.json()["not_ready"] == ["beat", "worker:default", "worker:orders", "feed:alt", "feed:demo"]
    assert body.json()["components"]["feed:demo"]["detail"] == "no feed holds the lease"
