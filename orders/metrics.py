"""Prometheus metrics of order handling (shared across Celery children via PROMETHEUS_MULTIPROC_DIR)."""

from prometheus_client import Counter, Histogram

ACCEPTED = Counter("orders_accepted_total", "Orders stored PENDING by the API (one per slice)")
KITE_CALLS = Counter("orders_kite_place_total", "place_order calls by outcome", ["outcome"])
ADOPTED = Counter("orders_adopted_total", "Orders found at Kite by tag after an unknown outcome")
BREAKER_OPENED = Counter("orders_breaker_opened_total", "Circuit-breaker openings", ["account"])
ENQUEUE_DEFERRED = Counter(
    "orders_enqueue_deferred_total", "Orders stored while the broker was unreachable, left to the sweeper"
)
REENQUEUED = Counter("orders_reenqueued_total", "Stuck orders re-enqueued by the sweeper")
DUPLICATE_SUSPECTED = Counter(
    "orders_duplicate_suspected_total", "Kite shows a second order with one of our tags (should stay 0)"
)
TO_KITE = Histogram(
    "orders_accept_to_kite_seconds",
    "Order accepted to Kite acknowledging it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
