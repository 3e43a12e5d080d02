"""A stored minute of one option's greeks, for tests that read history (export, schema, fuzz)."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from greeks.models import GreeksSnapshot
from ticks.models import Instrument


def greeks_snapshot(
    option: Instrument, taken_at: datetime, iv: float | None = 0.13, **extra: Any
) -> GreeksSnapshot:
    """Unsaved; ``iv=None`` is a minute without a price."""
    return GreeksSnapshot(
        underlying=option.name,
        expiry=option.expiry,
        taken_at=taken_at,
        forward=24_810.0,
        forward_source="future",
        atm_strike=Decimal(24_800),
        t_years=0.02,
        strike=option.strike,
        option_type=option.instrument_type,
        instrument_token=option.instrument_token,
        last_price=120.5,
        bid=120.0,
        ask=121.0,
        oi=1000,
        volume=50,
        iv=iv,
        iv_mid=None if iv is None else iv + 0.001,
        delta=0.5,
        gamma=0.001,
        theta=-12.0,
        vega=9.0,
        rho=1.5,
        status="ok" if iv is not None else "no_price",
        **extra,
    )
