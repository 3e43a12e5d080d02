"""The web process (uvicorn serving the project's ASGI app) as its own OS process, killable."""

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).parents[2]


class WebProcess:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "uvicorn", "tickerproject.asgi:application", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--log-level", "warning"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT
        )
        self._wait_ready(log)

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):  # noqa: S310 - loopback
                    return
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, f"web did not start:\n{log.read_text()}"
                time.sleep(0.2)

    def kill(self) -> None:
        """Like a crashed or redeployed web process: every socket it held closes at once."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
