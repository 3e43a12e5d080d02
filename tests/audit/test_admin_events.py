"""Every audited change made through the real admin forms: who, from where, what, never a secret."""

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from orders.models import TradingPermission
from tests.audit.conftest import assert_by_operator, events
from tests.orders.factories import TradingPermissionFactory
from tests.ticks.factories import BrokerAccountFactory, OptionFactory, UserFactory, WatchSpecFactory
from tickerproject.audit.models import AuditEvent
from ticks.models import BrokerAccount, ClientApiKey, WatchSpec

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
ACCOUNT_FORM = {"enabled": "on", "max_connections": 3, "tokens_per_connection": 3000}
SECRETS = ("kk-first-9f2", "ss-first-4c1", "tt-first-77a", "ss-second-0d3", "tt-second-e5b")


def _key_form(key: ClientApiKey, **changes: str) -> dict[str, object]:
    form = {
        "name": key.name,
        "expiry_date_0": "",
        "expiry_date_1": "",
        "user": key.user_id,
        "scope": key.scope,
    }
    return form | changes


def test_issuing_a_key_in_admin_records_its_prefix_scope_and_owner(
    admin_client_: Client, operator: AbstractBaseUser
) -> None:
    owner = UserFactory(username="algo")
    form = {"name": "algo-read", "expiry_date_0": "", "expiry_date_1": "", "user": owner.pk, "scope": "read"}

    assert admin_client_.post("/admin/ticks/clientapikey/add/", form).status_code == 302

    key = ClientApiKey.objects.get()
    [event] = events(Action.API_KEY_ISSUED)
    assert_by_operator(event, operator)
    assert (event.target_id, event.target_repr) == (key.prefix, "algo-read")
    assert event.details == {
        "prefix": key.prefix,
        "name": "algo-read",
        "user": "algo",
        "expiry_date": None,
        "scope": "read",
    }
    assert key.hashed_key not in str(AuditEvent.objects.values_list())


def test_revoking_a_key_and_changing_its_scope_in_admin_are_recorded(
    admin_client_: Client, operator: AbstractBaseUser
) -> None:
    key, _ = ClientApiKey.objects.create_key(name="algo", user=UserFactory(), scope="read")
    url = f"/admin/ticks/clientapikey/{key.pk}/change/"

    assert admin_client_.post(url, _key_form(key, scope="trade")).status_code == 302
    assert admin_client_.post(url, _key_form(key, scope="trade", revoked="on")).status_code == 302

    [scope_changed] = events(Action.API_KEY_SCOPE_CHANGED)
    assert scope_changed.details == {"prefix": key.prefix, "from": "read", "to": "trade"}
    [revoked] = events(Action.API_KEY_REVOKED)
    assert revoked.details["prefix"] == key.prefix
    assert_by_operator(scope_changed, operator)
    assert_by_operator(revoked, operator)
    assert not events(Action.API_KEY_CHANGED)  # nothing else changed


def test_granting_and_revoking_trading_in_admin_are_recorded(
    admin_client_: Client, operator: AbstractBaseUser
) -> None:
    user, account = UserFactory(username="algo"), BrokerAccountFactory(name="desk")

    admin_client_.post("/admin/orders/tradingpermission/add/", {"user": user.pk, "account": account.pk})
    permission = TradingPermission.objects.get()
    admin_client_.post(f"/admin/orders/tradingpermission/{permission.pk}/delete/", {"post": "yes"})

    assert not TradingPermission.objects.exists()
    for action in (Action.TRADING_PERMISSION_GRANTED, Action.TRADING_PERMISSION_REVOKED):
        [event] = events(action)
        assert_by_operator(event, operator)
        assert event.details == {"user": "algo", "account": "desk"}
        assert event.target_id == str(permission.pk)


def test_moving_a_permission_to_another_account_revokes_the_old_pair(admin_client_: Client) -> None:
    permission = TradingPermissionFactory(
        user=UserFactory(username="algo"), account=BrokerAccountFactory(name="a")
    )
    other = BrokerAccountFactory(name="b")

    admin_client_.post(
        f"/admin/orders/tradingpermission/{permission.pk}/change/",
        {"user": permission.user_id, "account": other.pk},
    )

    [revoked] = events(Action.TRADING_PERMISSION_REVOKED)
    assert revoked.details == {"user": "algo", "account": "a"}
    assert [event.details for event in events(Action.TRADING_PERMISSION_GRANTED)] == [
        {"user": "algo", "account": "a"},  # the factory's grant
        {"user": "algo", "account": "b"},
    ]


def test_broker_account_credentials_are_recorded_by_name_and_never_by_value(
    admin_client_: Client, operator: AbstractBaseUser
) -> None:
    first = {"name": "desk", "api_key": SECRETS[0], "api_secret": SECRETS[1], "access_token": SECRETS[2]}
    admin_client_.post("/admin/ticks/brokeraccount/add/", first | ACCOUNT_FORM)
    account = BrokerAccount.objects.get()
    url = f"/admin/ticks/brokeraccount/{account.pk}/change/"
    admin_client_.post(
        url, {"name": "desk", "api_key": "", "api_secret": SECRETS[3], "access_token": ""} | ACCOUNT_FORM
    )
    admin_client_.post(
        url, {"name": "desk", "api_key": "", "api_secret": "", "access_token": SECRETS[4]} | ACCOUNT_FORM
    )
    admin_client_.post(
        url, {"name": "desk", "api_key": "", "api_secret": "", "access_token": ""} | ACCOUNT_FORM
    )
    admin_client_.post(f"/admin/ticks/brokeraccount/{account.pk}/delete/", {"post": "yes"})

    assert not BrokerAccount.objects.exists()
    [created] = events(Action.BROKER_ACCOUNT_CREATED)
    assert created.details == {"fields": ["api_key", "api_secret", "access_token"]}
    [credentials] = events(Action.BROKER_ACCOUNT_CREDENTIALS_SAVED)
    assert credentials.details == {"fields": ["api_secret"]}
    [token] = events(Action.BROKER_ACCOUNT_TOKEN_SAVED)  # the blank save kept every secret: no event
    assert token.details == {"fields": ["access_token"], "cleared": False}
    [deleted] = events(Action.BROKER_ACCOUNT_DELETED)
    for event in (created, credentials, token, deleted):
        assert_by_operator(event, operator)
        assert (event.target_id, event.target_repr) == (str(account.pk), "desk")
    stored = str(list(AuditEvent.objects.values_list()))
    for secret in SECRETS:
        assert secret not in stored


def test_saving_an_account_without_touching_secrets_records_nothing(admin_client_: Client) -> None:
    account = BrokerAccountFactory(name="desk")
    before = AuditEvent.objects.count()

    admin_client_.post(
        f"/admin/ticks/brokeraccount/{account.pk}/change/",
        {"name": "desk", "api_key": "", "api_secret": "", "access_token": ""}
        | ACCOUNT_FORM
        | {"max_connections": 2},
    )

    assert BrokerAccount.objects.get().max_connections == 2
    assert AuditEvent.objects.count() == before


def test_watch_spec_changes_in_admin_are_recorded_with_old_and_new_values(
    admin_client_: Client, operator: AbstractBaseUser
) -> None:
    OptionFactory(name="NIFTY")
    form = {
        "underlying": "NIFTY",
        "expiry_kind": "any",
        "expiry_count": 2,
        "strikes_around_atm": 10,
        "mode": "full",
    }

    admin_client_.post("/admin/ticks/watchspec/add/", form | {"enabled": "on"})
    spec = WatchSpec.objects.get()
    admin_client_.post(f"/admin/ticks/watchspec/{spec.pk}/change/", form | {"strikes_around_atm": 20})
    admin_client_.post(f"/admin/ticks/watchspec/{spec.pk}/delete/", {"post": "yes"})

    [created] = events(Action.WATCH_SPEC_CREATED)
    assert created.details == form | {"enabled": True}
    [changed] = events(Action.WATCH_SPEC_CHANGED)
    assert changed.details == {"changes": {"strikes_around_atm": [10, 20], "enabled": [True, False]}}
    [deleted] = events(Action.WATCH_SPEC_DELETED)
    assert deleted.details["strikes_around_atm"] == 20
    for event in (created, changed, deleted):
        assert_by_operator(event, operator)
        assert event.target_repr == "NIFTY"


def test_the_changelist_toggle_of_a_watch_spec_is_recorded(admin_client_: Client) -> None:
    OptionFactory(name="NIFTY")
    spec = WatchSpecFactory(underlying="NIFTY", enabled=True)
    form = {"form-TOTAL_FORMS": 1, "form-INITIAL_FORMS": 1, "form-0-id": spec.pk, "_save": "Save"}

    response = admin_client_.post("/admin/ticks/watchspec/", form)  # enabled unticked

    assert response.status_code == 302
    [changed] = events(Action.WATCH_SPEC_CHANGED)
    assert changed.details == {"changes": {"enabled": [True, False]}}
