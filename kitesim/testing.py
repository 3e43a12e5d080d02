"""Run a kitesim server on a free loopback port in a background thread, for tests and benches."""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from kitesim.accounts import DEMO_ACCOUNT, parse_account_spec
from kitesim.server import build_app, build_state
from kitesim.state import SimState

T = TypeVar("T")
START_TIMEOUT_S = 30.0


class KitesimThread:
    """``with KitesimThread(seed=7) as sim:`` gives ``sim.root``, ``sim.ws_root`` and ``sim.state``.

    Keyword arguments go to :func:`kitesim.server.build_state` (``speed``, ``start_epoch``,
    ``path``, ``strikes_each_side``, ...) except ``record``/``replay``, which go to ``build_app``.
    A trending market: ``KitesimThread(speed=60, path="trend", trend=TrendSpec(points_per_min=60))``
    (:class:`kitesim.trend.TrendSpec`; ``path="trend"`` alone takes its defaults).
    """

    def __init__(self, *, seed: int = 7, accounts: list[str] | None = None, **options: Any) -> None:
        self._accounts = accounts or [DEMO_ACCOUNT]
        self._app_options = {k: options.pop(k) for k in ("record", "replay") if k in options}
        self._state_options = {"seed": seed, **options}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="kitesim", daemon=True)
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None
        self.port = 0
        self.state: SimState | None = None
        self.api_key, self.api_secret, self.access_token = parse_account_spec(self._accounts[0])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_root(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> "KitesimThread":
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise TimeoutError("kitesim did not start")
        if self._error is not None:
            raise RuntimeError("kitesim failed to start") from self._error

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(START_TIMEOUT_S)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT_S)

    def call(self, fn: Callable[..., T | Awaitable[T]], *args: Any, timeout: float = 10.0) -> T:
        """Run ``fn(*args)`` on the server's loop (awaiting it if it returns an awaitable)."""

        async def invoke() -> T:
            result = fn(*args)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                return await result
            return result  # type: ignore[return-value]

        future: Future[T] = asyncio.run_coroutine_threadsafe(invoke(), self._loop)
        return future.result(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._boot())
        except Exception as exc:  # noqa: BLE001 - the thread edge: start() re-raises it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    async def _boot(self) -> None:
        self.state = build_state(accounts=self._accounts, **self._state_options)
        app = build_app(self.state, **self._app_options)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
