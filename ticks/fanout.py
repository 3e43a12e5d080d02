"""The feed's fan-out hook: one channel-layer message per chain per pump step of the market.

It runs after the greeks hook on each frame and gathers each chain's option rows, with their greeks,
and its underlying's index and futures rows for ``chain.<U>.<expiry>``, and the index and futures
rows alone for ``underlying.<U>`` (scripts that subscribe to those tokens). The planner may spread a
chain over an account's connections, each of which frames on its own, a few ms apart; the hook
gathers until no frame has come for GATHER_QUIET_S (at most GATHER_MAX_S after the first) and then
sends one message per group, the newest row per token. One message per chain per step is one delta
per step on every dashboard: two would need two deltas and spend the connection's send budget twice
as fast as frames come. With the Redis pub/sub layer each group_send is one PUBLISH, however many
browsers watch.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from greeks.hook import GreeksHook
from greeks.records import GreeksRecords
from greeks.status import GreeksStatus
from greeks.tickpath import KIND_CE, KIND_PE, FrameGreeks, InstrumentTable
from ticks.conflation import Row
from ticks.feeds.pipeline import TickBatch
from ticks.stream import chain_group, rows_message, underlying_group

logger = logging.getLogger(__name__)

# Decimals kept on the wire: beyond what any screen shows, and rows ~40 % shorter than full floats,
# which every connection pays for in compression and parsing (the REST chain has full precision).
GREEK_DECIMALS = {"iv": 6, "iv_mid": 6, "delta": 6, "gamma": 8, "theta": 4, "vega": 4}
CHANGE_DECIMALS = 4
# One step's frames come on the account's connections back to back, each after the last one's greeks.
GATHER_QUIET_S = 0.003
GATHER_MAX_S = 0.025
STATUS_LABELS = {int(status): status.label for status in GreeksStatus}


@dataclass
class _Gathered:
    """What one group's next message will carry."""

    received_at: float  # the oldest frame's
    rows: dict[int, Row] = field(default_factory=dict)  # the newest row per token
    chain: str | None = None
    fields: Row = field(default_factory=dict)
    bars: dict[int, str] = field(default_factory=dict)  # the newest forming bar per token, as JSON text


class StreamFanoutHook:
    def __init__(self, channel_layer: Any, greeks: GreeksHook) -> None:
        self._layer = channel_layer
        self._greeks = greeks
        self._gathered: dict[str, _Gathered] = {}
        self._sending: asyncio.Task[None] | None = None
        self._last_frame_at = 0.0  # loop time
        self._bar_texts = BarTexts()

    async def __call__(self, batch: TickBatch) -> None:
        table = self._greeks.table
        if table is None or batch.ticks.size == 0:
            return
        rows, known = table.lookup(batch.ticks["instrument_token"])
        frame = batch.derived.get("greeks")
        bars = self._bar_texts(batch.derived.get("bars"))
        options = known & np.isin(table.kind[rows], (KIND_CE, KIND_PE))
        companions = _companion_rows(batch.ticks, known & ~options, rows, table)
        chain_ids = {int(chain_id) for chain_id in np.unique(table.chain[rows[options]])}
        chain_ids |= {i for i, chain in enumerate(table.chains) if chain.underlying in companions}
        for chain_id in chain_ids:
            chain = table.chains[chain_id]
            selected = batch.ticks[options & (table.chain[rows] == chain_id)]
            gathered = self._gather(chain_group(chain.underlying, chain.expiry), batch.received_at)
            records = _records_for(selected["instrument_token"], frame)
            own = companions.get(chain.underlying, _Companions())
            _put(gathered, _option_rows(selected, records) + own.rows, bars)
            gathered.chain = f"{chain.underlying}:{chain.expiry.isoformat()}"
            gathered.fields.update(_chain_fields(frame, chain_id, table))
            _stamp(gathered, max(int(selected["exchange_timestamp"].max(initial=0)), own.newest))
        for underlying, companion in companions.items():
            _put(self._gather(underlying_group(underlying), batch.received_at), companion.rows, bars)
        self._last_frame_at = asyncio.get_running_loop().time()
        if self._gathered and self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send_after_gathering())
            self._sending.add_done_callback(_report_failure)

    async def flush(self) -> None:
        """Send what is gathered now, one message per group."""
        gathered, self._gathered = self._gathered, {}
        for group, message in gathered.items():
            await self._layer.group_send(
                group,
                rows_message(
                    list(message.rows.values()),
                    received_at=message.received_at,
                    chain=message.chain,
                    fields=message.fields,
                    bars=message.bars,
                    published_at=time.time(),
                ),
            )

    def _gather(self, group: str, received_at: float) -> _Gathered:
        return self._gathered.setdefault(group, _Gathered(received_at))

    async def _send_after_gathering(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GATHER_MAX_S
        while (wait := min(self._last_frame_at + GATHER_QUIET_S, deadline) - loop.time()) > 0:
            await asyncio.sleep(wait)
        self._sending = None  # frames from here on gather for the next send
        await self.flush()


def _stamp(gathered: _Gathered, exchange_time: int) -> None:
    """The chain's ``exchange_time``: the newest exchange timestamp of its ticks in the step (frames
    of one step come from several connections, not necessarily in exchange-time order)."""
    if exchange_time > gathered.fields.get("exchange_time", 0):
        gathered.fields["exchange_time"] = exchange_time


def _put(gathered: _Gathered, rows: list[Row], bars: dict[int, str]) -> None:
    for row in rows:
        token = row["instrument_token"]
        gathered.rows[token] = row
        bar = bars.get(token)
        if bar is not None:
            gathered.bars[token] = bar


# The stream's bar: [start, open, high, low, close, volume].
_BAR_FIELDS = ("start", "open", "high", "low", "close", "volume")
_PRICES = ("open", "high", "low", "close")
# repr of a price p / 100 (p whole paise, 0 < price < 1e13): p // 100, ".", p % 100 without trailing
# zeros (no shorter decimal names the same float in that range, so this is the shortest round trip).
_PAISE = tuple(f"{n:02d}".rstrip("0") or "0" for n in range(100))
_NEVER = -2  # a start no bar has: a token's first bar always differs from it


class BarTexts:
    """Forming bars (ticks.bars.aggregator.BAR_DTYPE) as the stream's ``[start, open, high, low,
    close, volume]`` JSON text, by token. A token's text is encoded again only when one of those six
    changed since its last one (a bar that moves every frame is the exception: most options do not
    trade every second), and prices on the paise grid are written from integers, since a float's repr
    is most of the cost. The text is exactly ``f"[{start},{open!r},{high!r},{low!r},{close!r},{volume}]"``."""

    def __init__(self) -> None:
        self._tokens = np.empty(0, np.int64)  # sorted; the rows of _values and _texts
        self._values = np.empty((0, len(_BAR_FIELDS)), np.int64)  # the fields (prices as bits) of _texts
        self._texts: list[str] = []

    def __call__(self, bars: npt.NDArray[np.void] | None) -> dict[int, str]:
        if bars is None or bars.size == 0:
            return {}
        tokens = bars["instrument_token"]
        values = np.empty((bars.size, len(_BAR_FIELDS)), np.int64)
        values[:, 0], values[:, -1] = bars["start"], bars["volume"]
        for column, name in enumerate(_PRICES, 1):
            values[:, column] = bars[name].view(np.int64)  # the bits: -0.0 is not 0.0 in text
        at = self._rows(tokens)
        changed = np.flatnonzero((self._values[at] != values).any(axis=1))
        if changed.size:
            self._values[at[changed]] = values[changed]
            for row, text in zip(at[changed].tolist(), _bar_texts(bars[changed]), strict=True):
                self._texts[row] = text
        texts = self._texts
        return dict(zip(tokens.tolist(), [texts[row] for row in at.tolist()], strict=True))

    def _rows(self, tokens: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
        """Each token's row, adding the tokens not seen before (rare: a plan change)."""
        at = np.minimum(np.searchsorted(self._tokens, tokens), max(self._tokens.size - 1, 0))
        if self._tokens.size == 0 or not (self._tokens[at] == tokens).all():
            grown = np.union1d(self._tokens, tokens)
            old_at = np.searchsorted(grown, self._tokens)
            values = np.full((grown.size, len(_BAR_FIELDS)), _NEVER, np.int64)
            values[old_at] = self._values
            texts = [""] * grown.size
            for old, new in enumerate(old_at.tolist()):
                texts[new] = self._texts[old]
            self._tokens, self._values, self._texts = grown, values, texts
            at = np.searchsorted(grown, tokens)
        return at


def _bar_texts(bars: npt.NDArray[np.void]) -> list[str]:
    """Each bar's stream text; prices are finite, so a float's repr is its JSON."""
    prices = np.column_stack([bars[name] for name in _PRICES])
    in_range = (prices > 0) & (prices < 1e13)
    paise = np.rint(np.where(in_range, prices, 0) * 100)
    on_grid = (in_range & (paise / 100 == prices)).all(axis=1)
    whole, fraction = np.divmod(np.where(on_grid[:, None], paise, 0).astype(np.int64), 100)
    starts, volumes = bars["start"], bars["volume"]
    if on_grid.all():  # the usual case: no row order to restore
        return [
            f"[{start},{o}.{_PAISE[of]},{h}.{_PAISE[hf]},{low}.{_PAISE[lf]},{c}.{_PAISE[cf]},{volume}]"
            for start, o, h, low, c, of, hf, lf, cf, volume in zip(
                starts.tolist(), *whole.T.tolist(), *fraction.T.tolist(), volumes.tolist(), strict=True
            )
        ]
    texts = [f"[{start},{o!r},{h!r},{low!r},{c!r},{volume}]" for start, o, h, low, c, volume in zip(
        starts.tolist(), *prices.T.tolist(), volumes.tolist(), strict=True
    )]  # fmt: skip
    rows = np.flatnonzero(on_grid)
    for row, text in zip(rows.tolist(), _bar_texts(bars[rows]), strict=True):
        texts[row] = text
    return texts


def _report_failure(task: asyncio.Task[None]) -> None:
    """A failed send (Redis down) loses one step of live rows, not the feed: logged, not raised."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("stream fan-out: sending a step's rows failed", exc_info=task.exception())


@dataclass
class _Companions:
    """One underlying's index and futures rows in a frame."""

    rows: list[Row] = field(default_factory=list)
    newest: int = 0  # their newest exchange timestamp (0: none stamped, as in ltp mode)


def _companion_rows(
    ticks: npt.NDArray[np.void],
    mask: npt.NDArray[np.bool_],
    rows: npt.NDArray[np.intp],
    table: InstrumentTable,
) -> dict[str, _Companions]:
    """The frame's index and futures rows, by underlying."""
    by_underlying: dict[str, _Companions] = {}
    for tick, row in zip(ticks[mask], rows[mask].tolist(), strict=True):
        underlying = _underlying_of(table, row)
        if underlying is not None:
            companions = by_underlying.setdefault(underlying, _Companions())
            companions.rows.append(_companion_row(tick))
            companions.newest = max(companions.newest, int(tick["exchange_timestamp"]))
    return by_underlying


def _records_for(tokens: npt.NDArray[np.int64], frame: FrameGreeks | None) -> GreeksRecords | None:
    """The frame's greeks record of each token, aligned; None when the greeks hook computed none."""
    if frame is None or frame.tokens.size == 0 or tokens.size == 0:
        return None
    order = np.argsort(frame.tokens)
    at = np.searchsorted(frame.tokens, tokens, sorter=order)
    at = order[np.minimum(at, order.size - 1)]
    records = frame.records[at].copy()
    missing = frame.tokens[at] != tokens
    records.view(np.float64).reshape(len(records), -1)[missing] = np.nan
    return records


def _option_rows(ticks: npt.NDArray[np.void], records: GreeksRecords | None) -> list[dict[str, Any]]:
    columns: dict[str, list[Any]] = {
        "instrument_token": ticks["instrument_token"].tolist(),
        "last_price": ticks["last_price"].tolist(),
        "change": np.round(ticks["change"], CHANGE_DECIMALS).tolist(),
        "bid": ticks["bid_price"][:, 0].tolist(),
        "ask": ticks["ask_price"][:, 0].tolist(),
        "oi": ticks["oi"].tolist(),
        "volume": ticks["volume_traded"].tolist(),
        "last_trade_time": [t or None for t in ticks["last_trade_time"].tolist()],  # 0: none (ltp, quote)
    }
    if records is not None:
        for name, decimals in GREEK_DECIMALS.items():
            columns[name] = [
                None if v != v else v for v in np.round(records[name], decimals).tolist()
            ]  # NaN -> null
        columns["status"] = [
            None if np.isnan(s) else STATUS_LABELS[int(s)] for s in records["status"].tolist()
        ]
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _chain_fields(frame: FrameGreeks | None, chain_id: int, table: InstrumentTable) -> dict[str, Any]:
    if frame is None:
        return {}
    chain = table.chains[chain_id]
    for key, forward in zip(frame.chains, frame.forwards, strict=True):
        if key == chain and np.isfinite(forward["forward"]):
            value = float(forward["forward"])
            strikes = table.strike[(table.chain == chain_id)]
            atm = float(strikes[np.argmin(np.abs(strikes - value))]) if strikes.size else None
            return {"forward": value, "atm_strike": atm, "t_years": float(forward["t_years"])}
    return {}


def _underlying_of(table: InstrumentTable, row: int) -> str | None:
    chain_id = int(table.chain[row])
    if chain_id >= 0:
        return table.chains[chain_id].underlying
    holders = np.flatnonzero(table.chain_index == row)  # an index row: the chains it prices
    return table.chains[int(holders[0])].underlying if holders.size else None


def _companion_row(tick: np.void) -> dict[str, Any]:
    return {
        "instrument_token": int(tick["instrument_token"]),
        "last_price": float(tick["last_price"]),
        "change": round(float(tick["change"]), CHANGE_DECIMALS),
    }
