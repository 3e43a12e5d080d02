"""Child processes for the benchmarks: each in its own process group (SIGKILL takes its children too),
logging to a file, started only once ``ready()`` says so."""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60


class Process:
    def __init__(
        self, name: str, command: list[str], ready: Callable[[], bool], env: dict[str, str], workdir: Path
    ) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.kill()  # a process that started too slowly must not outlive the bench
                raise SystemExit(f"{name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def kill_children(self) -> int:
        pids = pgrep("-P", self.popen.pid)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def pgrep(flag: str, pid: int) -> list[int]:
    """Children (-P) or process-group members (-g) of ``pid``."""
    found = subprocess.run(["pgrep", flag, str(pid)], capture_output=True, text=True, check=False)  # noqa: S603, S607
    return [int(line) for line in found.stdout.split()]


def answers(url: str) -> bool:
    """Whether ``url`` answers with anything but a server error."""
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False
