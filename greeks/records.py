"""The greeks the tick path keeps next to the latest tick: one Redis hash of packed float64 records.

``greeks:latest`` maps an option's instrument token to one ``GREEKS_DTYPE`` record, and
``forward:<underlying>:<expiry>`` to one ``FORWARD_DTYPE`` record: the forward the chain's options
were last computed on. Both kinds are written by one HSET per frame (greeks.hook), so a reader gets
a chain's options and its forward with one HMGET.

Units are the engine's (greeks.engine): iv a fraction, theta per calendar day, vega and rho per
1 percentage point. Times are epoch seconds: ``market_time`` is the exchange time the option's time
to expiry was measured from, ``computed_at`` the host clock when the record was written.
"""

from collections.abc import Sequence
from datetime import date
from enum import IntEnum
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from redis import Redis as SyncRedis

from ticks.feeds.latest import LATEST_KEY
from ticks.feeds.protocol import TICK_DTYPE

GREEKS_LATEST_KEY: Final = "greeks:latest"

GREEKS_DTYPE: Final = np.dtype(
    [
        ("iv", np.float64),  # from the last traded price
        ("iv_mid", np.float64),  # from the mid of the best bid and ask; NaN without both sides
        ("delta", np.float64),
        ("gamma", np.float64),
        ("theta", np.float64),
        ("vega", np.float64),
        ("rho", np.float64),
        ("status", np.float64),  # greeks.status.GreeksStatus of the last-price solve
        ("forward", np.float64),
        ("forward_source", np.float64),  # ForwardSource
        ("t_years", np.float64),
        ("market_time", np.float64),
        ("computed_at", np.float64),
    ]
)
FORWARD_DTYPE: Final = np.dtype(
    [
        ("forward", np.float64),
        ("forward_source", np.float64),
        ("t_years", np.float64),
        ("market_time", np.float64),
        ("computed_at", np.float64),
    ]
)
GreeksRecords = npt.NDArray[np.void]


class ForwardSource(IntEnum):
    """Where a chain's forward came from, best first."""

    NONE = 0
    FUTURE = 1  # the same-expiry future's last price
    PARITY = 2  # K + (C - P) e^{rT} on the priced pair with the smallest |C - P|
    INDEX = 3  # the index carried at the configured rate: S e^{rT}; the last resort

    @property
    def label(self) -> str:
        return self.name.lower()


class ChainKey(NamedTuple):
    underlying: str
    expiry: date


class ChainLatest(NamedTuple):
    """One chain's state in Redis, aligned with the tokens asked for."""

    ticks: npt.NDArray[np.void]  # TICK_DTYPE; a token that has not ticked has an all-zero row
    ticked: npt.NDArray[np.bool_]
    greeks: GreeksRecords  # GREEKS_DTYPE; NaN rows where no record exists
    computed: npt.NDArray[np.bool_]
    forward: np.void | None  # FORWARD_DTYPE


def forward_field(chain: ChainKey) -> str:
    return f"forward:{chain.underlying}:{chain.expiry.isoformat()}"


def blobs(records: npt.NDArray[np.void]) -> list[bytes]:
    """One ``bytes`` per record, sliced in C."""
    packed = np.ascontiguousarray(records)
    return packed.view(np.dtype((np.void, packed.dtype.itemsize))).tolist()


def empty_greeks(n: int) -> GreeksRecords:
    records = np.empty(n, dtype=GREEKS_DTYPE)
    records.view(np.float64)[:] = np.nan
    return records


def chain_latest_read(redis: SyncRedis, tokens: Sequence[int], chain: ChainKey) -> ChainLatest:
    """Latest ticks and greeks of ``tokens`` and the chain's forward, in one round trip."""
    if not tokens:
        raise ValueError("a chain has at least one option token")
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(LATEST_KEY, list(tokens))
    pipe.hmget(GREEKS_LATEST_KEY, [*tokens, forward_field(chain)])
    raw_ticks, raw_greeks = pipe.execute()
    ticks, ticked = _unpack(raw_ticks, TICK_DTYPE, np.zeros(len(tokens), TICK_DTYPE))
    greeks, computed = _unpack(raw_greeks[:-1], GREEKS_DTYPE, empty_greeks(len(tokens)))
    forward = None if raw_greeks[-1] is None else np.frombuffer(raw_greeks[-1], FORWARD_DTYPE)[0]
    return ChainLatest(ticks, ticked, greeks, computed, forward)


def forwards_read(redis: SyncRedis, chains: Sequence[ChainKey]) -> dict[ChainKey, np.void]:
    """The forward record of each chain that has one (one HMGET)."""
    if not chains:
        return {}
    raw = redis.hmget(GREEKS_LATEST_KEY, [forward_field(chain) for chain in chains])
    return {
        chain: np.frombuffer(blob, FORWARD_DTYPE)[0]
        for chain, blob in zip(chains, raw, strict=True)
        if blob is not None
    }


def _unpack(
    raw: list[bytes | None], dtype: np.dtype[np.void], out: npt.NDArray[np.void]
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.bool_]]:
    present = np.array([blob is not None for blob in raw], dtype=bool)
    if present.any():
        out[present] = np.frombuffer(b"".join(blob for blob in raw if blob is not None), dtype)
    return out, present
