"""Prometheus metrics of the greeks on the tick path, labelled by broker account (like ticks.feeds.metrics)."""

from prometheus_client import Histogram

FRAME_SECONDS = Histogram(
    "greeks_frame_seconds",
    "Computing IV and Greeks of one frame's option rows",
    ["account"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
