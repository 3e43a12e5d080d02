"""Chain snapshots for the live stream, one read shared by the connections asking at once.

When hundreds of dashboards (re)connect together -- a web restart, a network blip -- each asks for
the same few chains, and each snapshot is a database and Redis read on Django's one sync thread.
Requests for a chain queue for its next read; a read serves every request queued before it began,
so each connection's snapshot is read after it joined the chain's groups and no frame falls between
the two. At most one read per chain runs at a time, with at most one more queued behind it.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async

from ticks.stream import stream_snapshot

Snapshot = dict[str, Any]


@dataclass
class _ChainReads:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queued: asyncio.Task[Snapshot] | None = None  # the next read, not begun: new callers join it
    running: asyncio.Task[Snapshot] | None = None


_by_loop: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _ChainReads]] = WeakKeyDictionary()


async def shared_snapshot(chain: str) -> Snapshot:
    """stream_snapshot(chain), read after this call began, shared with the calls queued with it."""
    loop = asyncio.get_running_loop()
    reads = _by_loop.setdefault(loop, {}).setdefault(chain, _ChainReads())
    if reads.queued is None:
        reads.queued = loop.create_task(_read(chain, reads))
    return await asyncio.shield(reads.queued)  # one caller going away does not cancel the others' read


async def _read(chain: str, reads: _ChainReads) -> Snapshot:
    async with reads.lock:
        reads.running, reads.queued = reads.queued, None  # later callers queue for the next read
        return await database_sync_to_async(stream_snapshot)(chain)
