"""Outside a request the actor is the process: the management command, the Celery task, else "system"."""

from io import StringIO

import pytest
from celery import shared_task
from django.core.management import call_command

from tests.audit.conftest import events
from tests.ticks.factories import BrokerAccountFactory, OptionFactory, UserFactory, WatchSpecFactory
from tickerproject.audit.models import AuditEvent
from tickerproject.audit.selectors import current_actor
from ticks.models import ClientApiKey

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


@shared_task(name="tests.audit.spec_disable")
def spec_disable(spec_id: int) -> None:
    spec = WatchSpecFactory._meta.model.objects.get(pk=spec_id)
    spec.enabled = False
    spec.save()


def test_issue_api_key_is_recorded_as_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    UserFactory(username="algo")

    call_command("issue_api_key", "algo", "--scope", "read")

    key = ClientApiKey.objects.get()
    [event] = events(Action.API_KEY_ISSUED)
    assert (event.actor, event.actor_username, event.actor_process, event.client_ip) == (
        None,
        "",
        "command:issue_api_key",
        None,
    )
    assert event.details["scope"] == "read"
    printed_key = capsys.readouterr().out.splitlines()[-1]
    assert printed_key not in str(list(AuditEvent.objects.values_list()))
    assert key.prefix in printed_key


def test_grant_trading_is_recorded_once_as_the_command() -> None:
    UserFactory(username="algo"), BrokerAccountFactory(name="desk")

    call_command("grant_trading", "algo", "desk")
    call_command("grant_trading", "algo", "desk")  # already granted: nothing changes, nothing recorded

    [event] = events(Action.TRADING_PERMISSION_GRANTED)
    assert (event.actor_process, event.actor, event.client_ip) == ("command:grant_trading", None, None)
    assert event.details == {"user": "algo", "account": "desk"}


def test_watchlist_fno_changes_are_recorded_as_the_command() -> None:
    OptionFactory(name="NIFTY")
    WatchSpecFactory(underlying="NIFTY", strikes_around_atm=10)

    call_command("watchlist_fno", "--strikes", "12", stdout=StringIO())

    [event] = events(Action.WATCH_SPEC_CHANGED)
    assert event.actor_process == "command:watchlist_fno"
    assert event.details == {"changes": {"strikes_around_atm": [10, 12]}}


def test_a_celery_task_is_recorded_by_its_name() -> None:
    OptionFactory(name="NIFTY")
    spec = WatchSpecFactory(underlying="NIFTY", enabled=True)

    spec_disable.delay(spec.pk)  # eager in tests: the task runs here, as a worker runs it

    [event] = events(Action.WATCH_SPEC_CHANGED)
    assert (event.actor_process, event.actor) == ("task:tests.audit.spec_disable", None)


def test_anything_else_is_the_system() -> None:
    assert current_actor().process == "system"
    BrokerAccountFactory(name="desk")

    [event] = events(Action.BROKER_ACCOUNT_CREATED)
    assert (event.actor_process, event.actor, event.client_ip) == ("system", None, None)
