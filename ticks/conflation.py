"""Per-connection conflation for the live stream (pure: no Channels, no clock of its own).

The group-message handler only merges rows into ``pending`` (latest row per token, as the JSON text
the feed encoded once; see ticks.stream), forming 1-minute bars into ``bars`` (latest per token, also
pre-encoded) and chain fields into ``chains`` (latest per chain), so a
slow client holds at most one row per subscribed token however many frames arrive; the flush loop
takes everything pending when its ``SendBudget`` allows and numbers it, so a client that sees a gap
in ``seq`` asks for a fresh snapshot.

A connection that keeps up gets each message whole: nothing pending when it comes, every token in it
wanted. Then the message's own lists are kept as they are (``whole``), not copied token by token, and
the delta carries them; the web process decodes a message once for all its connections
(ticks.channel_layer), so those lists are the same objects in every such connection's delta, and the
delta's text is spliced from them once (ticks.stream.delta_text). A second message before the flush
spreads the first into ``pending`` and conflation goes on as before.
"""

from collections.abc import Collection, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]
RowText = str  # one row, JSON-encoded by the feed


@dataclass(frozen=True, slots=True)
class Delta:
    seq: int
    rows: Sequence[RowText]
    chains: dict[str, Row]
    received_at: float | None  # when the feed received the oldest frame in this delta (epoch s)
    newest_received_at: float | None  # ... and the newest: how fresh the delta is
    bars: dict[int, RowText] = field(default_factory=dict)  # token -> its newest forming bar
    rows_shared: bool = False  # ``rows`` is a message's own list, the same in other connections' deltas
    published_at: float | None = None  # when the feed published the oldest message in it (epoch s)
    conflated: int = 0  # messages folded into a later one in this delta (ticks.stream_metrics)


@dataclass(frozen=True, slots=True)
class Whole:
    """One message's rows or bars as it came: shared with other connections, never changed."""

    tokens: Sequence[int]
    texts: Sequence[RowText]

    def spread(self, into: dict[int, RowText]) -> None:
        into.update(zip(self.tokens, self.texts, strict=True))


@dataclass
class Conflator:
    pending: dict[int, RowText] = field(default_factory=dict)
    chains: dict[str, Row] = field(default_factory=dict)  # a message's fields as they came, or merged
    bars: dict[int, RowText] = field(default_factory=dict)  # replaced per token, never merged
    whole: Whole | None = None  # rows of the one message pending, when it is all there is
    whole_bars: Whole | None = None
    seq: int = 0
    received_at: float | None = None
    newest_received_at: float | None = None
    published_at: float | None = None
    merged: int = 0  # messages that brought something since the last delta

    def merge(
        self,
        tokens: Sequence[int],
        rows: Sequence[RowText],
        wanted: AbstractSet[int],
        received_at: float | None = None,
        bar_tokens: Sequence[int] = (),
        bars: Sequence[RowText] = (),
        published_at: float | None = None,
    ) -> None:
        """Keep the newest row and forming bar of every wanted token; other tokens are ignored."""
        fresh = not self.pending and self.whole is None and not self.bars and self.whole_bars is None
        if fresh and wanted.issuperset(tokens) and wanted.issuperset(bar_tokens):
            self.whole = Whole(tokens, rows) if rows else None
            self.whole_bars = Whole(bar_tokens, bars) if bars else None
            kept = bool(rows or bars)
        else:
            self._spread()
            kept = self._merge_wanted(self.pending, tokens, rows, wanted)
            kept = self._merge_wanted(self.bars, bar_tokens, bars, wanted) or kept
        if not kept:
            return
        self.merged += 1
        if received_at is not None:
            self.received_at = received_at if self.received_at is None else self.received_at
            self.newest_received_at = received_at
        if self.published_at is None:
            self.published_at = published_at

    @staticmethod
    def _merge_wanted(
        into: dict[int, RowText], tokens: Sequence[int], texts: Sequence[RowText], wanted: Collection[int]
    ) -> bool:
        kept = False
        for token, text in zip(tokens, texts, strict=True):
            if token in wanted:
                into[token] = text
                kept = True
        return kept

    def _spread(self) -> None:
        """Turn a whole message kept as it came into per-token entries, for merging into."""
        if self.whole is not None:
            self.whole.spread(self.pending)
            self.whole = None
        if self.whole_bars is not None:
            self.whole_bars.spread(self.bars)
            self.whole_bars = None

    def merge_chain(self, chain: str, fields: Row) -> None:
        """The chain's newest fields; a message's own dict while nothing is to merge it with."""
        known = self.chains.get(chain)
        self.chains[chain] = fields if known is None else {**known, **fields}

    def take(self) -> Delta | None:
        """The next numbered delta, or None when nothing changed since the last one."""
        if not (self.pending or self.chains or self.bars or self.whole or self.whole_bars):
            return None
        self.seq += 1
        whole, whole_bars = self.whole, self.whole_bars
        delta = Delta(
            self.seq,
            whole.texts if whole is not None else list(self.pending.values()),
            dict(self.chains),
            self.received_at,
            self.newest_received_at,
            dict(zip(whole_bars.tokens, whole_bars.texts, strict=True)) if whole_bars else dict(self.bars),
            rows_shared=whole is not None,
            published_at=self.published_at,
            conflated=max(self.merged - 1, 0),
        )
        self.pending.clear()
        self.chains.clear()
        self.bars.clear()
        self.whole = self.whole_bars = None
        self.received_at = self.newest_received_at = self.published_at = None
        self.merged = 0
        return delta

    def restart(self) -> int:
        """Number a snapshot; deltas continue after it. Rows merged while the snapshot was read stay
        pending: the snapshot may predate them, and sending a row twice is harmless, missing it not."""
        self.seq += 1
        return self.seq


@dataclass
class SendBudget:
    """One delta per ``interval`` on average with a burst of ``burst``: two token buckets, one on the
    wall clock and one on the feed's clock (``received_at`` of the newest pending frame). A delta goes
    when either holds a token, and takes one from both, so sends stay within one per interval of
    whichever clock ran further, plus the burst.

    The wall clock alone is not enough. A feed that frames exactly as often as the budget allows
    keeps a wall-clock bucket near empty, so one delta this process delivered late (a busy event
    loop) makes every later delta of that connection wait as long; bench/fanout.py measured p99 of
    35-73 ms at 100 clients that way. The feed's clock does not see this process's delays: frames
    100 ms apart at the feed earn one send each, however close together they were handled here.
    """

    interval: float
    burst: float
    wall_at: float
    frame_at: float | None = None
    by_wall: float = field(init=False)
    by_frames: float = field(init=False)

    def __post_init__(self) -> None:
        self.by_wall = self.by_frames = self.burst

    def wait(self, now: float, newest_frame_at: float | None) -> float:
        """0 when a delta may go now; else the seconds until the wall clock's bucket allows one.
        A newer frame may allow it sooner: ask again when one arrives."""
        self.by_wall = self._refilled(self.by_wall, now - self.wall_at)
        self.wall_at = now
        if newest_frame_at is not None and (self.frame_at is None or newest_frame_at > self.frame_at):
            if self.frame_at is not None:
                self.by_frames = self._refilled(self.by_frames, newest_frame_at - self.frame_at)
            self.frame_at = newest_frame_at
        if max(self.by_wall, self.by_frames) >= 1 - 1e-9:
            return 0.0
        return (1 - self.by_wall) * self.interval

    def spend(self) -> None:
        self.by_wall -= 1
        self.by_frames -= 1

    def _refilled(self, tokens: float, elapsed: float) -> float:
        return min(self.burst, tokens + elapsed / self.interval)
