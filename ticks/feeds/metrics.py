"""Prometheus metrics of the feeds, labelled by broker account."""

from prometheus_client import Counter, Gauge, Histogram

FRAMES = Counter("feed_frames_total", "Binary frames received", ["account"])
TICKS = Counter("feed_ticks_total", "Packets decoded", ["account"])
DECODE_ERRORS = Counter("feed_decode_errors_total", "Frames that failed to decode", ["account"])
RECONNECTS = Counter("feed_reconnects_total", "Connection attempts after the first", ["account", "reason"])
TEXT_MESSAGES = Counter("feed_text_messages_total", "Text messages by type", ["account", "type"])
# Gauges sum live processes when PROMETHEUS_MULTIPROC_DIR is set (feeds run in Celery children).
SUBSCRIBED = Gauge(
    "feed_subscribed_tokens",
    "Tokens subscribed on live connections",
    ["account"],
    multiprocess_mode="livesum",
)
CONNECTIONS = Gauge(
    "feed_connections", "Open WebSocket connections to Kite", ["account"], multiprocess_mode="livesum"
)
PLANNED = Gauge(
    "feed_planned_tokens", "Tokens the plan gives the account", ["account"], multiprocess_mode="livesum"
)
PUBLISH_LAG = Histogram(
    "feed_exchange_to_publish_seconds",
    "Exchange timestamp to end of sinks, per frame",
    ["account"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
FEED_DRIFT = Gauge(
    "feed_drift_tokens",
    "Planned minus reported tokens, per account id",
    ["account_id"],
    multiprocess_mode="mostrecent",
)
REBALANCE_ASKED = Counter("feed_rebalance_asked_total", "Re-plans asked by a tick leaving an ATM band")
REBALANCE_LATENCY = Histogram(
    "feed_rebalance_seconds",
    "Crossing tick received to the first tick of a strike the re-plan added",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0),
)
