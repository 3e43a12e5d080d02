"""What the live stream carries: group names, chain snapshots, and the row format of deltas.

Fan-out groups (one group_send per group per frame, never per tick):
  ``chain.<UNDERLYING>.<YYYY-MM-DD>``  the options of one chain, with its index and futures
  ``underlying.<UNDERLYING>``          the index and futures alone (the forward's sources)
A chain subscription joins its chain group; a token subscription joins the groups its tokens
travel in. Either way the consumer keeps only the rows it asked for.

Rows travel pre-encoded: the feed turns each row into its JSON text once per frame
(:func:`rows_message`), consumers keep those texts per token and splice them into their deltas
(:func:`delta_text`), so no web process decodes or re-encodes a row per connection.
"""

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from django.conf import settings

from greeks.selectors import Chain, greeks_chain_live
from tickerproject.bounds import UNDERLYING_NAME
from tickerproject.exceptions import NotFoundError
from ticks.bars.selectors import bars_oi_previous_close
from ticks.clocks import market_now
from ticks.conflation import Delta, Row
from ticks.market_time import IST
from ticks.models import Instrument
from ticks.selectors import underlying_index

OPTION_TYPES = (Instrument.Type.CE, Instrument.Type.PE)
ROWS_MESSAGE = "stream.rows"  # merged by StreamConsumer._rows_merge


class StreamError(Exception):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def chain_group(underlying: str, expiry: date) -> str:
    return f"chain.{_group_name(underlying)}.{expiry.isoformat()}"


def underlying_group(underlying: str) -> str:
    return f"underlying.{_group_name(underlying)}"


def _group_name(underlying: str) -> str:
    """An underlying in a group name, which Channels limits to letters, digits, "-", "_" and ".": "&"
    (M&M) is written "_26"; Kite's names (tickerproject.bounds.UNDERLYING_NAME) have no "_" of their own."""
    return underlying.replace("&", "_26")


def rows_message(
    rows: Sequence[Row],
    *,
    received_at: float | None = None,
    chain: str | None = None,
    fields: Row | None = None,
    bars: Mapping[int, str] | None = None,
    published_at: float | None = None,
) -> dict[str, Any]:
    """The group message for one frame's rows: their tokens, and each row as JSON text; and the
    forming 1-minute bars of its tokens, ``[start, open, high, low, close, volume]`` as JSON text.
    ``published_at`` (epoch s) is when the feed sent it, for the stream's send lag."""
    message: dict[str, Any] = {
        "type": ROWS_MESSAGE,
        "tokens": [row["instrument_token"] for row in rows],
        "rows": [json.dumps(row, separators=(",", ":")) for row in rows],
        "received_at": received_at,
        "published_at": published_at,
    }
    if chain is not None:
        message["chain"] = chain
        message["fields"] = fields or {}
    if bars:
        message["bar_tokens"] = list(bars)
        message["bars"] = list(bars.values())
    return message


def delta_text(delta: Delta) -> str:
    """A delta frame from rows already in JSON text: the rows are spliced in, not re-encoded. What
    connections share (a message's rows and bars kept whole, a chain's fields as they came: see
    ticks.conflation) is spliced once per web process and reused; only ``seq`` is the connection's."""
    if delta.rows_shared:
        body = _shared_text(delta.rows, lambda: _body_text(delta.rows, delta.bars))
    else:
        body = _body_text(delta.rows, delta.bars)
    chains = ",".join(
        _shared_text(fields, lambda name=name, fields=fields: f"{json.dumps(name)}:{_compact(fields)}")
        for name, fields in delta.chains.items()
    )
    return (
        f'{{"type":"delta","seq":{delta.seq},{body}"chains":{{{chains}}},'
        f'"received_at":{_number(delta.received_at)},"newest_received_at":{_number(delta.newest_received_at)}}}'
    )


def _body_text(rows: Sequence[str], bars: Mapping[int, str]) -> str:
    text = f'"rows":[{",".join(rows)}],'
    if bars:
        joined = ",".join(f'"{token}":{bar}' for token, bar in bars.items())
        text += f'"bars":{{{joined}}},'
    return text


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _number(value: float | None) -> str:
    """A feed time as JSON: a finite float's repr is its JSON (json.dumps costs ten times as much)."""
    return "null" if value is None else repr(value)


# Texts spliced from objects shared by connections, by the object's identity; each entry holds its
# object, so an id is not reused while its entry lives. A few steps of a few groups are in flight.
_SHARED_TEXTS: OrderedDict[int, tuple[object, str]] = OrderedDict()
SHARED_TEXTS_KEPT = 256


def _shared_text(shared: object, text: Callable[[], str]) -> str:
    kept = _SHARED_TEXTS.get(id(shared))
    if kept is not None and kept[0] is shared:
        return kept[1]
    made = text()
    _SHARED_TEXTS[id(shared)] = (shared, made)
    if len(_SHARED_TEXTS) > SHARED_TEXTS_KEPT:
        _SHARED_TEXTS.popitem(last=False)
    return made


def chain_parse(chain: object) -> tuple[str, date]:
    """``"NIFTY:2026-12-01"`` -> ("NIFTY", date); StreamError naming ``chain`` otherwise."""
    if not isinstance(chain, str) or chain.count(":") != 1:
        raise StreamError("chain is UNDERLYING:YYYY-MM-DD", field="chain")
    underlying, _, day = chain.partition(":")
    try:
        expiry = date.fromisoformat(day)
    except ValueError:
        raise StreamError(f"bad expiry in chain {chain!r}", field="chain") from None
    if not UNDERLYING_NAME.fullmatch(underlying):
        raise StreamError(f"bad underlying in chain {chain!r}", field="chain")
    return underlying, expiry


@dataclass(frozen=True, slots=True)
class ChainSubscription:
    groups: frozenset[str]  # what to join
    tokens: frozenset[int]  # what to keep: the chain's options, its index and futures


def chain_subscription(chain: object) -> ChainSubscription:
    """The groups and tokens of a chain, known before its snapshot is read, so that no frame
    published while the snapshot is built is dropped."""
    underlying, expiry = chain_parse(chain)
    options = set(
        Instrument.objects.filter(
            name=underlying, expiry=expiry, instrument_type__in=OPTION_TYPES, is_active=True
        ).values_list("instrument_token", flat=True)
    )
    if not options:
        raise StreamError(f"unknown chain {chain!r}", field="chain")
    return ChainSubscription(
        groups=frozenset({chain_group(underlying, expiry)}),
        tokens=frozenset(options | set(_companions(underlying))),
    )


def token_groups(tokens: list[int]) -> set[str]:
    """The groups that carry these tokens; StreamError naming unknown ones."""
    rows = list(
        Instrument.objects.filter(instrument_token__in=tokens, is_active=True).values_list(
            "instrument_token", "name", "expiry", "instrument_type", "exchange", "tradingsymbol"
        )
    )
    unknown = set(tokens) - {row[0] for row in rows}
    if unknown:
        raise StreamError(f"unknown tokens {sorted(unknown)[:10]}", field="tokens")
    underlying_of_index = {key: name for name, key in settings.UNDERLYING_INDEX.items()}
    groups = set()
    for _, name, expiry, kind, exchange, symbol in rows:
        if kind in OPTION_TYPES:
            groups.add(chain_group(name, expiry))
        elif kind == Instrument.Type.FUT:
            groups.add(underlying_group(name))
        elif f"{exchange}:{symbol}" in underlying_of_index:
            groups.add(underlying_group(underlying_of_index[f"{exchange}:{symbol}"]))
    return groups


def stream_snapshot(chain: object) -> dict[str, Any]:
    """The whole chain from the latest-tick and greeks caches, as the stream's rows (five queries and
    one Redis round trip). Rows carry ``oi_prev``, the OI at the previous session's close from the
    stored bars, for the change in OI; the header the chain's lot size and its underlying's future."""
    underlying, expiry = chain_parse(chain)
    try:
        live = greeks_chain_live(underlying=underlying, expiry=expiry)
    except NotFoundError:
        raise StreamError(f"unknown chain {chain!r}", field="chain") from None
    index = underlying_index(underlying=underlying)
    moment = live.as_of or market_now()  # the chain's market time; the market clock before any tick
    rows = _rows(live)
    oi_prev = bars_oi_previous_close(tokens=[row["instrument_token"] for row in rows], at=moment)
    companions = _companion_instruments(underlying)
    return {
        "underlying": underlying,
        "expiry": expiry.isoformat(),
        "forward": live.forward,
        "forward_source": live.forward_source,
        "atm_strike": None if live.atm_strike is None else float(live.atm_strike),
        "t_years": live.t_years,
        "as_of": None if live.as_of is None else live.as_of.isoformat(),
        "exchange_time": None if live.as_of is None else int(live.as_of.timestamp()),
        "rows": [{**row, "oi_prev": oi_prev.get(row["instrument_token"])} for row in rows],
        "companions": [token for token, _, _ in companions],
        "index_token": None if index is None else index.instrument_token,
        "future_token": _nearest_future(companions, moment.astimezone(IST).date()),
        "lot_size": _lot_size(underlying, expiry),
    }


def _rows(chain: Chain) -> list[dict[str, Any]]:
    rows = []
    for strike in chain.strikes:
        for kind, quote in (("CE", strike.call), ("PE", strike.put)):
            if quote is not None:
                rows.append({**asdict(quote), "strike": float(strike.strike), "type": kind})
    return rows


def _companions(underlying: str) -> list[int]:
    """The index and futures of the underlying (their rows arrive in underlying.<U>)."""
    return [token for token, _, _ in _companion_instruments(underlying)]


def _companion_instruments(underlying: str) -> list[tuple[int, str, date | None]]:
    """(token, instrument type, expiry) of the underlying's active index and futures (one query)."""
    exchange, _, symbol = settings.UNDERLYING_INDEX.get(underlying, ":").partition(":")
    index = Instrument.objects.filter(exchange=exchange, tradingsymbol=symbol, is_active=True)
    futures = Instrument.objects.filter(name=underlying, instrument_type=Instrument.Type.FUT, is_active=True)
    return list((index | futures).values_list("instrument_token", "instrument_type", "expiry"))


def _nearest_future(companions: list[tuple[int, str, date | None]], market_day: date) -> int | None:
    """The future expiring first on or after the market day (it still trades on its expiry day)."""
    live = [
        (expiry, token)
        for token, kind, expiry in companions
        if kind == Instrument.Type.FUT and expiry is not None and expiry >= market_day
    ]
    return min(live)[1] if live else None


def _lot_size(underlying: str, expiry: date) -> int | None:
    """The chain's options' lot size; None when the instrument dump gave none (0)."""
    lots = Instrument.objects.filter(
        name=underlying, expiry=expiry, instrument_type__in=OPTION_TYPES, is_active=True
    ).values_list("lot_size", flat=True)
    return lots.first() or None
