"""What a ``/ws/stream/`` client may send, checked whole before any of it reaches the database, a
channel-layer group name or a dict key (README "Live stream").

A frame is at most STREAM_MAX_MESSAGE_BYTES (uvicorn's ``--ws-max-size`` is the same figure; a larger
one arriving here anyway is closed, not answered) and nests at most STREAM_MAX_JSON_DEPTH deep: the
json module recurses once per level, and a frame of a few thousand brackets raised RecursionError
out of the consumer. NaN and Infinity are not JSON. A token is an int of Kite's (unsigned 32-bit; a
bool is not one, and a token past 64 bits raised OverflowError out of SQLite's driver); a chain is
``UNDERLYING:YYYY-MM-DD`` in ASCII, short enough for a group name. Every refusal is a StreamError
naming the field, counted in ``stream_protocol_errors_total{field}``.
"""

import json
import re
from array import array
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from typing import Any, Literal

from django.conf import settings
from prometheus_client import Counter

from tickerproject.bounds import INSTRUMENT_TOKEN_MAX, UNDERLYING_NAME
from ticks.stream import StreamError

Action = Literal["subscribe", "unsubscribe", "snapshot"]
ACTIONS: tuple[Action, ...] = ("subscribe", "unsubscribe", "snapshot")
# Instrument.name is at most 64 characters; channels' group names must stay under 100.
CHAIN = re.compile(rf"({UNDERLYING_NAME.pattern}):([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})")
SHOWN_CHARS = 40  # of a client's value quoted back in an error

# A string, or an unterminated one to the end: never a failed match, so each quote is read once (a
# pattern that had to find the closing quote was quadratic on a frame of \" pairs: 4 s for 32 KB).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1, +1, -1, -1

PROTOCOL_ERRORS = Counter(
    "stream_protocol_errors_total", "Client messages the live stream refused, by field", ["field"]
)


class MessageTooLarge(Exception):
    """A frame over STREAM_MAX_MESSAGE_BYTES: the connection is closed, not answered."""


@dataclass(frozen=True, slots=True)
class StreamRequest:
    action: Action
    chain: str | None = None  # exactly one of chain and tokens
    tokens: frozenset[int] | None = None


def stream_request_parse(text: str | None, data: bytes | None) -> StreamRequest:
    """One client frame as a request; MessageTooLarge, or StreamError naming the field."""
    _check_size(text, data)
    if text is None:
        raise StreamError("send JSON text frames", field="message")
    message = _json_object(text)
    action = message.get("action")
    if action not in ACTIONS:  # a str compared by equality: an unhashable value is simply refused
        raise StreamError(f"unknown action {_shown(action)}", field="action")
    if "chain" in message:
        return StreamRequest(action, chain=chain_check(message["chain"]))
    if "tokens" in message and action != "snapshot":
        return StreamRequest(action, tokens=tokens_check(message["tokens"]))
    raise StreamError("give a chain or tokens", field="chain")


def chain_check(value: object) -> str:
    """``UNDERLYING:YYYY-MM-DD`` with a real date, as the API writes it (one spelling per chain)."""
    if not isinstance(value, str):
        raise StreamError("chain is UNDERLYING:YYYY-MM-DD", field="chain")
    match = CHAIN.fullmatch(value)
    if match is None:
        raise StreamError(f"chain is UNDERLYING:YYYY-MM-DD, not {_shown(value)}", field="chain")
    try:
        date.fromisoformat(match[2])
    except ValueError:
        raise StreamError(f"bad expiry in chain {_shown(value)}", field="chain") from None
    return value


def tokens_check(value: object) -> frozenset[int]:
    """A non-empty list of instrument tokens (ints 1 to INSTRUMENT_TOKEN_MAX; not bools, not floats)."""
    if not isinstance(value, list) or not value:
        raise StreamError("tokens is a non-empty list of instrument tokens", field="tokens")
    bad = [token for token in value if type(token) is not int or not 0 < token <= INSTRUMENT_TOKEN_MAX]
    if bad:
        raise StreamError(
            f"a token is an integer from 1 to {INSTRUMENT_TOKEN_MAX}, not {_shown(bad[0])}", field="tokens"
        )
    return frozenset(value)


def protocol_error_count(field: str) -> None:
    PROTOCOL_ERRORS.labels(field=field).inc()


def _check_size(text: str | None, data: bytes | None) -> None:
    limit = settings.STREAM_MAX_MESSAGE_BYTES
    size = len(data) if data is not None else 0
    if text is not None:
        # Only a frame near the limit is encoded to count its bytes; surrogates count as the 3 they are.
        size = len(text) if len(text) * 4 <= limit else len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise MessageTooLarge(f"a message is at most {limit} bytes")


def _json_object(text: str) -> dict[str, Any]:
    if _too_deep(text, settings.STREAM_MAX_JSON_DEPTH):
        raise StreamError(f"a message nests at most {settings.STREAM_MAX_JSON_DEPTH} deep", field="message")
    try:
        message = json.loads(text, parse_constant=_not_json)
    except ValueError:  # JSONDecodeError, NaN/Infinity, an integer of more than 4300 digits
        raise StreamError("invalid JSON", field="message") from None
    if not isinstance(message, dict):
        raise StreamError("a message is a JSON object", field="message")
    return message


def _too_deep(text: str, limit: int) -> bool:
    """Whether the brackets outside strings nest deeper than ``limit``. Wherever the text is valid
    JSON this is the parser's own nesting; where it is not, the parser stops there anyway."""
    if text.count("[") + text.count("{") <= limit:
        return False
    # Brackets alone, as +1/-1 bytes, summed by C loops: a frame of 32,000 "[]" took 50 ms in Python.
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode().translate(_STEPS)
    return max(accumulate(array("b", brackets)), default=0) > limit


def _not_json(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _shown(value: object) -> str:
    """A client's value quoted back, cut short: an error must not echo a 64 KB frame."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}…"
