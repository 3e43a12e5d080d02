"""Real Celery workers, kitesim and Redis for the feed tests."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from kitesim.testing import KitesimThread
from tests.database import database_url
from ticks.clocks import market_now
from ticks.models import BrokerAccount, WatchSpec
from ticks.services import broker_account_set_token, instruments_refresh_from_kite

ROOT = Path(__file__).parents[2]
FAST_FEEDS = {
    "FEED_LEASE_TTL_MS": "3000",
    "FEED_LEASE_RENEW_S": "0.5",
    "FEED_REPORT_S": "0.5",
    "FEED_WATCHDOG_S": "2",
}


class WorkerProcess:
    def __init__(
        self, env: dict[str, str], log: Path, *, beat: bool = False, queues: str = "feeds,default"
    ) -> None:
        self.name = f"{queues.split(',')[0]}-{uuid.uuid4().hex[:6]}@test"
        command = [sys.executable, "-m", "celery", "-A", "tickerproject", "worker", "-Q", queues]
        command += ["-c", "3", "-O", "fair", "--prefetch-multiplier=1", "-n", self.name, "--loglevel=INFO"]
        if beat:  # the supervisor and reconciler on their real schedule, inside this worker
            command += ["-B", "--schedule", str(log.with_suffix(".beat"))]
        self.log = log
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while "ready." not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"worker not ready:\n{self.log.read_text()}"
            time.sleep(0.2)

    def pids(self) -> set[int]:
        children = subprocess.run(
            ["pgrep", "-g", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        return {int(pid) for pid in children}

    def kill(self) -> None:
        self._kill_group()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(20)
        # Always, even when the main process exited: -B's beat is a child that outlives it, and an
        # orphaned beat keeps sending the whole schedule (supervisor, reconcilers, bar tasks) into the
        # next tests' Redis database.
        self.kill()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def kitesim() -> Iterator[KitesimThread]:
    with KitesimThread(
        seed=5, speed=10, accounts=["demo:demosecret:demotoken", "alt:altsecret:alttoken"]
    ) as sim:
        yield sim


@pytest.fixture
def fleet(transactional_db, redis_client, kitesim: KitesimThread, settings) -> dict[str, BrokerAccount]:
    """Two broker accounts known to kitesim, its instruments loaded, NIFTY watched (±2 strikes, 1 expiry)."""
    settings.KITE_ROOT = kitesim.root
    settings.KITE_WS_ROOT = kitesim.ws_root
    settings.FEED_LEASE_TTL_MS = int(FAST_FEEDS["FEED_LEASE_TTL_MS"])
    settings.MARKET_CLOCK = "kitesim"  # the plan follows kitesim's trading day, whatever the host's
    accounts = {}
    for name, secret, token in (("demo", "demosecret", "demotoken"), ("alt", "altsecret", "alttoken")):
        account = BrokerAccount(name=name, api_key=name, api_secret=secret)
        accounts[name] = broker_account_set_token(account=account, access_token=token, issued_at=market_now())
    instruments_refresh_from_kite(account=accounts["demo"])
    WatchSpec.objects.create(underlying="NIFTY", expiry_count=1, strikes_around_atm=2, mode="full")
    return accounts


@pytest.fixture
def stack_env(kitesim: KitesimThread) -> dict[str, str]:
    """The environment of a process (worker, web) that joins this test's stack."""
    return {
        **os.environ,
        **FAST_FEEDS,
        "DJANGO_SETTINGS_MODULE": "tickerproject.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DATABASE_URL": database_url(),
        "TEST_REDIS_URL": settings.REDIS_URL,
        "TEST_CHANNEL_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        "KITE_ROOT": kitesim.root,
        "KITE_WS_ROOT": kitesim.ws_root,
        "MARKET_CLOCK": "kitesim",
    }


@pytest.fixture
def start_worker(fleet, stack_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    base_env = stack_env
    workers: list[WorkerProcess] = []

    def start(*, beat: bool = False, queues: str = "feeds,default", **env: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(workers)}.log"
        workers.append(WorkerProcess({**base_env, **env}, log, beat=beat, queues=queues))
        return workers[-1]

    yield start
    for worker in workers:
        worker.stop()
