"""What one ticker connection asked for: client message parsing and the token -> mode set.

Kite's quirks (ref/kite-connect-v3.md §1.3): subscribe is an idempotent set union with default mode
``quote``; at most 3000 instruments per connection, extra tokens are refused with a text error and the
connection is kept; unknown tokens are silently ignored; a structurally malformed payload (say a list
of lists) makes the server drop the TCP connection.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kitesim.wire import MODE_LTP, MODE_NAMES, MODE_QUOTE

MAX_TOKENS_PER_CONNECTION = 3000
TOO_MANY_TOKENS = "Can't subscribe to more than 3000 instruments."


class MalformedMessage(ValueError):
    """A payload Kite answers by dropping the connection."""


@dataclass(frozen=True, slots=True)
class ClientAction:
    action: str  # "subscribe" | "unsubscribe" | "mode"
    tokens: tuple[int, ...]
    mode: int | None = None


def _tokens(value: Any, action: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(t) is int for t in value):
        raise MalformedMessage(f"{action}: 'v' must be a list of integer tokens, got {value!r:.200}")
    return tuple(value)


def parse_client_message(text: str) -> ClientAction | str:
    """The action, or a reason string for a message that is ignored; raises MalformedMessage to drop."""
    try:
        message = json.loads(text)
    except ValueError:
        return "not JSON"
    if not isinstance(message, dict):
        return "not a JSON object"
    action, value = message.get("a"), message.get("v")
    if action in ("subscribe", "unsubscribe"):
        return ClientAction(action, _tokens(value, action))
    if action == "mode":
        if not isinstance(value, list) or len(value) != 2 or value[0] not in MODE_NAMES:
            raise MalformedMessage(f"mode: 'v' must be [ltp|quote|full, [tokens]], got {value!r:.200}")
        return ClientAction("mode", _tokens(value[1], "mode"), MODE_NAMES[value[0]])
    return f"unknown action {action!r:.50}"


@dataclass
class SubscriptionSet:
    """Token -> mode for one connection, plus a per-row mode array for the current market generation."""

    modes: dict[int, int] = field(default_factory=dict)
    generation: int = -1
    mode_of_row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))

    def __len__(self) -> int:
        return len(self.modes)

    def subscribe(self, tokens: tuple[int, ...], known: dict[int, int]) -> tuple[list[int], bool]:
        """Add known tokens in quote mode (existing ones keep theirs); (new tokens, refused any)."""
        added: list[int] = []
        refused = False
        for token in dict.fromkeys(tokens):
            if token in self.modes or token not in known:
                continue
            if len(self.modes) >= MAX_TOKENS_PER_CONNECTION:
                refused = True
                continue
            self.modes[token] = MODE_QUOTE
            added.append(token)
        self.generation = -1
        return added, refused

    def unsubscribe(self, tokens: tuple[int, ...]) -> None:
        for token in tokens:
            self.modes.pop(token, None)
        self.generation = -1

    def set_mode(self, tokens: tuple[int, ...], mode: int) -> list[int]:
        """Change the mode of subscribed tokens (others are ignored); the ones that changed."""
        changed = [t for t in tokens if self.modes.get(t, mode) != mode]
        for token in changed:
            self.modes[token] = mode
        self.generation = -1
        return changed

    def rows(self, known: dict[int, int], generation: int, size: int) -> np.ndarray:
        """Mode per market row (0 = not subscribed), rebuilt when the market or the set changed."""
        if generation != self.generation or self.mode_of_row.size != size:
            self.mode_of_row = np.zeros(size, dtype=np.int8)
            for token, mode in self.modes.items():
                row = known.get(token)
                if row is not None:
                    self.mode_of_row[row] = mode
            self.generation = generation
        return self.mode_of_row

    def wants(self, changed: np.ndarray, ltp_changed: np.ndarray) -> np.ndarray:
        """Rows to tick: any change for quote/full subscribers, a new last price for ltp ones."""
        modes = self.mode_of_row
        return (changed & (modes > MODE_LTP)) | (ltp_changed & (modes == MODE_LTP))
