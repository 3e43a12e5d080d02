"""Logins, failures, logouts and lockouts through the real login forms: the username tried, no password."""

import pytest
from django.conf import settings
from django.test import Client

from tests.audit.conftest import OPERATOR_IP, events
from tests.ticks.factories import UserFactory
from tickerproject.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
PASSWORD = "pw-right-5b8e1"
WRONG = "pw-wrong-0c4d2"


@pytest.fixture
def browser() -> Client:
    UserFactory(username="ops", password=PASSWORD, is_staff=True)
    return Client(REMOTE_ADDR=OPERATOR_IP)


@pytest.mark.parametrize("login_url", ["/admin/login/", "/login/"])
def test_a_failed_then_a_good_login_and_a_logout_are_recorded(browser: Client, login_url: str) -> None:
    browser.post(login_url, {"username": "ops", "password": WRONG})
    assert browser.post(login_url, {"username": "ops", "password": PASSWORD}).status_code == 302
    browser.post("/logout/")

    [failed] = events(Action.LOGIN_FAILED)
    assert (failed.actor, failed.actor_process, failed.client_ip) == (None, "web", OPERATOR_IP)
    assert failed.details == {"username": "ops"}
    for action in (Action.LOGIN_SUCCEEDED, Action.LOGOUT):
        [event] = events(action)
        assert (event.actor_username, event.actor_process, event.client_ip) == ("ops", "web", OPERATOR_IP)
        assert event.target_repr == "ops"
    stored = str(list(AuditEvent.objects.values_list()))
    assert WRONG not in stored and PASSWORD not in stored


def test_a_lockout_is_recorded_with_the_username_and_address(browser: Client) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = browser.post("/admin/login/", {"username": "ops", "password": WRONG})

    assert response.status_code == 429
    [locked] = events(Action.LOGIN_LOCKED_OUT)
    assert (locked.actor, locked.actor_process, locked.client_ip) == (None, "web", OPERATOR_IP)
    assert locked.details == {"username": "ops"}
    assert len(events(Action.LOGIN_FAILED)) == settings.AXES_FAILURE_LIMIT
    assert WRONG not in str(list(AuditEvent.objects.values_list()))


def test_an_unknown_username_is_recorded_as_tried_and_cut_to_length(browser: Client) -> None:
    browser.post("/login/", {"username": "x" * 200, "password": WRONG})

    [failed] = events(Action.LOGIN_FAILED)
    assert failed.details == {"username": "x" * 150}
