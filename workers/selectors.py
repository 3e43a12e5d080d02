"""Reads of the feed plan in force."""

from collections import defaultdict

from workers.models import FeedAssignment, FeedPlan


def feed_plan_current() -> FeedPlan | None:
    return FeedPlan.objects.order_by("-version").first()


def feed_connection_plan(*, account_id: int) -> tuple[int, dict[int, dict[int, str]]]:
    """(plan version, connection -> {token: mode}) for one account; (0, {}) before any plan."""
    plan = feed_plan_current()
    if plan is None:
        return 0, {}
    rows = FeedAssignment.objects.filter(plan=plan, account_id=account_id).values_list(
        "connection", "instrument_token", "mode"
    )
    connections: dict[int, dict[int, str]] = defaultdict(dict)
    for connection, token, mode in rows:
        connections[connection][token] = mode
    return plan.version, dict(connections)
