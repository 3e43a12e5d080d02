"""Dashboard preferences: the model, its service and selector, the admin's read-only view."""

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from tests.ticks.factories import UserFactory
from tickerproject.exceptions import ApplicationError
from ticks.models import DASHBOARD_COLUMNS, DASHBOARD_DEFAULT_COLUMNS, DashboardPreferences
from ticks.selectors import dashboard_preferences
from ticks.services import dashboard_preferences_save

pytestmark = pytest.mark.django_db

DEFAULTS = {"columns": list(DASHBOARD_DEFAULT_COLUMNS), "strike_range": 10}


def test_the_columns_run_from_oi_outermost_to_the_price_and_the_defaults_keep_that_order() -> None:
    assert DASHBOARD_COLUMNS[0] == "oi" and DASHBOARD_COLUMNS[1] == "oi_change"
    assert DASHBOARD_COLUMNS[-1] == "last_price"
    assert len(set(DASHBOARD_COLUMNS)) == len(DASHBOARD_COLUMNS)
    assert [name for name in DASHBOARD_COLUMNS if name in DASHBOARD_DEFAULT_COLUMNS] == list(
        DASHBOARD_DEFAULT_COLUMNS
    )
    assert not {"vega", "theta", "gamma"} & set(DASHBOARD_DEFAULT_COLUMNS)  # Greeks beyond delta: optional


def test_a_user_who_saved_nothing_gets_the_defaults() -> None:
    assert dashboard_preferences(user=UserFactory()) == DEFAULTS


def test_saved_columns_are_stored_in_the_page_order_whatever_order_they_came_in() -> None:
    user = UserFactory()

    dashboard_preferences_save(user=user, columns=["last_price", "gamma", "oi"], strike_range=5)

    assert dashboard_preferences(user=user) == {"columns": ["oi", "gamma", "last_price"], "strike_range": 5}
    assert DashboardPreferences.objects.get(user=user).columns == ["oi", "gamma", "last_price"]


def test_saving_again_replaces_the_one_row_of_the_user() -> None:
    user = UserFactory()
    dashboard_preferences_save(user=user, columns=["oi"], strike_range=5)

    dashboard_preferences_save(user=user, columns=list(DASHBOARD_COLUMNS), strike_range=30)

    assert DashboardPreferences.objects.filter(user=user).count() == 1
    assert dashboard_preferences(user=user) == {"columns": list(DASHBOARD_COLUMNS), "strike_range": 30}


def test_each_user_reads_only_their_own() -> None:
    trader, other = UserFactory(), UserFactory()

    dashboard_preferences_save(user=trader, columns=["iv"], strike_range=20)

    assert dashboard_preferences(user=other) == DEFAULTS
    assert dashboard_preferences(user=trader) == {"columns": ["iv"], "strike_range": 20}


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([], "at least one"),
        (None, "list"),
        ("oi,iv", "list"),
        ({"oi": True}, "list"),
        (["oi", 3], "list"),
        (["oi", ["iv"]], "list"),
        (["oi", "pcr"], "Unknown column(s) pcr"),
        (["oi", "iv", "oi"], "Repeated column(s): oi"),
    ],
)
def test_bad_columns_are_refused_naming_the_field_and_keep_what_was_stored(
    columns: object, message: str
) -> None:
    user = UserFactory()
    dashboard_preferences_save(user=user, columns=["oi", "iv"], strike_range=12)

    with pytest.raises(ApplicationError) as refused:
        dashboard_preferences_save(user=user, columns=columns, strike_range=15)

    assert refused.value.field == "columns"
    assert message in refused.value.message
    assert dashboard_preferences(user=user) == {"columns": ["oi", "iv"], "strike_range": 12}


@pytest.mark.parametrize("strike_range", [True, False, 4, 31, 0, -10, "10", 10.0, 10.5, None, [10]])
def test_a_bad_strike_range_is_refused_naming_the_field(strike_range: object) -> None:
    user = UserFactory()

    with pytest.raises(ApplicationError) as refused:
        dashboard_preferences_save(user=user, columns=["oi"], strike_range=strike_range)

    assert refused.value.field == "strike_range"
    assert "5 to 30" in refused.value.message
    assert not DashboardPreferences.objects.filter(user=user).exists()


@pytest.mark.parametrize("strike_range", [5, 30])
def test_the_strike_range_bounds_are_accepted(strike_range: int) -> None:
    user = UserFactory()

    dashboard_preferences_save(user=user, columns=["oi"], strike_range=strike_range)

    assert dashboard_preferences(user=user)["strike_range"] == strike_range


@pytest.mark.parametrize("strike_range", [4, 31])
def test_the_database_refuses_a_strike_range_out_of_bounds_written_around_the_service(
    strike_range: int,
) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        DashboardPreferences.objects.create(user=UserFactory(), strike_range=strike_range)


def test_a_row_created_directly_starts_from_the_defaults() -> None:
    row = DashboardPreferences.objects.create(user=UserFactory())

    assert (row.columns, row.strike_range) == (list(DASHBOARD_DEFAULT_COLUMNS), 10)


def test_stored_columns_no_longer_known_are_left_out_and_none_left_means_the_defaults() -> None:
    """A release that drops a column must not send the page a name it cannot draw."""
    kept, emptied = UserFactory(), UserFactory()
    DashboardPreferences.objects.create(user=kept, columns=["retired", "iv", "oi"], strike_range=8)
    DashboardPreferences.objects.create(user=emptied, columns=["retired"], strike_range=8)

    assert dashboard_preferences(user=kept) == {"columns": ["oi", "iv"], "strike_range": 8}
    assert dashboard_preferences(user=emptied) == {
        "columns": list(DASHBOARD_DEFAULT_COLUMNS),
        "strike_range": 8,
    }


def test_the_admin_lists_preferences_read_only() -> None:
    trader = UserFactory(username="trader-prefs")
    row = dashboard_preferences_save(user=trader, columns=["oi", "gamma"], strike_range=7)
    admin = Client()
    admin.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    listing = admin.get("/admin/ticks/dashboardpreferences/")
    detail = admin.get(f"/admin/ticks/dashboardpreferences/{row.pk}/change/")
    posted = admin.post(
        f"/admin/ticks/dashboardpreferences/{row.pk}/change/", {"columns": '["iv"]', "strike_range": 9}
    )

    assert listing.status_code == 200 and "trader-prefs" in listing.content.decode()
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert admin.get("/admin/ticks/dashboardpreferences/add/").status_code == 403
    assert posted.status_code == 403
    assert dashboard_preferences(user=trader) == {"columns": ["oi", "gamma"], "strike_range": 7}
