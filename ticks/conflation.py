"""Per-connection conflation for the live stream (pure: no Channels, no clock).

The group-message handler only merges rows into ``pending`` (latest value per token), so a
slow client holds at most one row per subscribed token however many frames arrive; the flush
loop takes everything pending at most once per interval and numbers it, so a client that sees
a gap in ``seq`` knows to ask for a fresh snapshot.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


@dataclass
class Conflator:
    pending: dict[int, Row] = field(default_factory=dict)
    seq: int = 0
    merged: int = 0  # rows merged since the last flush (how much conflation saved)

    def merge(self, rows: Iterable[Row], wanted: Mapping[int, object] | set[int]) -> None:
        """Keep the newest row of every wanted token; rows of other tokens are ignored."""
        for row in rows:
            token = row["instrument_token"]
            if token in wanted:
                self.pending[token] = row
                self.merged += 1

    def take(self) -> tuple[int, list[Row]] | None:
        """The next numbered delta, or None when nothing changed since the last one."""
        if not self.pending:
            return None
        rows = list(self.pending.values())
        self.pending.clear()
        self.merged = 0
        self.seq += 1
        return self.seq, rows

    def restart(self) -> int:
        """A snapshot replaces everything pending; deltas continue after its sequence number."""
        self.pending.clear()
        self.seq += 1
        return self.seq
