"""Kite's wire formats for time: IST strings for REST payloads and candles."""

from datetime import datetime

from kitesim.clock import IST

KITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S"
CANDLE_TIMESTAMP = "%Y-%m-%dT%H:%M:%S%z"


def ist_timestamp(epoch: float) -> str:
    """``"yyyy-mm-dd hh:mm:ss"`` in IST: every timestamp field of Kite's REST payloads."""
    return datetime.fromtimestamp(epoch, tz=IST).strftime(KITE_TIMESTAMP)


def ist_candle_timestamp(epoch: float) -> str:
    """``"yyyy-mm-ddThh:mm:ss+0530"``: the first element of a historical candle."""
    return datetime.fromtimestamp(epoch, tz=IST).strftime(CANDLE_TIMESTAMP)


def ist_date(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=IST)


def parse_ist(text: str) -> float:
    """Epoch seconds of a Kite ``from``/``to`` value (``yyyy-mm-dd hh:mm:ss`` or ``yyyy-mm-dd``), IST.

    Raises ValueError for anything else.
    """
    for layout in (KITE_TIMESTAMP, "%Y-%m-%d"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=IST).timestamp()
        except ValueError:
            continue
    raise ValueError(f"not a Kite timestamp: {text!r}")
