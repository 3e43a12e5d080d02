"""ticker_process_rss_bytes (workers/process_memory.py): set in each process type, one series per live pid."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from workers.process_memory import rss_bytes, rss_refresh, worker_process_type

ROOT = Path(__file__).parents[2]

# Each starts the gauge the way its process does, then waits until told to exit.
STARTS = {
    "web": "import tickerproject.asgi",
    "worker": (
        "import django; django.setup()\n"
        "from tickerproject.celery import app; app.loader.import_default_modules()\n"
        "from celery.signals import worker_process_init; worker_process_init.send(sender='worker@host')"
    ),
    "feeds": (
        "import django; django.setup()\n"
        "from tickerproject.celery import app; app.loader.import_default_modules()\n"
        "from celery.signals import worker_process_init; worker_process_init.send(sender='feeds@host')"
    ),
    "beat": (
        "import django; django.setup()\n"
        "from tickerproject.celery import app; app.loader.import_default_modules()\n"
        "from celery.signals import beat_init; beat_init.send(sender=None)"
    ),
}


def test_rss_is_the_resident_set_the_kernel_reports() -> None:
    measured = rss_bytes()
    status = Path("/proc/self/status").read_text()
    [reported_kb] = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]

    assert measured == pytest.approx(int(reported_kb) * 1024, rel=0.05)  # read a moment apart


def test_refresh_sets_the_gauge_of_the_process_type() -> None:
    rss_refresh("worker")

    assert REGISTRY.get_sample_value("ticker_process_rss_bytes", {"process_type": "worker"}) > 0


@pytest.mark.parametrize(
    ("hostname", "kind"), [("feeds@host", "feeds"), ("feeds-1a2b3c@test", "feeds"), ("worker@host", "worker")]
)
def test_a_worker_is_typed_by_its_procfile_node_name(hostname: str, kind: str) -> None:
    assert worker_process_type(hostname) == kind


@pytest.mark.integration
@pytest.mark.django_db
def test_every_process_type_reports_one_series_per_live_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    processes = {kind: _started(code, tmp_path) for kind, code in STARTS.items()}
    dead = processes["beat"]
    dead.kill()  # never says so, as a killed process does
    dead.wait()

    exposed = Client().get("/metrics").content.decode()
    for process in processes.values():
        process.communicate("")

    for kind in ("web", "worker", "feeds"):
        assert f'ticker_process_rss_bytes{{pid="{processes[kind].pid}",process_type="{kind}"}}' in exposed
    assert f'pid="{dead.pid}"' not in exposed


def _started(code: str, directory: Path) -> subprocess.Popen[str]:
    script = f"{code}\nprint('started', flush=True)\nimport sys; sys.stdin.read()"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "tickerproject.settings.test")
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "started\n"
    return process
