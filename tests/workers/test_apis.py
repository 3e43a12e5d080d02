import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_redis(redis_client) -> None:
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": True, "redis": True}


def test_healthz_is_503_when_redis_is_unreachable(settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = Client().get("/healthz")

    assert response.status_code == 503
    assert response.json()["redis"] is False


def test_metrics_are_exposed_for_prometheus() -> None:
    response = Client().get("/metrics")

    assert response.status_code == 200
    assert "feed_frames_total" in response.content.decode()


GAUGE_IN_A_PROCESS = """
import sys
from prometheus_client import Gauge
Gauge("probe_connected", "connections", multiprocess_mode="livesum").set(float(sys.argv[1]))
print("set", flush=True)
sys.stdin.read()  # keep running until told
"""


def test_live_gauges_count_only_running_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    alive, dead = (_process_setting_a_gauge(value, tmp_path) for value in (2, 3))
    dead.kill()  # as a killed or recycled Celery child: it never says so
    dead.wait()

    exposed = Client().get("/metrics").content.decode()
    alive.communicate("")

    assert "probe_connected 2.0" in exposed
    assert not (tmp_path / f"gauge_livesum_{dead.pid}.db").exists()


def _process_setting_a_gauge(value: int, directory: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", GAUGE_IN_A_PROCESS, str(value)],
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "set\n"
    return process
