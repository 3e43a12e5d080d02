"""`make chaos` cannot rot: its cheapest scenario, the web SIGKILLed and restarted under an order burst, run
through the same runner (its own Redis, kitesim, web, worker and beat; a database of its own), must come
back with every order at Kite exactly once."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.chaos.outcome import Outcome

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_web_restart_loses_and_duplicates_no_order() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "scripts.chaos", "--only", "orders.web_restart", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # a hang fails here; the scenario bounds its own waits well inside this
        check=False,
    )
    rows = [Outcome(**json.loads(line)) for line in run.stdout.splitlines() if line.startswith("{")]

    assert len(rows) == 1, run.stdout + run.stderr[-3000:]
    assert rows[0].recovered, rows[0]
    assert (rows[0].orders_lost, rows[0].orders_duplicated) == (0, 0), rows[0]
    assert rows[0].seconds_to_recover is not None
    assert run.returncode == 0, run.stderr[-3000:]
