import json
import re
from datetime import UTC, datetime

import pytest
import redis
from django.test import Client

from tests.ticks.factories import UserFactory
from tests.workers.plan_factories import FeedAssignmentFactory, feed_report, plan_world
from workers.control import DRIFT_LAST_KEY
from workers.models import FeedAssignment, FeedPlan

pytestmark = pytest.mark.django_db

PLANS = "/admin/workers/feedplan/"
ASSIGNMENTS = "/admin/workers/feedassignment/"


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _cells(html: str, row_text: str) -> list[str]:
    """The text of each cell of the changelist row that contains row_text."""
    row = next(r for r in re.findall(r"<tr>.*?</tr>", html, re.S) if row_text in r)
    return [
        re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
    ]


def test_plan_list_says_when_why_and_how_much_changed(
    admin_client_: Client, django_assert_num_queries
) -> None:
    world = plan_world()

    with django_assert_num_queries(5):  # session, user, count, full count, page
        html = admin_client_.get(PLANS).content.decode()

    cells = _cells(html, "24800→24850")
    assert cells[0] == "2"
    assert cells[2:] == [
        "rebalance NIFTY:2026-12-08 24800→24850",
        "10",
        "2",
        "2",
        "1",
        "1",
        "assignments of v2",
    ]
    assert f'{ASSIGNMENTS}?in_plan={world.plan.version}"' in html
    assert "accounts changed" in html


def test_plan_page_shows_subscribed_against_planned_and_the_last_drift(
    admin_client_: Client, redis_client: redis.Redis
) -> None:
    world = plan_world()
    feed_report(redis_client, world.alpha, 2, {0: [*world.nifty_options[1:], world.nifty_index, 777]})
    at = datetime(2026, 12, 8, 4, 0, 15, tzinfo=UTC).timestamp()
    drift = {"account_id": world.beta.pk, "planned": 5, "reported": 0, "stale_version": False}
    redis_client.set(DRIFT_LAST_KEY, json.dumps({"at": at, "plan_version": 2, "drifts": [drift]}))

    html = admin_client_.get(f"{PLANS}{world.plan.pk}/change/").content.decode()

    assert _cells(html, "<td>alpha</td>") == [
        "alpha",
        "0",
        "v2",
        "6",
        "6",
        f"1: {world.nifty_options[0]}",
        "1: 777",
    ]
    assert _cells(html, "<td>beta</td><td>1</td>") == [
        "beta",
        "1",
        "no report",
        "2",
        "0",
        f"2: {world.banknifty_index}, {world.banknifty_options[2]}",
        "0",
    ]
    assert f"2026-12-08 04:00:15 UTC on v2: account {world.beta.pk}: planned 5, reported 0" in html
    assert "3 of 12 tokens did not fit" in html
    assert 'name="_save"' not in html


def test_an_older_plan_page_does_not_compare_with_the_feeds(
    admin_client_: Client, redis_client: redis.Redis
) -> None:
    world = plan_world()

    html = admin_client_.get(f"{PLANS}{world.old.pk}/change/").content.decode()

    assert "Only for the plan in force (v2)." in html


def test_assignment_list_explains_every_token(admin_client_: Client, django_assert_num_queries) -> None:
    world = plan_world()
    url = f"{ASSIGNMENTS}?in_plan={world.plan.version}"

    # session, user, the filtered version, count, the filters' choices (versions, account, connection,
    # underlying), page
    with django_assert_num_queries(9):
        html = admin_client_.get(url).content.decode()

    assert _cells(html, "NIFTY26120824750CE") == [
        str(world.nifty_options[0]),
        "NIFTY26120824750CE",
        "NIFTY:2026-12-08",
        "NIFTY",
        "Dec. 8, 2026",
        "24750.00",
        "-2",
        "option",
        "primary",
        "alpha",
        "0",
        "full",
        "plan v2",
        "-",  # not retired: in force
    ]
    index_rows = [r for r in re.findall(r"<tr>.*?</tr>", html, re.S) if "NIFTY BANK" in r]
    assert [("companion" in r, "primary" in r) for r in index_rows] == [(False, True), (True, False)]


def test_assignment_list_query_count_does_not_grow_with_rows(
    admin_client_: Client, django_assert_num_queries
) -> None:
    world = plan_world()
    FeedAssignmentFactory.create_batch(40, plan=world.plan, account=world.alpha, connection=2)

    with django_assert_num_queries(9):
        response = admin_client_.get(f"{ASSIGNMENTS}?in_plan={world.plan.version}")

    assert response.context["cl"].result_count == 51


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("role__exact=index", 3),
        ("primary__exact=0", 1),
        ("underlying__exact=BANKNIFTY&connection__exact=1", 2),
        ("q=NIFTY", 6),
        ("q=260105", 2),
    ],
)
def test_assignment_filters_and_search(admin_client_: Client, query: str, expected: int) -> None:
    world = plan_world()

    response = admin_client_.get(f"{ASSIGNMENTS}?in_plan={world.plan.version}&{query}")

    assert response.status_code == 200
    assert response.context["cl"].result_count == expected


@pytest.mark.parametrize("model", [FeedPlan, FeedAssignment])
def test_plans_are_read_only(admin_client_: Client, model: type) -> None:
    world = plan_world()
    base = f"/admin/workers/{model._meta.model_name}/"
    row = world.plan if model is FeedPlan else world.plan.assignments.first()

    assert admin_client_.get(f"{base}add/").status_code == 403
    assert admin_client_.post(f"{base}{row.pk}/change/", {}).status_code == 403
    assert admin_client_.post(f"{base}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = admin_client_.get(base).content.decode()
    assert "delete_selected" not in changelist and f"{base}add/" not in changelist
    assert model.objects.filter(pk=row.pk).exists()
