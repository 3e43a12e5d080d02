"""All Kite connections of one broker account (up to 3 x 3000 tokens), applying plans make-before-break."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from ticks.feeds.connection import ConnectionSettings, Credentials, FeedConnection, FrameHandler, TextHandler

logger = logging.getLogger(__name__)

# connection index -> {instrument token -> mode}
ConnectionPlan = Mapping[int, Mapping[int, str]]


class PlanTooLarge(ValueError):
    """A plan asked for more connections or tokens than the account may hold."""


class AccountPool:
    def __init__(
        self,
        *,
        account: str,
        max_connections: int,
        tokens_per_connection: int,
        settings: ConnectionSettings,
        credentials: Callable[[], Awaitable[Credentials]],
        on_frame: FrameHandler,
        on_text: TextHandler,
        on_reconnect: Callable[[str], None],
    ) -> None:
        self.account = account
        self._tokens_per_connection = tokens_per_connection
        self.connections = [
            FeedConnection(
                index=index,
                settings=settings,
                credentials=credentials,
                on_frame=on_frame,
                on_text=on_text,
                on_reconnect=on_reconnect,
                account=account,
            )
            for index in range(max_connections)
        ]
        self._running: dict[int, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._failed: asyncio.Queue[BaseException] = asyncio.Queue()

    async def apply(self, plan: ConnectionPlan) -> None:
        """Move to ``plan``: every subscription everywhere first, then every unsubscription."""
        self._check(plan)
        drops: dict[int, set[int]] = {}
        for connection in self.connections:
            wanted = plan.get(connection.index, {})
            additions = {t: m for t, m in wanted.items() if connection.wanted.get(t) != m}
            drops[connection.index] = set(connection.wanted) - set(wanted)
            if additions:
                await connection.update(subscribe=additions, unsubscribe=())
                self._ensure_running(connection)
        for connection in self.connections:
            if drops[connection.index]:
                await connection.update(subscribe={}, unsubscribe=drops[connection.index])

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``; re-raises the first connection failure (TokenRejected) after closing all."""
        stopping = asyncio.ensure_future(stop.wait())
        failing = asyncio.ensure_future(self._failed.get())
        try:
            await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            await self.close()
        if failing.done():
            raise failing.result()
        failing.cancel()

    async def close(self) -> None:
        self._stop.set()
        for connection in self.connections:
            await connection.close()
        if self._running:
            await asyncio.wait(self._running.values(), timeout=5)

    def subscriptions(self) -> dict[int, list[int]]:
        """What each live connection carries now (reported to Redis for the reconciler)."""
        return {c.index: sorted(c.wanted) for c in self.connections if c.connected}

    def _check(self, plan: ConnectionPlan) -> None:
        for index, tokens in plan.items():
            if not 0 <= index < len(self.connections):
                raise PlanTooLarge(f"{self.account}: connection {index} of {len(self.connections)} allowed")
            if len(tokens) > self._tokens_per_connection:
                raise PlanTooLarge(f"{self.account}: {len(tokens)} tokens on connection {index}")

    def _ensure_running(self, connection: FeedConnection) -> None:
        if connection.index in self._running or self._stop.is_set():
            return
        task = asyncio.create_task(connection.run(self._stop), name=f"{self.account}:{connection.index}")
        task.add_done_callback(self._on_connection_done)
        self._running[connection.index] = task

    def _on_connection_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._failed.put_nowait(task.exception())
