"""Candles under the chain, through the whole pipeline: kitesim's ticks -> the feed's 1-minute bars (stored
when closed, the forming one on the stream) -> /api/v1/bars and the live stream -> the chart in chromium."""

import json
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from kitesim.testing import KitesimThread
from tests.asgi_server import free_port
from tests.browser.chromium import ARTIFACTS, PHONE, log_in
from tests.browser.web_process import WebProcess
from tests.waiting import until
from ticks.models import Bar, Instrument

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SESSION_OPEN_S = (9 * 60 + 15) * 60  # 09:15 IST, in seconds of the IST day
IST_OFFSET_S = 19_800
LOAD_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Nifty:
    index: int
    options: dict[int, tuple[str, float]]  # token -> (CE|PE, strike)


@pytest.fixture
def nifty(streaming: None) -> Nifty:
    """NIFTY's tokens, with two closed minutes of its index stored by the feed: read before the page opens
    (Playwright's sync API runs an event loop in this thread, where the ORM refuses to run)."""
    exchange, _, symbol = settings.UNDERLYING_INDEX["NIFTY"].partition(":")
    index = Instrument.objects.get(exchange=exchange, tradingsymbol=symbol, is_active=True).instrument_token
    minutes = Bar.objects.filter(instrument_token=index, interval="minute")
    until(lambda: minutes.count() >= 2, timeout=60)  # kitesim runs 10x: a minute closes every 6 s
    options = Instrument.objects.filter(name="NIFTY", instrument_type__in=["CE", "PE"], is_active=True)
    return Nifty(index, {o.instrument_token: (o.instrument_type, float(o.strike)) for o in options})


def _advance_market(sim: KitesimThread, seconds: int) -> None:
    """Jump kitesim's simulated clock through its control route: the market moves on at its next step."""
    body = json.dumps({"advance_seconds": seconds}).encode()
    request = urllib.request.Request(f"{sim.root}/_sim/clock", data=body, method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
        pass


def _chart(page: Page) -> dict[str, str]:
    return page.eval_on_selector("#candles", "(e) => ({...e.dataset})")


def _drawn(page: Page) -> list[dict[str, float]]:
    return page.evaluate("() => candles.drawn()")


def _ready(page: Page, *, token: int, interval: str) -> dict[str, str]:
    chart = page.locator("#candles")
    expect(chart).to_have_attribute("data-token", str(token), timeout=LOAD_TIMEOUT_MS)
    expect(chart).to_have_attribute("data-interval", interval)
    expect(chart).to_have_attribute("data-state", "ready", timeout=LOAD_TIMEOUT_MS)
    return _chart(page)


def _api_bars(page: Page, url: str, chart: dict[str, str]) -> list[dict[str, Any]]:
    """The API's bars for the chart's own instrument, interval and window, every page."""
    query = {
        "instrument": chart["token"],
        "interval": chart["interval"],
        "from": chart["from"],
        "to": chart["to"],
    }
    response = page.request.get(f"{url}/api/v1/bars", params=query)
    assert response.ok, response.text()
    body = response.json()
    results = body["results"]
    while body["next"]:
        body = page.request.get(body["next"]).json()
        results += body["results"]
    return results


def _sees_the_forming_candle_change(page: Page) -> None:
    before = page.get_attribute("#candles", "data-last")
    expect(page.locator("#candles")).not_to_have_attribute("data-last", before or "", timeout=20_000)


def _aligned(start: float, minutes: int) -> bool:
    """On Kite's grid: whole intervals from 09:15 IST."""
    return (start + IST_OFFSET_S - SESSION_OPEN_S) % (minutes * 60) == 0


def _boxes_overlap(page: Page, first: str, second: str) -> bool:
    a, b = page.locator(first).bounding_box(), page.locator(second).bounding_box()
    assert a is not None and b is not None
    return not (
        a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
        or a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
    )


def test_a_trader_charts_live_nifty_candles_that_survive_a_reload_and_a_restart(
    nifty: Nifty, page: Page, stack_env: dict[str, str], kitesim: KitesimThread, tmp_path: Path
) -> None:
    index = nifty.index

    port, log = free_port(), tmp_path / "web.log"
    web = WebProcess(stack_env, port, log)
    try:
        log_in(page, web.url)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15_000)

        # History: the stored minutes, drawn as the API serves them, then the forming candle from the stream.
        chart = _ready(page, token=index, interval="minute")
        history = int(chart["history"])
        assert history >= 2
        api = _api_bars(page, web.url, chart)
        assert len(api) >= history
        # The last candle of history may have been folded into live since: the ones before it are as served.
        served = sorted(datetime.fromisoformat(bar["date"]).timestamp() for bar in api)
        assert [bar["start"] for bar in _drawn(page)[: history - 1]] == served[: history - 1]
        expect(page.locator("#candles-title")).to_have_text("NIFTY")
        _sees_the_forming_candle_change(page)

        # The market moves on two minutes: new candles appear live, without a reload.
        count = int(_chart(page)["count"])
        _advance_market(kitesim, 120)
        until(lambda: int(_chart(page)["count"]) > count, timeout=30)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-candles.png"), animations="disabled", timeout=60_000)
        assert not _boxes_overlap(page, ".chain-wrap", "#candles")

        # Another interval reloads history from the API; live minutes fold into candles on Kite's grid.
        page.select_option("#candles-interval", "5minute")
        chart = _ready(page, token=index, interval="5minute")
        _advance_market(kitesim, 60)
        _sees_the_forming_candle_change(page)
        assert all(_aligned(bar["start"], 5) for bar in _drawn(page))

        # A click on an option row charts that option; the button goes back to the underlying.
        atm = page.locator("tr.atm")
        strike = float(atm.get_attribute("data-strike") or "nan")
        atm.locator('td[data-leg="CE"][data-field="last_price"]').click()
        expect(page.locator("#candles-title")).to_have_text(f"NIFTY {strike:g} CE")
        option = int(page.get_attribute("#candles", "data-token") or 0)
        assert nifty.options.get(option) == ("CE", strike)
        _ready(page, token=option, interval="5minute")
        _sees_the_forming_candle_change(page)
        page.click("#candles-underlying")
        _ready(page, token=index, interval="5minute")

        # A reload draws the candles again from history, and they keep growing.
        page.reload()
        page.select_option("#candles-interval", "minute")
        chart = _ready(page, token=index, interval="minute")
        assert int(chart["history"]) >= 3  # the minutes closed since the first load are stored too
        _sees_the_forming_candle_change(page)

        # A phone: the chart sits under the chain, inside the screen's width.
        page.set_viewport_size(PHONE)
        page.locator("#candles").scroll_into_view_if_needed()
        box = page.locator("#candles").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert not _boxes_overlap(page, ".chain-wrap", "#candles")
        page.screenshot(
            path=str(ARTIFACTS / "dashboard-candles-phone.png"), animations="disabled", timeout=60_000
        )

        # The web process dies under the open page: after the reconnect the chart reloads and stays live.
        loads = int(_chart(page)["loads"])
        web.kill()
        expect(page.locator("#connection")).not_to_have_attribute("data-state", "live", timeout=30_000)
        web = WebProcess(stack_env, port, log)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=30_000)
        until(lambda: int(_chart(page)["loads"]) > loads, timeout=30)  # the fresh snapshot reloaded history
        _ready(page, token=index, interval="minute")
        _sees_the_forming_candle_change(page)
    finally:
        web.kill()
