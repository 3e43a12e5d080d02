"""Prometheus metrics of the live stream (the metrics contract of issue 15: ``stream_*``).

The per-delta counts sit on the hot path, one delta per connection per chain step, so they are not
written to Prometheus one by one: with PROMETHEUS_MULTIPROC_DIR set (``make run``), a Counter.inc
cost 2.5 µs and a Histogram.observe 6.6 µs here (an mmap write under a lock each), a fifth of the
0.05 ms a whole delta may cost. A ``SendTally`` keeps plain per-process sums instead (about 0.4 µs
a delta) and adds them to the metrics at most once per TALLY_FLUSH_S of loop time, and whenever a
connection ends. Connects, closes and slow-client drops are rare: they go straight to Prometheus.
"""

from bisect import bisect_left
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

# Gauges sum live web processes when PROMETHEUS_MULTIPROC_DIR is set (uvicorn --workers).
STREAM_CLIENTS = Gauge("stream_clients", "Open live-stream WebSockets", multiprocess_mode="livesum")
DELTAS_SENT = Counter("stream_deltas_sent", "Chain deltas written to client sockets")
DELTAS_CONFLATED = Counter(
    "stream_deltas_conflated", "Deltas merged into a later one for a client that was behind"
)
SLOW_CLIENT_DROPS = Counter("stream_slow_client_drops", "Clients closed 4408 for falling too far behind")
SEND_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SEND_LAG = Histogram(
    "stream_send_lag_seconds",
    "A delta's oldest group message published by the feed -> the delta written to the socket",
    buckets=SEND_LAG_BUCKETS,
)
TALLY_FLUSH_S = 1.0
_BOUNDS = (*SEND_LAG_BUCKETS, float("inf"))  # the histogram's own, +Inf last


@dataclass
class SendTally:
    """What this process's connections sent since the last flush."""

    sent: int = 0
    conflated: int = 0
    lag_counts: list[int] = field(default_factory=lambda: [0] * len(_BOUNDS))
    lag_sum: float = 0.0
    flushed_at: float = 0.0  # loop time

    def delta_sent(self, lag: float | None, conflated: int, now: float) -> None:
        """One delta written; ``lag`` from its oldest message's publishing (None when unknown),
        ``conflated`` the messages folded into it; ``now`` loop time (flushes when due)."""
        self.sent += 1
        self.conflated += conflated
        if lag is not None:
            self.lag_counts[bisect_left(_BOUNDS, lag)] += 1
            self.lag_sum += lag
        if now - self.flushed_at >= TALLY_FLUSH_S:
            self.flush(now)

    def flush(self, now: float) -> None:
        """Add the sums to the metrics and start again."""
        sent, conflated, counts, lag_sum = self.sent, self.conflated, self.lag_counts, self.lag_sum
        self.sent, self.conflated, self.lag_counts, self.lag_sum = 0, 0, [0] * len(_BOUNDS), 0.0
        self.flushed_at = now
        if sent:
            DELTAS_SENT.inc(sent)
        if conflated:
            DELTAS_CONFLATED.inc(conflated)
        if any(counts):
            histogram_add(SEND_LAG, counts, lag_sum)


def histogram_add(histogram: Histogram, counts: list[int], total: float) -> None:
    """Many observations at once: ``counts[i]`` fell in bucket i (the histogram's bounds, +Inf last)
    and ``total`` is their sum. prometheus_client has no public call for this; its Histogram keeps
    one value per bucket (non-cumulative) and the sum, as ``observe`` does (pinned by
    tests/ticks/test_stream_metrics.py against ``observe``)."""
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


STREAM_TALLY = SendTally()
