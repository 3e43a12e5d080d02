"""``/_sim/*``: faults, drops, token expiry, clock and state."""

import json
import time
from collections.abc import Iterator

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from kitesim.faults import FaultPlan
from kitesim.testing import KitesimThread

pytestmark = pytest.mark.integration
OTHER = "other:othersecret:othertoken"


@pytest.fixture
def server() -> Iterator[KitesimThread]:
    with KitesimThread(seed=7, speed=10, accounts=["demo:demosecret:demotoken", OTHER]) as sim:
        yield sim


def _ws(server: KitesimThread, *credentials: str) -> ClientConnection:
    api_key, access_token = credentials or ("demo", "demotoken")
    return connect(f"{server.ws_root}/?api_key={api_key}&access_token={access_token}", open_timeout=10)


def _alive(ws: ClientConnection) -> bool:
    """True when the socket still delivers (ticks or heartbeats) within 3 s."""
    try:
        ws.recv(timeout=3)
    except ConnectionClosed:
        return False
    return True


def test_faults_read_and_write(server: KitesimThread) -> None:
    url = f"{server.root}/_sim/faults"
    assert requests.get(url, timeout=5).json() == FaultPlan().as_dict()
    changed = requests.post(url, json={"rest_5xx_next": 2, "reject_upgrades_429": True}, timeout=5)
    assert changed.status_code == 200 and changed.json()["rest_5xx_next"] == 2
    assert server.state is not None and server.state.faults.reject_upgrades_429 is True


@pytest.mark.parametrize(("body", "field"), [({"rest_429_next": 1, "bogus": 1}, "bogus"),
                                             ({"rest_429_next": 1, "stall_seconds": "long"}, "stall_seconds"),
                                             ({"reject_upgrades_403": 1}, "reject_upgrades_403")])
def test_bad_fault_changes_are_refused_whole(server: KitesimThread, body: dict[str, object], field: str) -> None:
    answer = requests.post(f"{server.root}/_sim/faults", json=body, timeout=5)
    assert answer.status_code == 400 and answer.json()["field"] == field
    assert requests.get(f"{server.root}/_sim/faults", timeout=5).json()["rest_429_next"] == 0


def test_not_json_is_a_400(server: KitesimThread) -> None:
    answer = requests.post(f"{server.root}/_sim/faults", data="{nope", timeout=5)
    assert answer.status_code == 400 and "invalid JSON" in answer.json()["error"]


def test_stall_counts_down_in_real_seconds(server: KitesimThread) -> None:
    requests.post(f"{server.root}/_sim/faults", json={"stall_seconds": 0.5}, timeout=5).raise_for_status()
    time.sleep(1.0)
    assert requests.get(f"{server.root}/_sim/faults", timeout=5).json()["stall_seconds"] == 0


def test_drop_can_target_one_api_key(server: KitesimThread) -> None:
    with _ws(server) as mine, _ws(server, "other", "othertoken") as theirs:
        time.sleep(0.3)
        answer = requests.post(f"{server.root}/_sim/drop", json={"api_key": "other"}, timeout=5)
        assert answer.json() == {"dropped": 1}
        assert not _alive(theirs)
        assert _alive(mine)
        assert requests.post(f"{server.root}/_sim/drop", timeout=5).json() == {"dropped": 1}
        assert not _alive(mine)


def test_expire_tokens_for_one_key(server: KitesimThread) -> None:
    with _ws(server) as mine, _ws(server, "other", "othertoken") as theirs:
        time.sleep(0.3)
        answer = requests.post(f"{server.root}/_sim/expire_tokens?api_key=other", timeout=5).json()
        assert answer == {"expired": 1, "dropped": 1}
        assert not _alive(theirs) and _alive(mine)
    with pytest.raises(InvalidStatus):
        _ws(server, "other", "othertoken")
    with _ws(server) as still_mine:
        assert _alive(still_mine)


def test_state_reports_clock_connections_and_subscriptions(server: KitesimThread) -> None:
    with _ws(server) as ws:
        ws.send(json.dumps({"a": "subscribe", "v": [256265, 260105, 265, 1]}))
        time.sleep(0.5)
        state = requests.get(f"{server.root}/_sim/state", timeout=5).json()
    assert state["connections_per_key"] == {"demo": 1} and state["subscriptions"] == 3
    assert state["now_ist"].endswith("+05:30") and state["speed"] == 10
    assert state["instruments"] == 2118


def test_clock_jumps_over_the_close_and_the_0600_expiry(server: KitesimThread) -> None:
    before = requests.get(f"{server.root}/_sim/state", timeout=5).json()
    assert requests.post(f"{server.root}/_sim/clock", json={"advance_seconds": -1}, timeout=5).status_code == 400
    requests.post(f"{server.root}/_sim/clock", json={"advance_seconds": 7 * 3600}, timeout=5).raise_for_status()
    time.sleep(0.5)
    after = requests.get(f"{server.root}/_sim/state", timeout=5).json()
    assert after["session"] > before["session"]
    assert "T09:1" in after["now_ist"]  # skipped to the next session's 09:15
    with pytest.raises(InvalidStatus) as refused:
        _ws(server)
    assert refused.value.response.status_code == 403
