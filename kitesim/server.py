"""One aiohttp application: the WebSocket ticker (any path, on upgrade), Kite's REST API and ``/_sim``.

A background pump steps the market every ``pump_interval`` real seconds, skips the closed market
(after a session's 15:30 IST close the clock runs on for ``close_linger_s``, with no ticks, so clients
see the close, the expiry roll and the evening; then it jumps to the next trading day's 09:15), counts
stall faults down, drops sockets whose token expired, and hands the changes to the ticker hub.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path

from aiohttp import web

from kitesim import rest
from kitesim.accounts import DEMO_ACCOUNT, AccountBook
from kitesim.clock import IST, SimClock
from kitesim.control import register_control_routes
from kitesim.faults import FaultPlan
from kitesim.market import market_build
from kitesim.paths import session_close_epoch, session_day, session_open_epoch
from kitesim.replay import FrameRecorder, FrameReplay
from kitesim.state import SimState
from kitesim.ticker import HUB_KEY, TickerHub, ticker_handler
from kitesim.trend import TrendSpec
from kitesim.universe import is_trading_day

log = logging.getLogger("kitesim.server")
PUMP_INTERVAL_S = 0.1
# Simulated seconds the clock runs on after 15:30 before jumping to the next session: long enough for
# the service to see the close (its 15:30 expiry roll) on the same date, as it would in production.
CLOSE_LINGER_S = 600.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def default_start_epoch(host_now: datetime | None = None) -> float:
    """09:15 IST of the host's IST date (the next session's at weekends and holidays): live at any hour."""
    today = (host_now or datetime.now(IST)).astimezone(IST).date()
    return session_open_epoch(session_day(session_open_epoch(today)))


MAX_REQUEST_LINE = 64 * 1024


def build_state(
    *,
    seed: int = 7,
    speed: float = 1.0,
    accounts: list[str] | None = None,
    start_epoch: float | None = None,
    path: str = "replay",
    trend: TrendSpec | None = None,
    instruments_csv: Path | None = None,
    strikes_each_side: int = 40,
    close_linger_s: float = CLOSE_LINGER_S,
) -> SimState:
    start = default_start_epoch() if start_epoch is None else start_epoch
    clock = SimClock(start_epoch=start, speed=speed)
    market = market_build(
        seed,
        start,
        path=path,
        trend=trend,
        instruments_csv=instruments_csv,
        strikes_each_side=strikes_each_side,
    )
    return SimState(
        clock=clock,
        accounts=AccountBook(accounts or [DEMO_ACCOUNT], start),
        market=market,
        faults=FaultPlan(),
        close_linger_s=close_linger_s,
    )


def closed_evening(now: float, linger_s: float) -> bool:
    """Whether ``now`` is within ``linger_s`` after a session's 15:30 IST close: the clock runs on and
    the market is shut (no ticks; tokens and sockets stay valid until the jump to the next session)."""
    day = datetime.fromtimestamp(now, IST).date()
    close = session_close_epoch(day)
    return close <= now < close + linger_s and is_trading_day(day)


def session_roll(clock: SimClock) -> float:
    """Simulated now, after jumping over closed-market time to the next session's 09:15 IST."""
    now = clock.now()
    opens = session_open_epoch(session_day(now))
    if now < opens:
        clock.jump(opens - now)
        log.info("market closed: clock jumps to %s", datetime.fromtimestamp(opens, IST).isoformat())
    return clock.now()


def _count_down_stall(faults: FaultPlan, elapsed: float) -> None:
    if faults.stall_seconds > 0:
        faults.stall_seconds = max(0.0, faults.stall_seconds - elapsed)


def pump_once(state: SimState, hub: TickerHub, replay: FrameReplay | None, elapsed: float) -> None:
    _count_down_stall(state.faults, elapsed)
    if closed_evening(state.clock.now(), state.close_linger_s):
        hub.drop_expired()
        # The session's final slots, which the last pump before 15:30 fell short of: published once.
        if replay is None and (finished := state.market.finish_session()).any():
            hub.publish(finished, state.market.ltp_changed)
        return
    now = session_roll(state.clock)
    changed = state.market.advance(now)
    hub.drop_expired()
    if replay is not None:
        hub.publish_frames(replay.due(now))
    else:
        hub.publish(changed, state.market.ltp_changed)


async def market_pump(state: SimState, hub: TickerHub, replay: FrameReplay | None, interval: float) -> None:
    """Step at a fixed rate: the step's own duration comes out of the sleep, not on top of it."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(max(0.0, last + interval - time.monotonic()))
        tick = time.monotonic()
        try:
            pump_once(state, hub, replay, tick - last)
        except Exception:  # the process edge: one bad step must not stop the market
            log.exception("market pump step failed at simulated %s", state.clock.now())
        last = tick


@web.middleware
async def websocket_upgrade(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Kite's ticker lives at the root, but a client root may carry a path: upgrade on any path."""
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    if request.method == "GET" and upgrade and not request.path.startswith("/_sim"):
        return await ticker_handler(request)
    return await handler(request)


def _load_replay(replay: FrameReplay | Path | None, state: SimState) -> FrameReplay | None:
    if replay is None:
        return None
    frames = replay if isinstance(replay, FrameReplay) else FrameReplay.from_file(Path(replay))
    ahead = frames.start_epoch - state.clock.now()
    if ahead > 0:
        state.clock.jump(ahead)
    return frames


def build_app(
    state: SimState,
    *,
    record: Path | None = None,
    replay: FrameReplay | Path | None = None,
    pump_interval: float = PUMP_INTERVAL_S,
) -> web.Application:
    # Kite takes up to 1000 ``i=`` keys on one quote GET (~30 KiB of query string); aiohttp's
    # default 8 KiB request line would refuse it before a handler runs.
    app = web.Application(middlewares=[websocket_upgrade], handler_args={"max_line_size": MAX_REQUEST_LINE})
    frames = _load_replay(replay, state)
    recorder = FrameRecorder(Path(record)) if record is not None else None
    app[HUB_KEY] = TickerHub(state, recorder=recorder, replay=frames is not None)
    rest.register_routes(app, state)
    register_control_routes(app, state)

    async def pump_context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(market_pump(state, app[HUB_KEY], frames, pump_interval))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if recorder is not None:
            recorder.close()

    async def drop_sockets(app: web.Application) -> None:
        app[HUB_KEY].drop()  # open sockets would otherwise hold the shutdown for its whole timeout

    app.cleanup_ctx.append(pump_context)
    app.on_shutdown.append(drop_sockets)
    return app


def serve(
    state: SimState,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    record: Path | None = None,
    replay: FrameReplay | Path | None = None,
) -> None:
    """Run until interrupted (the management command's body)."""
    app = build_app(state, record=record, replay=replay)
    log.info("kitesim on http://%s:%s (ws://%s:%s)", host, port, host, port)
    web.run_app(app, host=host, port=port, print=None)
