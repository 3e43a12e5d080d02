"""A real Prometheus (Debian's) with deploy/prometheus's config and rules scrapes a running stack, and
sees every metric family the alert rules use.

The stack: kitesim as Kite, and deploy/Procfile's web, worker, feeds and flower lines (plus beat with a
schedule file of its own) sharing one PROMETHEUS_MULTIPROC_DIR, under the test settings on the market
clock of kitesim (so the market is open at any hour). Prometheus scrapes the web with the bearer token and
Flower with basic auth, every 2 s, while the test drives a stream client, an order and the feeds' frames.
"""

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from django.conf import settings
from websockets.asyncio.client import connect

from kitesim.testing import KitesimThread
from orders.models import TradingPermission
from orders.validation import market_open
from tests.database import database_url
from tests.deploy.conftest import api_key_issue
from tests.deploy.prometheus_rules import PROMETHEUS_BINARY, alert_rules, prometheus_config, rule_metric_names
from tests.deploy.stack import ROOT, ProcfileProcess, worker_wait_ready
from tests.orders.conftest import limit_body
from tests.orders.kitebook import atm_option
from tests.ticks.factories import UserFactory
from tests.waiting import until
from tests.workers.conftest import FAST_FEEDS
from ticks.clocks import market_now
from ticks.models import BrokerAccount, WatchSpec
from ticks.services import broker_account_set_token, instruments_refresh_from_kite

pytestmark = [pytest.mark.integration, pytest.mark.prometheus, pytest.mark.django_db(transaction=True)]

PORTS = range(18300, 18400)  # this test's servers (web, flower, prometheus)
START_TIMEOUT_S = 90.0
FAMILIES_TIMEOUT_S = 150.0
# beat as deploy/Procfile runs it, with a schedule file of its own (not the repository's var/).
BEAT = [sys.executable, "-m", "celery", "-A", "tickerproject", "beat", "--loglevel=INFO"]
SCRAPE = {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"}


def port_free() -> int:
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {PORTS}")


class Prometheus:
    """Debian's prometheus on its own port and storage, reading ``config``."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.port = port_free()
        self.url = f"http://127.0.0.1:{self.port}"
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = directory / "prometheus.log"
        self.process = subprocess.Popen(
            [
                PROMETHEUS_BINARY,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        until(self._ready, timeout=START_TIMEOUT_S)

    def _ready(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def api(self, path: str, **params: str) -> Any:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        answer.raise_for_status()
        return answer.json()["data"]

    def series_names(self, names: set[str]) -> set[str]:
        """Which of ``names`` have at least one series now."""
        pattern = "|".join(sorted(names))
        result = self.api("query", query=f'count by (__name__) ({{__name__=~"{pattern}"}})')["result"]
        return {sample["metric"]["__name__"] for sample in result}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class StreamClient:
    """One live-stream WebSocket subscribed to a chain, read in a thread until stopped."""

    def __init__(self, url: str, key: str, chain: str) -> None:
        self.messages = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._read(url, key, chain),), daemon=True)
        self._thread.start()

    async def _read(self, url: str, key: str, chain: str) -> None:
        async with connect(url, additional_headers={"X-Api-Key": key}, proxy=None) as ws:
            await ws.send(json.dumps({"action": "subscribe", "chain": chain}))
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                self.messages += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def kite(settings) -> Iterator[KitesimThread]:
    with KitesimThread(seed=5, speed=10, accounts=["demo:demosecret:demotoken"]) as sim:
        settings.KITE_ROOT, settings.KITE_WS_ROOT = sim.root, sim.ws_root
        settings.MARKET_CLOCK = "kitesim"  # kitesim's trading day, whatever the host's hour
        yield sim


@pytest.fixture
def trader_key(kite: KitesimThread, redis_client: object) -> str:
    """The demo account logged in, kitesim's instruments, NIFTY watched (±2 strikes, one expiry), and an
    API key of a user who may trade on the account."""
    account = BrokerAccount(name="demo", api_key="demo", api_secret="demosecret")
    account = broker_account_set_token(account=account, access_token="demotoken", issued_at=market_now())
    instruments_refresh_from_kite(account=account)
    WatchSpec.objects.create(underlying="NIFTY", expiry_count=1, strikes_around_atm=2, mode="full")
    trader = UserFactory()
    TradingPermission.objects.create(user=trader, account=account)
    return api_key_issue(trader)


@pytest.fixture
def stack_env(kite: KitesimThread, tmp_path: Path) -> dict[str, str]:
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    return {
        **os.environ,
        **FAST_FEEDS,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "DJANGO_SETTINGS_MODULE": "tickerproject.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DATABASE_URL": database_url(),
        "TEST_REDIS_URL": settings.REDIS_URL,
        "TEST_CHANNEL_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        "KITE_ROOT": kite.root,
        "KITE_WS_ROOT": kite.ws_root,
        "MARKET_CLOCK": "kitesim",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "FLOWER_BASIC_AUTH": f"ops:{secrets.token_urlsafe(16)}",
    }


class Stack:
    """web, worker, feeds and flower from deploy/Procfile, and beat, started together."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.web_port, self.flower_port = port_free(), port_free()
        self.web = ProcfileProcess("web", {**env, "PORT": str(self.web_port)}, directory / "web.log")
        self.workers = [ProcfileProcess(name, env, directory / f"{name}.log") for name in ("worker", "feeds")]
        self.flower = ProcfileProcess(
            "flower", {**env, "FLOWER_PORT": str(self.flower_port)}, directory / "flower.log"
        )
        beat_log = directory / "beat.log"
        self.beat = subprocess.Popen(
            [*BEAT, "--schedule", str(directory / "celerybeat-schedule")],
            cwd=ROOT,
            env=env,
            stdout=beat_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        for worker in self.workers:
            worker_wait_ready(worker)
        until(lambda: self._answers(self.web, f"http://127.0.0.1:{self.web_port}/healthz"), START_TIMEOUT_S)
        until(
            lambda: self._answers(self.flower, f"http://127.0.0.1:{self.flower_port}/metrics"),
            START_TIMEOUT_S,
        )

    @staticmethod
    def _answers(process: ProcfileProcess, url: str) -> bool:
        process.assert_running()
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        self.beat.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.beat.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.beat.pid, signal.SIGKILL)
        self.beat.wait(10)
        for process in (self.web, self.flower, *self.workers):
            process.stop()


@pytest.fixture
def stack(stack_env: dict[str, str], trader_key: str, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(stack_env, tmp_path)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture
def prometheus(stack: Stack, stack_env: dict[str, str], tmp_path: Path) -> Iterator[Prometheus]:
    """deploy/prometheus/prometheus.yml with this stack's targets and secrets, scraping every 2 s."""
    token, password = tmp_path / "metrics-token", tmp_path / "flower-password"
    token.write_text(stack_env["METRICS_TOKEN"] + "\n")
    password.write_text(stack_env["FLOWER_BASIC_AUTH"].partition(":")[2] + "\n")
    config = prometheus_config(
        web=f"127.0.0.1:{stack.web_port}",
        flower=f"127.0.0.1:{stack.flower_port}",
        token_file=token,
        password_file=password,
    )
    config["global"].update(SCRAPE)
    server = Prometheus(tmp_path, config)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _order_place(web: str, key: str) -> None:
    option = atm_option()
    variety = "regular" if market_open(market_now()) else "amo"  # kitesim's clock: either is sent to Kite
    body = limit_body(option, account="demo", variety=variety, price=float(option.tick_size * 2000))
    placed = requests.post(
        f"{web}/api/v1/orders",
        json=body,
        headers={"X-Api-Key": key, "Idempotency-Key": "scrape-1"},
        timeout=10,
    )
    assert placed.status_code == 201, placed.text


def test_prometheus_scrapes_every_family_the_rules_use(
    stack: Stack, prometheus: Prometheus, trader_key: str
) -> None:
    web = f"http://127.0.0.1:{stack.web_port}"
    chain = f"NIFTY:{atm_option().expiry:%Y-%m-%d}"
    client = StreamClient(f"ws://127.0.0.1:{stack.web_port}/ws/stream/", trader_key, chain)
    try:
        _order_place(web, trader_key)
        wanted, present = rule_metric_names(), set()
        deadline = time.monotonic() + FAMILIES_TIMEOUT_S
        while present != wanted and time.monotonic() < deadline:
            time.sleep(2)
            present = prometheus.series_names(wanted)
    finally:
        client.stop()
    missing = sorted(wanted - present)
    print(f"rule families without a series after the run: {missing or 'none'}")  # noqa: T201 (-s shows it)

    targets = prometheus.api("targets")["activeTargets"]
    assert {(target["labels"]["job"], target["health"]) for target in targets} == {
        ("ticker-web", "up"),
        ("ticker-flower", "up"),
    }, [target["lastError"] for target in targets]
    loaded = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert sorted(rule["name"] for rule in loaded) == sorted(rule["alert"] for rule in alert_rules())
    assert [rule["name"] for rule in loaded if rule["health"] != "ok"] == []
    assert client.messages > 0, "the stream client received nothing"
    assert missing == [], f"families the rules use that Prometheus never saw: {missing}"
