"""Per-connection conflation for the live stream (pure: no Channels, no clock).

The group-message handler only merges rows into ``pending`` (latest row per token, as the JSON text
the feed encoded once; see ticks.stream) and chain fields into ``chains`` (latest per chain), so a
slow client holds at most one row per subscribed token however many frames arrive; the flush loop
takes everything pending at most once per interval and numbers it, so a client that sees a gap in
``seq`` asks for a fresh snapshot.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]
RowText = str  # one row, JSON-encoded by the feed


@dataclass(frozen=True, slots=True)
class Delta:
    seq: int
    rows: list[RowText]
    chains: dict[str, Row]
    received_at: float | None  # when the feed received the oldest frame in this delta (epoch s)
    newest_received_at: float | None  # ... and the newest: how fresh the delta is


@dataclass
class Conflator:
    pending: dict[int, RowText] = field(default_factory=dict)
    chains: dict[str, Row] = field(default_factory=dict)
    seq: int = 0
    received_at: float | None = None
    newest_received_at: float | None = None

    def merge(
        self,
        tokens: Sequence[int],
        rows: Sequence[RowText],
        wanted: Collection[int],
        received_at: float | None = None,
    ) -> None:
        """Keep the newest row of every wanted token; rows of other tokens are ignored."""
        kept = False
        for token, row in zip(tokens, rows, strict=True):
            if token in wanted:
                self.pending[token] = row
                kept = True
        if kept and received_at is not None:
            self.received_at = received_at if self.received_at is None else self.received_at
            self.newest_received_at = received_at

    def merge_chain(self, chain: str, fields: Row) -> None:
        self.chains[chain] = {**self.chains.get(chain, {}), **fields}

    def take(self) -> Delta | None:
        """The next numbered delta, or None when nothing changed since the last one."""
        if not self.pending and not self.chains:
            return None
        self.seq += 1
        delta = Delta(
            self.seq,
            list(self.pending.values()),
            dict(self.chains),
            self.received_at,
            self.newest_received_at,
        )
        self.pending.clear()
        self.chains.clear()
        self.received_at = self.newest_received_at = None
        return delta

    def restart(self) -> int:
        """Number a snapshot; deltas continue after it. Rows merged while the snapshot was read stay
        pending: the snapshot may predate them, and sending a row twice is harmless, missing it not."""
        self.seq += 1
        return self.seq
