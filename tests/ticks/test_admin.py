import pytest
from django.test import Client

from tests.ticks.factories import BrokerAccountFactory, OptionFactory, UserFactory
from ticks.models import BrokerAccount

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.mark.clock  # the list's token state is on the market clock: the host's (MARKET_CLOCK=wall)
def test_account_list_and_form_never_show_secrets(admin_client_: Client) -> None:
    account = BrokerAccountFactory(
        api_key="kk-visible?", api_secret="ss-visible?", access_token="tt-visible?"
    )

    listing = admin_client_.get("/admin/ticks/brokeraccount/").content.decode()
    form = admin_client_.get(f"/admin/ticks/brokeraccount/{account.pk}/change/").content.decode()

    assert account.name in listing
    for secret in ("kk-visible?", "ss-visible?", "tt-visible?"):
        assert secret not in listing
        assert secret not in form


@pytest.mark.clock  # the token is stamped issued at the market clock: the host's (MARKET_CLOCK=wall)
def test_saving_a_token_in_admin_stamps_its_expiry_and_blank_keeps_secrets(admin_client_: Client) -> None:
    account = BrokerAccountFactory(api_key="keep-key", api_secret="keep-secret", access_token="")
    form = {"name": account.name, "api_key": "", "api_secret": "", "access_token": "new-token"}
    form |= {"enabled": "on", "max_connections": 3, "tokens_per_connection": 3000}

    response = admin_client_.post(f"/admin/ticks/brokeraccount/{account.pk}/change/", form)

    assert response.status_code == 302
    account = BrokerAccount.objects.get(pk=account.pk)
    assert (account.api_key, account.api_secret, account.access_token) == (
        "keep-key",
        "keep-secret",
        "new-token",
    )
    assert account.token_expires_at is not None
    assert account.token_expires_at.hour == 0 and account.token_expires_at.minute == 30  # 06:00 IST in UTC


def test_a_new_account_needs_key_and_secret(admin_client_: Client) -> None:
    form = {"name": "fresh", "api_key": "", "api_secret": "", "access_token": ""}
    form |= {"enabled": "on", "max_connections": 3, "tokens_per_connection": 3000}

    response = admin_client_.post("/admin/ticks/brokeraccount/add/", form)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.keys() == {"api_key", "api_secret"}


def test_an_invalid_watch_spec_is_refused_with_field_errors(admin_client_: Client) -> None:
    OptionFactory(name="NIFTY")
    form = {
        "underlying": "NOPE",
        "expiry_kind": "any",
        "expiry_count": 2,
        "strikes_around_atm": 0,
        "mode": "full",
    }

    response = admin_client_.post("/admin/ticks/watchspec/add/", form)

    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"underlying", "strikes_around_atm"}


def test_instrument_admin_lists_but_never_edits(admin_client_: Client) -> None:
    option = OptionFactory()

    assert option.tradingsymbol in admin_client_.get("/admin/ticks/instrument/").content.decode()
    assert admin_client_.get("/admin/ticks/instrument/add/").status_code == 403
