"""The feed's fan-out hook: one channel-layer message per chain per frame.

It runs after the greeks hook on the same frame and sends each chain's option rows, with their
greeks, and its underlying's index and futures rows to ``chain.<U>.<expiry>``: one message per
frame per chain, so a dashboard gets one delta per frame (two messages per frame would need two
deltas and exhaust the connection's send budget, measured with bench/fanout.py). The index and
futures rows also go to ``underlying.<U>`` for scripts that subscribe to those tokens alone. With
the Redis pub/sub layer each group_send is one PUBLISH, however many browsers watch.
"""

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

# Decimals kept on the wire: beyond what any screen shows, and rows ~40 % shorter than full floats,
# which every connection pays for in compression and parsing (the REST chain has full precision).
GREEK_DECIMALS = {"iv": 6, "iv_mid": 6, "delta": 6, "gamma": 8, "theta": 4, "vega": 4}
CHANGE_DECIMALS = 4
STATUS_LABELS = {int(status): status.label for status in GreeksStatus}


class StreamFanoutHook:
    def __init__(self, channel_layer: Any, greeks: GreeksHook) -> None:
        self._layer = channel_layer
        self._greeks = greeks

    async def __call__(self, batch: TickBatch) -> None:
        table = self._greeks.table
        if table is None or batch.ticks.size == 0:
            return
        rows, known = table.lookup(batch.ticks["instrument_token"])
        frame = batch.derived.get("greeks")
        options = known & np.isin(table.kind[rows], (KIND_CE, KIND_PE))
        companions = _companion_rows(batch.ticks, known & ~options, rows, table)
        chain_ids = {int(chain_id) for chain_id in np.unique(table.chain[rows[options]])}
        chain_ids |= {i for i, chain in enumerate(table.chains) if chain.underlying in companions}
        for chain_id in sorted(chain_ids):
            mask = options & (table.chain[rows] == chain_id)
            underlying_rows = companions.get(table.chains[chain_id].underlying, [])
            await self._send_chain(
                batch.ticks, mask, underlying_rows, table, chain_id, frame, batch.received_at
            )
        for underlying, companion_rows in companions.items():
            message = rows_message(companion_rows, received_at=batch.received_at)
            await self._layer.group_send(underlying_group(underlying), message)

    async def _send_chain(
        self,
        ticks: npt.NDArray[np.void],
        mask: npt.NDArray[np.bool_],
        underlying_rows: list[Row],
        table: InstrumentTable,
        chain_id: int,
        frame: FrameGreeks | None,
        received_at: float,
    ) -> None:
        chain = table.chains[chain_id]
        selected = ticks[mask]
        records = _records_for(selected["instrument_token"], frame)
        message = rows_message(
            _option_rows(selected, records) + underlying_rows,
            received_at=received_at,
            chain=f"{chain.underlying}:{chain.expiry.isoformat()}",
            fields=_chain_fields(frame, chain_id, table),
        )
        await self._layer.group_send(chain_group(chain.underlying, chain.expiry), message)


def _companion_rows(
    ticks: npt.NDArray[np.void],
    mask: npt.NDArray[np.bool_],
    rows: npt.NDArray[np.intp],
    table: InstrumentTable,
) -> dict[str, list[Row]]:
    """The frame's index and futures rows, by underlying."""
    by_underlying: dict[str, list[Row]] = {}
    for tick, row in zip(ticks[mask], rows[mask].tolist(), strict=True):
        underlying = _underlying_of(table, row)
        if underlying is not None:
            by_underlying.setdefault(underlying, []).append(_companion_row(tick))
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
