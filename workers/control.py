"""Redis names shared by feeds, the supervisor and the reconciler (the control plane's wiring)."""

from django.conf import settings

# JSON: {"action": "plan", "version": n} | {"action": "stop", "account": id}. Pub/sub ignores the
# database number, so two deployments (or test runs) on one Redis need their own channel names.
CONTROL_CHANNEL: str = settings.FEED_CONTROL_CHANNEL
PLAN_VERSION_KEY = "feeds:plan:version"
# Written by the reconciler after each pass, JSON: {"at": epoch s, "plan_version": n,
# "drifts": [{"account_id", "planned", "reported", "stale_version"}]}.
DRIFT_LAST_KEY = "feeds:drift:last"


def feed_status_key(account_id: int) -> str:
    """What a live feed reports: holder, plan version, tokens per connection, last frame time."""
    return f"feeds:status:{account_id}"


def feed_starting_key(account_id: int) -> str:
    """Set by the supervisor when it enqueues a feed, cleared by the feed once it holds its lease."""
    return f"feeds:starting:{account_id}"
