"""ORDER_LOOKUP_CACHE_S: what a web process remembers between order requests, and for how long."""

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order, TradingPermission
from tests.orders.conftest import Trader, limit_body, make_trader
from tests.ticks.factories import BrokerAccountFactory, OptionFactory
from ticks.models import BrokerAccount, ClientApiKey, Instrument

pytestmark = pytest.mark.django_db

TTL_S = 0.3


@pytest.fixture
def short_memory(settings) -> None:
    settings.ORDER_LOOKUP_CACHE_S = TTL_S


def _lapse() -> None:
    time.sleep(TTL_S + 0.05)


def test_a_new_order_costs_only_its_insert_transaction_once_the_lookups_are_remembered(
    trader: Trader, option: Instrument
) -> None:
    assert trader.place(limit_body(option), key="warm").status_code == 201

    with CaptureQueriesContext(connection) as captured:
        assert trader.place(limit_body(option), key="new").status_code == 201

    # a savepoint here (the test's transaction), the order, its first event, the release
    assert len(captured) == 4, [query["sql"] for query in captured]


def _revoke_key(trader: Trader, account: BrokerAccount) -> None:
    for key in ClientApiKey.objects.filter(user=trader.user):
        key.revoked = True
        key.save()


def _deactivate_user(trader: Trader, account: BrokerAccount) -> None:
    trader.user.is_active = False
    trader.user.save()


def _drop_permission(trader: Trader, account: BrokerAccount) -> None:
    TradingPermission.objects.filter(user=trader.user, account=account).delete()


def _disable_account(trader: Trader, account: BrokerAccount) -> None:
    account.enabled = False
    account.save()


def _expire_token(trader: Trader, account: BrokerAccount) -> None:
    account.health = BrokerAccount.Health.TOKEN_EXPIRED
    account.save()


REVOCATIONS = [
    (_revoke_key, 401),
    (_deactivate_user, 401),
    (_drop_permission, 403),
    (_disable_account, 400),
    (_expire_token, 409),
]


@pytest.mark.parametrize(("revoke", "refused"), REVOCATIONS)
def test_a_revocation_saved_through_the_orm_counts_at_the_next_request(
    trader: Trader,
    account: BrokerAccount,
    option: Instrument,
    revoke: Callable[[Trader, BrokerAccount], None],
    refused: int,
    django_capture_on_commit_callbacks,
) -> None:
    assert trader.place(limit_body(option), key="before").status_code == 201

    with django_capture_on_commit_callbacks(execute=True):
        revoke(trader, account)
    after = trader.place(limit_body(option), key="after")

    assert after.status_code == refused
    assert Order.objects.filter(idempotency_key="after").count() == 0


def test_a_change_that_bypasses_the_orm_s_signals_counts_within_the_cache_period(
    short_memory: None, trader: Trader, option: Instrument
) -> None:
    assert trader.place(limit_body(option), key="before").status_code == 201

    ClientApiKey.objects.filter(user=trader.user).update(revoked=True)
    remembered = trader.place(limit_body(option), key="remembered")
    _lapse()
    after = trader.place(limit_body(option), key="after")

    assert (remembered.status_code, after.status_code) == (201, 401)


def test_with_redis_unreachable_nothing_is_remembered_and_orders_are_still_taken(
    settings, trader: Trader, option: Instrument, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert trader.place(limit_body(option), key="first").status_code == 201

    with CaptureQueriesContext(connection) as captured:
        assert trader.place(limit_body(option), key="second").status_code == 201

    assert len(captured) > 4  # the key, the account and the instrument were read again
    assert "order lookups not remembered: Redis unreachable" in caplog.text


def test_a_remembered_key_still_expires_on_its_expiry_date(trader: Trader, option: Instrument) -> None:
    expiry = timezone.now() + timedelta(seconds=TTL_S)
    ClientApiKey.objects.filter(user=trader.user).update(expiry_date=expiry)
    assert trader.place(limit_body(option), key="before").status_code == 201

    time.sleep((expiry - timezone.now()).total_seconds() + 0.05)

    assert trader.place(limit_body(option), key="after").status_code == 401


def test_a_grant_counts_at_once(trader: Trader, option: Instrument) -> None:
    other = BrokerAccountFactory(name="other")
    assert trader.place(limit_body(option, account="other"), key="a").status_code == 403

    TradingPermission.objects.create(user=trader.user, account=other)

    assert trader.place(limit_body(option, account="other"), key="b").status_code == 201


def test_a_new_key_of_the_same_client_is_checked_on_its_own(
    trader: Trader, account: BrokerAccount, option: Instrument
) -> None:
    assert trader.place(limit_body(option), key="a").status_code == 201

    trader.api.credentials(HTTP_AUTHORIZATION=f"Api-Key {trader.key}x")

    assert trader.place(limit_body(option), key="b").status_code == 401


def test_instruments_are_remembered_for_the_cache_period_and_new_listings_count_at_once(
    short_memory: None, trader: Trader, option: Instrument
) -> None:
    assert trader.place(limit_body(option), key="before").status_code == 201
    Instrument.objects.filter(pk=option.pk).update(is_active=False)
    listed_later = OptionFactory.build(strike=option.strike + 50)
    assert trader.place(limit_body(listed_later), key="unlisted").status_code == 400

    remembered = trader.place(limit_body(option), key="remembered")
    listed_later.save()
    listed = trader.place(limit_body(listed_later), key="listed")
    _lapse()
    delisted = trader.place(limit_body(option), key="delisted")

    assert (remembered.status_code, listed.status_code, delisted.status_code) == (201, 201, 400)
    assert "tradingsymbol" in delisted.json()


def test_an_account_is_remembered_per_client(account: BrokerAccount, option: Instrument) -> None:
    permitted, stranger = make_trader(account), make_trader()
    assert permitted.place(limit_body(option)).status_code == 201

    assert stranger.place(limit_body(option)).status_code == 403
