"""Flower as the Procfile starts it (tickerproject/flowerconfig.py): basic auth, loopback only.

Its pages and API show task arguments and results, so it refuses to start without FLOWER_BASIC_AUTH
and answers 401 to anyone without the password.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.asgi_server import free_port
from tests.waiting import until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[1]
USER, PASSWORD = "ops", "fl0wer-Pa55word-xyz"


def _flower(port: int, redis_url: str, basic_auth: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "FLOWER_BASIC_AUTH": basic_auth,
    }
    # The Procfile's line, less --address: the configuration file alone must keep it on loopback.
    command = [sys.executable, "-m", "celery", "-A", "tickerproject", "flower"]
    command += ["--conf=tickerproject/flowerconfig.py", f"--port={port}"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return False
    return True


@pytest.fixture(scope="module")
def flower() -> Iterator[str]:
    """One Flower for the module's requests: each start costs seconds."""
    port = free_port()
    process = _flower(port, settings.REDIS_URL, f"{USER}:{PASSWORD}")
    try:
        until(lambda: _answers(f"http://127.0.0.1:{port}/") or process.poll() is not None, timeout=60)
        assert process.poll() is None, process.communicate()[0]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.parametrize("path", ["/", "/tasks", "/api/tasks", "/api/workers", "/api/task/info/any-id"])
def test_every_page_needs_the_password(flower: str, path: str) -> None:
    assert requests.get(f"{flower}{path}", timeout=10).status_code == 401
    assert requests.get(f"{flower}{path}", auth=(USER, "wrong-password"), timeout=10).status_code == 401


def test_the_password_opens_it(flower: str) -> None:
    assert requests.get(f"{flower}/", auth=(USER, PASSWORD), timeout=10).status_code == 200


def test_its_prometheus_endpoint_is_open_by_flowers_design(flower: str) -> None:
    """Flower 2.2 serves /metrics and /healthcheck without its auth: task names, worker hostnames and
    counts, never arguments or results; loopback only, like the rest (README "Production deployment")."""
    assert requests.get(f"{flower}/metrics", timeout=10).status_code == 200


def test_it_listens_on_loopback_only(flower: str) -> None:
    port = int(flower.rsplit(":", 1)[1])

    assert _listening_addresses(port) == {"127.0.0.1"}


@pytest.mark.parametrize("basic_auth", ["", "ops", "ops:sh0rt"])
def test_it_refuses_to_start_without_a_proper_password(redis_url: str, basic_auth: str) -> None:
    process = _flower(free_port(), redis_url, basic_auth)
    output, _ = process.communicate(timeout=60)

    assert process.returncode != 0
    assert "ImproperlyConfigured: FLOWER_BASIC_AUTH" in output


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port``, from the kernel's socket tables (IPv4 and IPv6)."""
    addresses = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state == "0A" and int(local_port, 16) == port:  # 0A: LISTEN
                addresses.add(_address(address, width))
    return addresses


def _address(hex_address: str, width: int) -> str:
    if width == 8:  # one little-endian 32-bit word
        return ".".join(str(int(hex_address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return hex_address  # any IPv6 listener is already a failure; its raw form says which
