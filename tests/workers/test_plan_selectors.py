import json
from datetime import UTC, date, datetime

import pytest
import redis

from tests.ticks.factories import BrokerAccountFactory, OptionFactory
from tests.workers.plan_factories import FeedAssignmentFactory, FeedPlanFactory, feed_report, plan_world
from ticks.models import Instrument
from workers.control import DRIFT_LAST_KEY
from workers.selectors import (
    AccountDrift,
    feed_assignment_list,
    feed_drift_last,
    feed_plan_coverage,
    feed_plan_overview,
    token_diff,
)


def test_token_diff_counts_every_difference_and_lists_the_lowest() -> None:
    diff = token_diff({1, 2, 3, 4, 5, 6}, {5, 6, 7, 9, 8}, sample=2)

    assert (diff.planned, diff.subscribed) == (6, 5)
    assert (diff.missing_count, diff.missing) == (4, (1, 2))
    assert (diff.unplanned_count, diff.unplanned) == (3, (7, 8))


def test_token_diff_of_a_converged_connection_is_empty() -> None:
    diff = token_diff({1, 2}, {2, 1}, sample=50)

    assert (diff.missing_count, diff.missing, diff.unplanned_count, diff.unplanned) == (0, (), 0, ())


@pytest.mark.django_db
def test_coverage_per_connection_against_the_feeds_reports(
    redis_client: redis.Redis, django_assert_num_queries
) -> None:
    world = plan_world()
    dropped = world.nifty_options[0]
    feed_report(
        redis_client,
        world.alpha,
        2,
        {0: [*world.nifty_options[1:], world.nifty_index, 777], 2: [888]},  # 888: a connection not planned
    )
    # beta's feed is not running: no report.

    with django_assert_num_queries(2):  # accounts, the plan's tokens
        rows = feed_plan_coverage(client=redis_client, plan=world.plan)

    by_key = {(row.account, row.connection): row for row in rows}
    assert list(by_key) == [("alpha", 0), ("alpha", 2), ("beta", 0), ("beta", 1)]
    alpha0 = by_key["alpha", 0]
    assert alpha0.reported_plan_version == 2
    assert (alpha0.tokens.planned, alpha0.tokens.subscribed) == (6, 6)
    assert (alpha0.tokens.missing_count, alpha0.tokens.missing) == (1, (dropped,))
    assert (alpha0.tokens.unplanned_count, alpha0.tokens.unplanned) == (1, (777,))
    alpha2 = by_key["alpha", 2]
    assert (alpha2.tokens.planned, alpha2.tokens.subscribed, alpha2.tokens.unplanned) == (0, 1, (888,))
    beta0, beta1 = by_key["beta", 0], by_key["beta", 1]
    assert beta0.reported_plan_version is None
    assert (beta0.tokens.planned, beta0.tokens.subscribed, beta0.tokens.missing_count) == (3, 0, 3)
    assert (beta1.tokens.planned, beta1.tokens.missing) == (
        2,
        tuple(sorted([world.banknifty_options[2], world.banknifty_index])),
    )


@pytest.mark.django_db
def test_coverage_caps_the_token_lists_not_the_counts(redis_client: redis.Redis) -> None:
    world = plan_world()
    feed_report(redis_client, world.alpha, 1, {0: []})

    (alpha0,) = [
        row
        for row in feed_plan_coverage(client=redis_client, plan=world.plan, sample=2)
        if row.account == "alpha"
    ]

    assert alpha0.reported_plan_version == 1
    assert alpha0.tokens.missing_count == 6
    assert alpha0.tokens.missing == tuple(sorted([*world.nifty_options, world.nifty_index])[:2])


@pytest.mark.django_db
def test_before_any_plan_only_the_reported_tokens_show(redis_client: redis.Redis) -> None:
    account = BrokerAccountFactory(name="solo")
    feed_report(redis_client, account, 0, {0: [5, 6]})

    overview = feed_plan_overview(client=redis_client)

    assert overview.plan is None and overview.last_drift is None
    (row,) = overview.connections
    assert (row.account, row.tokens.planned, row.tokens.unplanned_count) == ("solo", 0, 2)


@pytest.mark.django_db
def test_overview_is_the_plan_in_force_with_the_last_drift_fixed(
    redis_client: redis.Redis, django_assert_num_queries
) -> None:
    world = plan_world()
    at = datetime(2026, 12, 8, 4, 0, 15, tzinfo=UTC)
    fix = {
        "at": at.timestamp(),
        "plan_version": 2,
        "drifts": [{"account_id": world.beta.pk, "planned": 5, "reported": 3, "stale_version": True}],
    }
    redis_client.set(DRIFT_LAST_KEY, json.dumps(fix))

    with django_assert_num_queries(3):  # the plan in force, accounts, its tokens
        overview = feed_plan_overview(client=redis_client)

    assert overview.plan == world.plan
    assert len(overview.connections) == 3
    assert overview.last_drift is not None
    assert overview.last_drift.at == at
    assert overview.last_drift.plan_version == 2
    assert overview.last_drift.drifts == (AccountDrift(world.beta.pk, 5, 3, stale_version=True),)


def test_no_drift_fix_before_the_reconcilers_first_pass(redis_client: redis.Redis) -> None:
    assert feed_drift_last(client=redis_client) is None


@pytest.mark.django_db
def test_assignment_list_explains_each_token_in_one_query(django_assert_num_queries) -> None:
    world = plan_world()

    with django_assert_num_queries(1):
        rows = [
            (
                row.plan.version,
                row.account.name,
                row.connection,
                row.tradingsymbol,
                row.strike_offset,
                row.primary,
            )
            for row in feed_assignment_list(plan=world.plan)
        ]

    assert len(rows) == 11
    assert rows[0] == (2, "alpha", 0, "NIFTY 50", None, True)
    assert rows[1][3:5] == ("NIFTY26120824750CE", -2)
    assert [row[1:3] + row[5:] for row in rows if row[3] == "NIFTY BANK"] == [
        ("beta", 0, True),
        ("beta", 1, False),
    ]


@pytest.mark.django_db
def test_assignment_list_filters() -> None:
    world = plan_world()

    def tokens(**filters: object) -> list[int]:
        return [row.instrument_token for row in feed_assignment_list(plan=world.plan, **filters)]

    assert tokens(account=world.alpha) == sorted([world.nifty_index, *world.nifty_options])
    assert tokens(underlying="BANKNIFTY", account=world.beta) == sorted(
        [*world.banknifty_options[:2], world.banknifty_index]
    ) + sorted([world.banknifty_options[2], world.banknifty_index])
    assert tokens(token=world.banknifty_index) == [world.banknifty_index] * 2
    assert tokens(underlying="SENSEX") == []
    assert [row.instrument_token for row in feed_assignment_list(plan=world.old)] == [111]


@pytest.mark.django_db
def test_a_reused_token_is_named_by_its_active_instrument() -> None:
    expired = OptionFactory(expiry=date(2026, 11, 24), is_active=False)
    OptionFactory(instrument_token=expired.instrument_token, expiry=date(2026, 12, 1))
    plan = FeedPlanFactory()
    FeedAssignmentFactory(plan=plan, instrument_token=expired.instrument_token)
    FeedAssignmentFactory(plan=plan, instrument_token=424242)  # not in the instruments dump

    symbols = {row.instrument_token: row.tradingsymbol for row in feed_assignment_list(plan=plan)}

    assert symbols == {expired.instrument_token: "NIFTY26120125000CE", 424242: None}
    assert Instrument.objects.filter(instrument_token=expired.instrument_token).count() == 2
