"""The actor of a change is the request's user, per request, on the web's real thread pool (a2wsgi under
uvicorn): concurrent requests of several users never swap."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.asgi_server import AsgiServer
from tests.ticks.factories import OptionFactory, UserFactory, WatchSpecFactory
from tickerproject.asgi import application
from tickerproject.audit.models import AuditEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

UNDERLYINGS = ["NIFTY", "BANKNIFTY", "FINNIFTY", "SENSEX", "MIDCPNIFTY", "BANKEX"]
ROUNDS = 4


@pytest.fixture
def server(redis_client) -> Iterator[AsgiServer]:
    with AsgiServer(application) as running:
        yield running


def _staff_session(server: AsgiServer, username: str) -> requests.Session:
    UserFactory(username=username, password="pw-audit-7e1", is_staff=True, is_superuser=True)
    session = requests.Session()
    session.get(f"{server.url}/admin/login/", timeout=10)
    answer = session.post(
        f"{server.url}/admin/login/",
        data={
            "username": username,
            "password": "pw-audit-7e1",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": f"{server.url}/admin/login/", "Origin": server.url},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text[:300]
    return session


def _toggle(
    server: AsgiServer, session: requests.Session, spec_id: int, underlying: str, enabled: bool
) -> int:
    url = f"{server.url}/admin/ticks/watchspec/{spec_id}/change/"
    form = {"underlying": underlying, "expiry_kind": "any", "expiry_count": 2, "strikes_around_atm": 10}
    form |= {"mode": "full", "csrfmiddlewaretoken": session.cookies["csrftoken"]} | (
        {"enabled": "on"} if enabled else {}
    )
    headers = {"Referer": url, "Origin": server.url}
    return session.post(url, data=form, headers=headers, allow_redirects=False, timeout=10).status_code


def test_concurrent_admin_saves_are_each_recorded_as_their_own_user(server: AsgiServer) -> None:
    specs = {}
    for name in UNDERLYINGS:
        OptionFactory(name=name)
        specs[name] = WatchSpecFactory(underlying=name, enabled=True).pk
    sessions = {name: _staff_session(server, f"ops-{name.lower()}") for name in UNDERLYINGS}

    def one_user(name: str) -> list[int]:
        return [
            _toggle(server, sessions[name], specs[name], name, enabled=bool(r % 2)) for r in range(ROUNDS)
        ]

    with ThreadPoolExecutor(len(UNDERLYINGS)) as pool:
        statuses = list(pool.map(one_user, UNDERLYINGS))

    assert statuses == [[302] * ROUNDS] * len(UNDERLYINGS)
    changed = AuditEvent.objects.filter(action=AuditEvent.Action.WATCH_SPEC_CHANGED)
    assert changed.count() == ROUNDS * len(UNDERLYINGS)
    for event in changed:
        assert (event.actor_username, event.actor_process) == (f"ops-{event.target_repr.lower()}", "web")
        assert event.client_ip == "127.0.0.1"
