"""The feed's fan-out hook: one channel-layer message per chain (and per underlying) per frame.

It runs after the greeks hook on the same frame and sends each chain's option rows, with their
greeks, to ``chain.<U>.<expiry>``, and the index and futures rows to ``underlying.<U>``. With the
Redis pub/sub layer each group_send is one PUBLISH, however many browsers watch.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

from greeks.hook import GreeksHook
from greeks.records import GreeksRecords
from greeks.status import GreeksStatus
from greeks.tickpath import KIND_CE, KIND_PE, FrameGreeks, InstrumentTable
from ticks.feeds.pipeline import TickBatch
from ticks.stream import chain_group, underlying_group

GREEK_FIELDS = ("iv", "iv_mid", "delta", "gamma", "theta", "vega")
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
        for chain_id in np.unique(table.chain[rows[options]]):
            mask = options & (table.chain[rows] == chain_id)
            await self._send_chain(batch.ticks, mask, table, int(chain_id), frame, batch.received_at)
        await self._send_companions(batch.ticks, known & ~options, rows, table, batch.received_at)

    async def _send_chain(
        self,
        ticks: npt.NDArray[np.void],
        mask: npt.NDArray[np.bool_],
        table: InstrumentTable,
        chain_id: int,
        frame: FrameGreeks | None,
        received_at: float,
    ) -> None:
        chain = table.chains[chain_id]
        selected = ticks[mask]
        records = _records_for(selected["instrument_token"], frame)
        message: dict[str, Any] = {"type": "stream.rows", "rows": _option_rows(selected, records)}
        message["received_at"] = received_at
        message["chain"] = f"{chain.underlying}:{chain.expiry.isoformat()}"
        message["fields"] = _chain_fields(frame, chain_id, table)
        await self._layer.group_send(chain_group(chain.underlying, chain.expiry), message)

    async def _send_companions(
        self,
        ticks: npt.NDArray[np.void],
        mask: npt.NDArray[np.bool_],
        rows: npt.NDArray[np.intp],
        table: InstrumentTable,
        received_at: float,
    ) -> None:
        if not mask.any():
            return
        by_underlying: dict[str, list[dict[str, Any]]] = {}
        for tick, row in zip(ticks[mask], rows[mask].tolist(), strict=True):
            underlying = _underlying_of(table, row)
            if underlying is not None:
                by_underlying.setdefault(underlying, []).append(_companion_row(tick))
        for underlying, companion_rows in by_underlying.items():
            message = {"type": "stream.rows", "rows": companion_rows, "received_at": received_at}
            await self._layer.group_send(underlying_group(underlying), message)


def _records_for(tokens: npt.NDArray[np.int64], frame: FrameGreeks | None) -> GreeksRecords | None:
    """The frame's greeks record of each token, aligned; None when the greeks hook computed none."""
    if frame is None or frame.tokens.size == 0:
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
        "change": ticks["change"].tolist(),
        "bid": ticks["bid_price"][:, 0].tolist(),
        "ask": ticks["ask_price"][:, 0].tolist(),
        "oi": ticks["oi"].tolist(),
        "volume": ticks["volume_traded"].tolist(),
    }
    if records is not None:
        for name in GREEK_FIELDS:
            columns[name] = [None if np.isnan(v) else v for v in records[name].tolist()]
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
        "change": float(tick["change"]),
    }
