"""Nothing changes or deletes an audit event: not the ORM, not the admin, not SQL where a trigger guards."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from tests.ticks.factories import BrokerAccountFactory, UserFactory
from tickerproject.audit.models import AppendOnlyError, AuditEvent
from tickerproject.audit.services import audit_event_record
from ticks.models import ClientApiKey

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


@pytest.fixture
def event() -> AuditEvent:
    return audit_event_record(action=Action.WATCH_SPEC_DELETED, details={"underlying": "NIFTY"})


def test_an_event_is_stamped_by_the_database(event: AuditEvent) -> None:
    assert event.at is not None and event.at.tzinfo is not None
    assert AuditEvent.objects.get().at == event.at


def test_the_orm_refuses_to_save_an_existing_event_or_delete_one(event: AuditEvent) -> None:
    event.details = {"underlying": "BANKNIFTY"}

    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent(pk=event.pk, action=Action.LOGOUT, actor_process="system").save()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(details={})
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["details"])
    assert AuditEvent.objects.get().details == {"underlying": "NIFTY"}


def test_sql_update_is_refused_by_the_trigger(event: AuditEvent) -> None:
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE audit_auditevent SET details = %s WHERE id = %s", ['{"underlying": "X"}', event.pk]
        )

    assert AuditEvent.objects.get().details == {"underlying": "NIFTY"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's flush empties tables with DELETE")
def test_sql_delete_is_refused_by_the_trigger_on_postgresql(event: AuditEvent) -> None:
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM audit_auditevent")

    assert AuditEvent.objects.count() == 1


def test_deleting_a_user_keeps_their_events_by_name() -> None:
    user = UserFactory(username="leaver")
    client = Client()
    client.force_login(user)

    user.delete()

    [event] = AuditEvent.objects.filter(action=Action.LOGIN_SUCCEEDED)
    assert (event.actor, event.actor_username, event.target_repr) == (None, "leaver", "leaver")


def test_the_admin_lists_and_shows_events_but_offers_no_add_change_or_delete() -> None:
    BrokerAccountFactory(name="desk")
    event = AuditEvent.objects.get(action=Action.BROKER_ACCOUNT_CREATED)
    admin = Client()
    admin.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    listing = admin.get("/admin/audit/auditevent/", {"action__exact": "broker_account.created", "q": "desk"})
    detail = admin.get(f"/admin/audit/auditevent/{event.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    assert "desk" in listing.content.decode()
    assert (
        admin.get("/admin/audit/auditevent/", {"q": "198.51.100"}).status_code == 200
    )  # an inet on PostgreSQL
    assert 'value="delete_selected"' not in listing.content.decode()
    assert "/admin/audit/auditevent/add/" not in listing.content.decode()
    assert 'name="_save"' not in detail.content.decode()
    assert f"/admin/audit/auditevent/{event.pk}/delete/" not in detail.content.decode()
    assert admin.get("/admin/audit/auditevent/add/").status_code == 403
    assert admin.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "logout"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == Action.BROKER_ACCOUNT_CREATED


@pytest.mark.django_db(transaction=True)  # the foreign key is checked at commit
def test_users_deleting_themselves_keep_the_events_of_the_cascade() -> None:
    ops = UserFactory(username="ops", is_staff=True, is_superuser=True)
    ClientApiKey.objects.create_key(name="ops-key", user=ops)
    admin = Client(raise_request_exception=True)
    admin.force_login(ops)

    assert admin.post(f"/admin/auth/user/{ops.pk}/delete/", {"post": "yes"}).status_code == 302

    [deleted] = AuditEvent.objects.filter(action=Action.API_KEY_DELETED)
    assert (deleted.actor, deleted.actor_username, deleted.details["user"]) == (None, "ops", "ops")
