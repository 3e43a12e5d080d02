import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from tests.ticks.factories import UserFactory
from tickerproject.audit.models import AuditEvent

OPERATOR_IP = "198.51.100.23"


@pytest.fixture
def operator() -> AbstractBaseUser:
    return UserFactory(username="ops", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client_(operator: AbstractBaseUser) -> Client:
    """A staff browser at OPERATOR_IP, logged in."""
    client = Client(REMOTE_ADDR=OPERATOR_IP)
    client.force_login(operator)
    return client


def events(action: AuditEvent.Action) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def assert_by_operator(event: AuditEvent, operator: AbstractBaseUser) -> None:
    assert (event.actor, event.actor_username, event.actor_process, event.client_ip) == (
        operator,
        operator.get_username(),
        "web",
        OPERATOR_IP,
    )
