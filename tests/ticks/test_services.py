from datetime import datetime
from pathlib import Path

import pytest
from django.db import connection

from tests.ticks.factories import BrokerAccountFactory, OptionFactory
from ticks.instruments_csv import KITE_HEADER, parse_csv
from ticks.market_time import IST
from ticks.models import BrokerAccount, Instrument
from ticks.services import (
    InstrumentLoadError,
    broker_account_mark_health,
    broker_account_set_token,
    instruments_load,
)

SLICE = Path(__file__).parents[1] / "resources" / "instruments-slice.csv"
HEADER = ",".join(KITE_HEADER)

pytestmark = pytest.mark.django_db


def _load(text: str) -> None:
    parsed = parse_csv(text)
    instruments_load(rows=parsed.rows, errors=parsed.errors)


def test_it_upserts_the_dump_and_is_idempotent() -> None:
    _load(SLICE.read_text())
    _load(SLICE.read_text())

    assert Instrument.objects.filter(is_active=True).count() == 119
    future = Instrument.objects.get(exchange="NFO", tradingsymbol="NIFTY26AUGFUT")
    assert (future.instrument_token, future.lot_size, str(future.tick_size)) == (14866434, 65, "0.1000")


def test_it_updates_changed_columns_and_deactivates_what_disappeared() -> None:
    _load(f"{HEADER}\n1,1,A,X,0,,0,0.05,50,CE,NFO-OPT,NFO\n2,2,B,X,0,,0,0.05,50,CE,NFO-OPT,NFO\n")
    _load(f"{HEADER}\n9,1,A,X,0,,0,0.05,65,CE,NFO-OPT,NFO\n")

    a, b = Instrument.objects.order_by("tradingsymbol")
    assert (a.instrument_token, a.lot_size, a.is_active) == (9, 65, True)
    assert b.is_active is False


def test_it_scopes_deactivation_to_the_exchanges_in_the_dump() -> None:
    OptionFactory(exchange="BFO", tradingsymbol="SENSEXOLD")

    _load(f"{HEADER}\n1,1,A,X,0,,0,0.05,50,CE,NFO-OPT,NFO\n")

    assert Instrument.objects.get(tradingsymbol="SENSEXOLD").is_active is True


def test_a_malformed_row_aborts_the_whole_load_and_names_its_line() -> None:
    _load(f"{HEADER}\n1,1,A,X,0,,0,0.05,50,CE,NFO-OPT,NFO\n")

    with pytest.raises(InstrumentLoadError, match="line 3: lot_size 'many' is not an integer"):
        _load(f"{HEADER}\n9,1,A,X,0,,0,0.05,65,CE,NFO-OPT,NFO\n2,2,B,X,0,,0,0.05,many,CE,NFO-OPT,NFO\n")

    (only,) = Instrument.objects.all()
    assert (only.instrument_token, only.lot_size) == (1, 50)


def test_secrets_are_encrypted_at_rest() -> None:
    account = BrokerAccountFactory(api_key="kite-key", api_secret="kite-secret", access_token="kite-token")

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key, api_secret, access_token FROM ticks_brokeraccount WHERE id = %s", [account.pk]
        )
        stored = cursor.fetchone()
    assert all(value.startswith("gAAAA") for value in stored)  # Fernet tokens
    assert not {"kite-key", "kite-secret", "kite-token"} & set(stored)
    reloaded = BrokerAccount.objects.get(pk=account.pk)
    assert (reloaded.api_key, reloaded.api_secret, reloaded.access_token) == (
        "kite-key",
        "kite-secret",
        "kite-token",
    )
    assert "kite" not in f"{reloaded!s} {reloaded!r}"


@pytest.mark.parametrize(
    ("issued", "expires"),
    [
        (datetime(2026, 11, 25, 9, 0, tzinfo=IST), datetime(2026, 11, 26, 6, 0, tzinfo=IST)),
        (datetime(2026, 11, 25, 5, 59, tzinfo=IST), datetime(2026, 11, 25, 6, 0, tzinfo=IST)),
        (datetime(2026, 11, 25, 6, 0, tzinfo=IST), datetime(2026, 11, 26, 6, 0, tzinfo=IST)),
    ],
)
def test_a_new_token_expires_at_the_next_6am_ist(issued: datetime, expires: datetime) -> None:
    account = BrokerAccountFactory(health=BrokerAccount.Health.TOKEN_EXPIRED)

    broker_account_set_token(account=account, access_token="fresh", issued_at=issued)

    account.refresh_from_db()
    assert (account.access_token, account.token_expires_at, account.health) == ("fresh", expires, "ok")


def test_health_changes_carry_reason_and_time() -> None:
    account = BrokerAccountFactory()
    at = datetime(2026, 11, 25, 10, 0, tzinfo=IST)

    broker_account_mark_health(
        account=account, health=BrokerAccount.Health.TOKEN_EXPIRED, reason="403", at=at
    )

    assert (account.health, account.health_reason, account.health_changed_at) == ("token_expired", "403", at)
