"""Prometheus metrics of bars: the live ones labelled by broker account (like ticks.feeds.metrics), and
settlement against Kite's candles."""

from prometheus_client import Counter, Histogram

BARS_CLOSED = Counter("bars_closed_total", "Live 1-minute bars closed by the aggregator", ["account"])
LATE_TICKS = Counter(
    "bars_late_ticks_total", "Ticks for a minute already closed, dropped by the aggregator", ["account"]
)
FRAME_SECONDS = Histogram(
    "bars_frame_seconds",
    "Folding one frame into the bar aggregator",
    ["account"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
WRITE_SECONDS = Histogram(
    "bars_write_seconds",
    "One bulk upsert of an account's closed bars",
    ["account"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WRITE_FAILURES = Counter("bars_write_failures_total", "Bulk upserts of closed bars that failed", ["account"])
WRITE_DROPPED = Counter(
    "bars_write_dropped_total", "Closed bars dropped unwritten past the writer's cap", ["account"]
)

SETTLE_DIFF = Counter(
    "bars_settle_diff_total", "Settled minutes where Kite's candle differed from the live bar", ["field"]
)
SETTLE_PRICE_DIFF = Histogram(
    "bars_settle_price_diff_rupees",
    "Absolute difference between the live bar's price and Kite's, per settled minute",
    ["field"],
    buckets=(0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0),
)
SETTLED = Counter(
    "bars_settled_total", "Minutes written from Kite's candles", ["outcome"]
)  # replaced | inserted | filled | previous_close
