"""Writes for greeks: the minute snapshot of every live chain."""

from dataclasses import asdict
from datetime import datetime
from typing import Any

import redis

from greeks.models import GreeksSnapshot
from greeks.records import forwards_read
from greeks.selectors import Chain, OptionQuote, greeks_chain_live, greeks_watched_chains


def greeks_snapshot_take(*, redis_client: redis.Redis) -> int:
    """Store the current minute of every watched chain the tick path has computed, in one bulk insert.

    Returns the rows offered; a chain whose minute is already stored (no new market time since the
    last run, or a second run in the same minute) is skipped by the unique constraint.
    """
    live = forwards_read(redis_client, greeks_watched_chains())
    rows: list[GreeksSnapshot] = []
    for chain_key in live:
        chain = greeks_chain_live(
            underlying=chain_key.underlying, expiry=chain_key.expiry, redis_client=redis_client
        )
        if chain.as_of is not None:
            rows += _snapshot_rows(chain, chain.as_of.replace(second=0, microsecond=0))
    GreeksSnapshot.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _snapshot_rows(chain: Chain, taken_at: datetime) -> list[GreeksSnapshot]:
    header = {
        "underlying": chain.underlying,
        "expiry": chain.expiry,
        "taken_at": taken_at,
        "forward": chain.forward,
        "forward_source": chain.forward_source,
        "atm_strike": chain.atm_strike,
        "t_years": chain.t_years,
    }
    return [
        GreeksSnapshot(**header, strike=strike.strike, option_type=kind, **_stored(quote))
        for strike in chain.strikes
        for kind, quote in (("CE", strike.call), ("PE", strike.put))
        if quote is not None
    ]


def _stored(quote: OptionQuote) -> dict[str, Any]:
    """The quote's stored fields: the last trade time lives in the latest-tick cache only."""
    fields = asdict(quote)
    del fields["last_trade_time"]
    return fields
