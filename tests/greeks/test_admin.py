from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from greeks.models import GreeksSnapshot
from tests.ticks.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def row() -> GreeksSnapshot:
    return GreeksSnapshot.objects.create(
        underlying="NIFTY", expiry=date(2026, 12, 8), taken_at=datetime(2026, 12, 1, 4, 30, tzinfo=UTC),
        forward=24_832.0, forward_source="parity", atm_strike=Decimal(24_850), t_years=0.02,
        strike=Decimal(24_800), option_type="CE", instrument_token=123, last_price=180.5, iv=0.1412,
        delta=0.55, status="ok",
    )  # fmt: skip


def test_the_changelist_lists_snapshots_under_the_conventions_in_force(
    admin_client_: Client, row: GreeksSnapshot, settings: Any
) -> None:
    settings.GREEKS_RATE, settings.GREEKS_MODEL, settings.GREEKS_BACKEND = 0.07, "bs", "mibian"

    page = admin_client_.get("/admin/greeks/greekssnapshot/").content.decode()

    assert "0.1412" in page and "parity" in page
    conventions = page[page.index('id="greeks-conventions"') :].split("</p>")[0]
    for shown in (
        "model <strong>bs</strong>",
        "rate <strong>0.07</strong>",
        "backend <strong>mibian</strong>",
    ):
        assert shown in conventions


def test_snapshots_are_read_only(admin_client_: Client, row: GreeksSnapshot) -> None:
    change = f"/admin/greeks/greekssnapshot/{row.pk}/change/"

    assert admin_client_.get(change).status_code == 200  # viewable
    assert admin_client_.post(change, {"status": "edited"}).status_code == 403
    assert admin_client_.get("/admin/greeks/greekssnapshot/add/").status_code == 403
    assert admin_client_.post(f"/admin/greeks/greekssnapshot/{row.pk}/delete/").status_code == 403
    assert GreeksSnapshot.objects.get(pk=row.pk).status == "ok"
