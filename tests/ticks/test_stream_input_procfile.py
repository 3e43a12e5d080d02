"""The Procfile's web line holds client frames to the consumer's limit (``--ws-max-size``): one at
STREAM_MAX_MESSAGE_BYTES is read and answered, one byte more is refused by uvicorn with 1009."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.asgi_server import free_port
from tests.ticks.factories import UserFactory
from tests.waiting import until
from ticks.models import ClientApiKey

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

ROOT = Path(__file__).parents[2]
PROCFILE_WEB = next(
    line.removeprefix("web:").strip()
    for line in (ROOT / "Procfile").read_text().splitlines()
    if line.startswith("web:")
)


def _database_url() -> str:
    database = connection.settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def web(redis_client, tmp_path: Path) -> Iterator[str]:
    """The Procfile's web line, one worker, on the test database, with this process's environment:
    without STREAM_MAX_MESSAGE_BYTES (as in CI) the line's default and the settings' meet."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "WEB_PORT": str(port),
        "WEB_WORKERS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    with (tmp_path / "web.log").open("w") as log:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {PROCFILE_WEB}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=60)
            yield f"ws://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(20)


def test_the_procfile_web_line_reads_frames_up_to_the_consumers_limit_and_no_larger(web: str) -> None:
    _, key = ClientApiKey.objects.create_key(name="script", user=UserFactory())
    limit = settings.STREAM_MAX_MESSAGE_BYTES
    at_limit = json.dumps({"action": "subscribe", "chain": "x"})
    at_limit += " " * (limit - len(at_limit))

    with connect(f"{web}/ws/stream/", additional_headers={"X-Api-Key": key}, max_size=None) as ws:
        ws.send(at_limit)
        error = json.loads(ws.recv(timeout=10))
        ws.send(at_limit + " ")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)

    assert (error["type"], error["field"]) == ("error", "chain")
    assert closed.value.rcvd.code == 1009
