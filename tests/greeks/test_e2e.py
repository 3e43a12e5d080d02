"""Done when: kitesim -> feed -> GreeksHook -> chain API shows live IVs that recover kitesim's smile.

kitesim prices every option by Black-76 on its forward S e^{0.065 T} and its smile
(kitesim.pricing.smile_vol) at the moment of its last trade, then rounds to the 0.05 tick. The IV the
hook finds is compared with that smile at the chain's forward and time; the tolerance per leg is
derived from the tick (see ``_tolerance``). Strikes whose price sits at the 0.05 floor are skipped.
"""

import asyncio
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis
import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from rest_framework.test import APIClient

from greeks.hook import GreeksHook
from kitesim.paths import session_close_epoch
from kitesim.pricing import RISK_FREE_RATE, SECONDS_PER_YEAR, forward_price, smile_vol
from kitesim.testing import KitesimThread
from kitesim.universe import UNDERLYINGS
from tests.ticks.factories import UserFactory
from tests.workers.conftest import WorkerProcess
from ticks.feeds.connection import ConnectionSettings, Credentials, FeedConnection
from ticks.feeds.latest import LatestTickCache, latest_ticks_read
from ticks.feeds.pipeline import FrameProcessor
from ticks.models import BrokerAccount, Instrument, WatchSpec
from workers.services import feed_plan_refresh, feed_supervise

pytestmark = pytest.mark.integration
FloatArray = npt.NDArray[np.float64]

TICK = 0.05
STRIKES_EACH_SIDE = 5


def _weekly_expiry() -> date:
    """The nearest NIFTY expiry without a future: the hook's forward must come from the options."""
    futures = set(
        Instrument.objects.filter(name="NIFTY", instrument_type="FUT").values_list("expiry", flat=True)
    )
    options = Instrument.objects.filter(name="NIFTY", instrument_type="CE").order_by("expiry")
    return next(
        expiry for expiry in options.values_list("expiry", flat=True).distinct() if expiry not in futures
    )


def _chain(expiry: date) -> dict[str, Any]:
    client = APIClient()
    client.force_authenticate(UserFactory())
    response = client.get(f"/api/v1/chains/NIFTY/{expiry.isoformat()}")
    assert response.status_code == 200, response.content
    return response.json()


def _near_atm(chain: dict[str, Any]) -> list[dict[str, Any]]:
    if chain["atm_strike"] is None:
        return []
    strikes = [row["strike"] for row in chain["strikes"]]
    centre = strikes.index(chain["atm_strike"])
    return chain["strikes"][max(centre - STRIKES_EACH_SIDE, 0) : centre + STRIKES_EACH_SIDE + 1]


def _live(chain: dict[str, Any]) -> bool:
    """Every leg within the strikes around ATM has greeks (of any status)."""
    rows = _near_atm(chain)
    return len(rows) >= STRIKES_EACH_SIDE and all(
        row[kind] and row[kind]["status"] not in ("pending", "no_price")
        for row in rows
        for kind in ("CE", "PE")
    )


def _live_chain(expiry: date) -> dict[str, Any] | None:
    chain = _chain(expiry)
    return chain if _live(chain) else None


def _kitesim_forward(sim: KitesimThread, expiry: date, at: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """kitesim's own NIFTY forward and years to expiry at simulated epoch(s) ``at``."""
    market = sim.state.market  # type: ignore[union-attr]
    at = np.asarray(at, dtype=float)
    spot = market.paths[list(UNDERLYINGS).index("NIFTY")].at(at)
    years = (session_close_epoch(expiry) - at) / SECONDS_PER_YEAR
    return forward_price(spot, years), years


def _forward_band(sim: KitesimThread, expiry: date, since: float, until: float) -> tuple[float, float]:
    """The lowest and highest kitesim forward over [since, until] (simulated epochs)."""
    forwards, _ = _kitesim_forward(sim, expiry, np.linspace(since, until, 64))
    return float(forwards.min()), float(forwards.max())


def _tolerance(
    leg: dict[str, Any], strike: float, forward: float, t_years: float, band: tuple[float, float]
) -> float:
    """|IV - smile| allowed for one leg, in vol (a fraction).

    The last price is rounded to the tick (half a tick), and it was priced on kitesim's forward at
    the moment of the trade, somewhere in ``band``, while the hook used ``forward``. A forward off by
    dF moves the leg's value by |delta| dF (Black-76 delta is dV/dF), and moves the smile the price
    came from by its slope in F times dF.
    """
    forward_error = max(abs(forward - band[0]), abs(forward - band[1]))
    rupees = 0.5 * TICK + abs(leg["delta"]) * forward_error
    smile_slope = abs(_smile(strike, forward + 0.5, t_years) - _smile(strike, forward - 0.5, t_years))
    return rupees / (100.0 * leg["vega"]) + smile_slope * forward_error  # vega is per vol point


def _smile(strike: float, forward: float, t_years: float) -> float:
    return float(smile_vol(np.array(strike), np.array(forward), np.array(t_years)))


def _check_forward(
    chain: dict[str, Any], sim: KitesimThread, expiry: date, ticks: npt.NDArray[np.void]
) -> None:
    """The chain's forward is kitesim's over the time its ATM legs traded, to a tick.

    Parity on tick prices is off by at most e^{rT} x one tick (C and P half a tick each); the index
    carried at the rate by e^{rT} x half a paisa.
    """
    as_of = datetime.fromisoformat(chain["as_of"]).timestamp()
    _, years = _kitesim_forward(sim, expiry, as_of)
    assert chain["t_years"] == pytest.approx(float(years), abs=1e-9)
    assert chain["forward_source"] in ("parity", "index")
    low, high = _forward_band(sim, expiry, float(ticks["last_trade_time"].min()), as_of + 1.0)
    slack = np.exp(RISK_FREE_RATE * years) * TICK
    assert low - slack <= chain["forward"] <= high + slack, (chain["forward"], low, high)


def _check_smile(chain: dict[str, Any], sim: KitesimThread, expiry: date, client: redis.Redis) -> None:
    legs = [(row["strike"], row[kind]) for row in _near_atm(chain) for kind in ("CE", "PE")]
    ticks = latest_ticks_read(client, [leg["instrument_token"] for _, leg in legs])
    _check_forward(chain, sim, expiry, ticks)
    forward, t_years = chain["forward"], chain["t_years"]
    checked, misses = 0, []
    for (strike, leg), tick in zip(legs, ticks, strict=True):
        if leg["status"] != "ok" or leg["last_price"] <= TICK:
            continue  # at the floor the quote does not determine a vol
        checked += 1
        truth = _smile(strike, forward, t_years)
        band = _forward_band(sim, expiry, tick["last_trade_time"], tick["exchange_timestamp"] + 1.0)
        tolerance = _tolerance(leg, strike, forward, t_years, band)
        if abs(leg["iv"] - truth) > tolerance:
            misses.append((strike, leg["last_price"], leg["iv"], truth, tolerance))
    assert checked >= 2 * STRIKES_EACH_SIDE, chain
    assert len(misses) <= 0.2 * checked, misses
    atm = next(row for row in chain["strikes"] if row["strike"] == chain["atm_strike"])
    assert all(atm[kind]["status"] == "ok" for kind in ("CE", "PE"))


async def _until(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await sync_to_async(check)()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.25)


def _credentials(sim: KitesimThread) -> Callable[[], Any]:
    async def credentials() -> Credentials:
        return Credentials(sim.api_key, sim.access_token)

    return credentials


async def test_the_hook_in_a_feed_recovers_kitesim_s_smile(
    fleet: dict[str, BrokerAccount],
    kitesim: KitesimThread,
    aredis: redis.asyncio.Redis,
    redis_client: redis.Redis,
) -> None:
    expiry = await sync_to_async(_weekly_expiry)()
    spot = kitesim.state.market.spot("NIFTY")  # type: ignore[union-attr]
    options = await sync_to_async(list)(
        Instrument.objects.filter(
            name="NIFTY", expiry=expiry, strike__gte=spot - 400, strike__lte=spot + 400
        ).values_list("instrument_token", flat=True)
    )
    index = await sync_to_async(Instrument.objects.get)(exchange="NSE", tradingsymbol="NIFTY 50")
    processor = FrameProcessor("e2e", hooks=[LatestTickCache(aredis), GreeksHook(aredis)])
    connection = FeedConnection(
        index=0,
        settings=ConnectionSettings(ws_root=kitesim.ws_root),
        credentials=_credentials(kitesim),
        on_frame=processor,
        on_text=lambda message: None,
        on_reconnect=lambda reason: None,
    )
    await connection.update(
        subscribe=dict.fromkeys([index.instrument_token, *options], "full"), unsubscribe=()
    )
    stop = asyncio.Event()
    streaming = asyncio.create_task(connection.run(stop))
    try:
        chain = await _until(lambda: _live_chain(expiry), timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(streaming, 10)

    await sync_to_async(_check_smile)(chain, kitesim, expiry, redis_client)


def test_a_celery_feed_serves_live_greeks_that_recover_kitesim_s_smile(
    fleet: dict[str, BrokerAccount],
    kitesim: KitesimThread,
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    expiry = _weekly_expiry()
    WatchSpec.objects.filter(underlying="NIFTY").update(
        expiry_kind=WatchSpec.ExpiryKind.WEEKLY, strikes_around_atm=STRIKES_EACH_SIDE + 2
    )
    assert feed_plan_refresh(client=redis_client).errors == []
    worker = start_worker()
    feed_supervise(client=redis_client)

    deadline = time.monotonic() + 40
    chain = _chain(expiry)
    while not _live(chain):
        assert time.monotonic() < deadline, f"no live greeks; worker log:\n{worker.log.read_text()[-3000:]}"
        time.sleep(0.5)
        chain = _chain(expiry)

    assert settings.GREEKS_MODEL == "black76"
    _check_smile(chain, kitesim, expiry, redis_client)
