"""A bar as plain data, shared by the aggregator, the Kite candle readers and the writer."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BarRecord:
    instrument_token: int
    interval: str  # Kite's name: "minute", ..., "day"
    start: float  # epoch seconds of the bar's first instant
    open: float
    high: float
    low: float
    close: float
    volume: int = 0
    oi: int = 0
    ticks: int = 0  # feed ticks a live bar was built from; 0 for Kite's candles
    source: str = "live"  # ticks.models.Bar.Source
    settled: bool = False
