"""The dashboard in Debian's chromium, fed by the whole pipeline: kitesim -> feed worker -> web -> browser.

One stack for the whole walk (each start-up costs ~30 s): the columns traders read first, the strike
range, the column picker stored per user, the keyboard, contrast, screenshots at three viewports, and
a web restart under the open page (the new web process marks prices stale after a few market seconds).
"""

import re
import time
from datetime import datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.asgi_server import free_port
from tests.browser.chromium import ARTIFACTS, FULL_HD, LAPTOP, PHONE, SMALL_LAPTOP, log_in
from tests.browser.web_process import WebProcess
from ticks.bars.selectors import session_opened_by
from ticks.clocks import market_now
from ticks.exchange_calendar import market_calendar
from ticks.market_time import IST
from ticks.models import Bar, BrokerAccount, Instrument, WatchSpec

pytestmark = [pytest.mark.integration, pytest.mark.browser]

STALE_AFTER_RESTART_S = 1  # market seconds: kitesim's streamed options trade every 0-4 s, so some are older
MIN_CONTRAST = 4.5
STRIKES_WATCHED = 8
PREVIOUS_CLOSE_BAR = clock_time(15, 29)  # the last minute of the previous session
PREVIOUS_OI_LOTS = 1_000

# Every visible leg cell of the chain, read in one go (one frame's state), keyed "CE.oi" etc.
READ_CHAIN = """() => [...document.querySelectorAll("#chain tbody tr:not(.hidden)")].map((tr) => ({
    strike: Number(tr.dataset.strike),
    classes: [...tr.classList],
    cells: Object.fromEntries([...tr.querySelectorAll("td[data-leg]")].map((td) => [
        `${td.dataset.leg}.${td.dataset.field}`,
        {text: td.textContent, classes: [...td.classList], title: td.title,
         background: getComputedStyle(td).backgroundColor},
    ])),
}))"""

# Each stale last price on screen with its ⏱ marker and its leg's IV cell, read in one turn of the page.
READ_STALE = """() => [...document.querySelectorAll('#chain tr:not(.hidden) td.stale[data-field="last_price"]')]
    .map((td) => {
        const iv = td.parentElement.querySelector(`td[data-leg="${td.dataset.leg}"][data-field="iv"]`);
        return {title: td.title, marker: getComputedStyle(td.firstChild, "::after").content,
                iv_classes: [...iv.classList], iv_title: iv.title};
    })"""

# The WCAG contrast of each text colour against the background it is drawn on (the first opaque one up).
CONTRASTS = """(targets) => {
    const rgba = (text) => text.match(/[\\d.]+/g).map(Number);
    const linear = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    const luminance = ([r, g, b]) => 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const colour = rgba(getComputedStyle(el).backgroundColor);
            if (colour.length < 4 || colour[3] > 0) return colour;
        }
        return [255, 255, 255];
    };
    const results = [];
    for (const [selector, pseudo] of targets) {
        for (const el of document.querySelectorAll(selector)) {
            if (el.closest("tr.hidden") || getComputedStyle(el).display === "none") continue;
            const [a, b] = [luminance(rgba(getComputedStyle(el, pseudo).color)), luminance(background(el))];
            results.push([selector + (pseudo || ""), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]);
        }
    }
    return results;
}"""
# Values cut off by their column, and a chain wider than its box: unreadable either way.
CLIPPED = """() => {
    const wrap = document.querySelector(".chain-wrap");
    const clipped = [...document.querySelectorAll("#chain tr:not(.hidden) td .v")]
        .filter((v) => getComputedStyle(v.parentElement).display !== "none" && v.scrollWidth > v.clientWidth)
        .map((v) => `${v.parentElement.dataset.field}: ${v.textContent}`);
    return wrap.scrollWidth > wrap.clientWidth ? [...clipped, `chain ${wrap.scrollWidth} px wide`] : clipped;
}"""
TEXT_COLOURS = [
    ("#chain td.strike", None),
    ("#chain thead th", None),
    ("#chain td[data-field='bid']", None),
    ("#chain td[data-sign='1']", None),
    ("#chain td[data-sign='-1']", None),
    ("#chain td[data-move='up'] .v", "::before"),
    ("#chain td[data-move='down'] .v", "::before"),
    ("#chain td.stale", None),
    (".quotes dt", None),
    (".quotes dd", None),
    ("#feed-status", None),
    ("#candles-status", None),
    (".smile-panel h2", None),
]


@pytest.fixture
def nifty_window(fleet: dict[str, BrokerAccount]) -> None:
    """NIFTY watched ±STRIKES_WATCHED (wider than ±5, narrower than ±15), with the calls' OI stored at the
    previous session's close (the puts' left unknown): requested before ``streaming`` plans the feeds."""
    WatchSpec.objects.filter(underlying="NIFTY").update(strikes_around_atm=STRIKES_WATCHED)
    opened = session_opened_by(market_now(), market_calendar())
    closed = datetime.combine(
        market_calendar().previous_session(opened.date()), PREVIOUS_CLOSE_BAR, tzinfo=IST
    )
    calls = Instrument.objects.filter(name="NIFTY", instrument_type="CE", is_active=True)
    Bar.objects.bulk_create(
        Bar(
            instrument_token=token,
            interval="minute",
            start=closed,
            open=1,
            high=1,
            low=1,
            close=1,
            oi=PREVIOUS_OI_LOTS * lot,
        )
        for token, lot in calls.values_list("instrument_token", "lot_size")
    )


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("+", ""))


def _prices(page: Page) -> list[str]:
    return page.locator('td[data-leg="CE"][data-field="last_price"]').all_inner_texts()


def _chain(page: Page) -> list[dict[str, Any]]:
    return page.evaluate(READ_CHAIN)


def _cells_under_other_headers(page: Page) -> list[tuple[str | None, str | None]]:
    """(header, cell) fields that differ along the first row: each column must hold what it says."""
    return page.evaluate(
        """() => {
            const headers = [...document.querySelectorAll("#chain thead tr:last-child th")];
            const cells = [...document.querySelectorAll("#chain tbody tr:first-child td")];
            return headers.map((th, i) => [th.dataset.field ?? null, cells[i]?.dataset.field ?? null])
                          .filter(([header, cell]) => header !== cell);
        }"""
    )


def _headers(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "#chain thead tr:last-child th", "(ths) => ths.map((th) => th.dataset.field ?? 'strike')"
    )


def _sees_prices_and_ivs_change(page: Page) -> None:
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15_000)
    expect(page.locator('#chain tr:not(.hidden) td[data-field="iv"]:not(:text("—"))').first).to_be_visible(
        timeout=20_000
    )
    before = _prices(page)
    deadline = time.monotonic() + 15
    while _prices(page) == before:
        assert time.monotonic() < deadline, "no price changed within 15 s"
        page.wait_for_timeout(250)


def _snapshot(page: Page) -> dict[str, Any]:
    """The chain on screen as the stream serves it, from a socket of the test's own in the page."""
    chain = page.evaluate("() => `${underlying.value}:${expiry.value}`")
    return page.evaluate(
        """(chain) => new Promise((resolve, reject) => {
            const ws = new WebSocket(`ws://${location.host}/ws/stream/`);
            ws.onopen = () => ws.send(JSON.stringify({action: "subscribe", chain}));
            ws.onmessage = (event) => {
                const message = JSON.parse(event.data);
                if (message.type === "snapshot") { ws.close(); resolve(message); }
            };
            setTimeout(() => reject(new Error("no snapshot in 15 s")), 15000);
        })""",
        chain,
    )


def _checks_oi_change(page: Page) -> None:
    """Change in OI beside OI: the leg's OI minus its OI at the previous session's close."""
    previous = {(row["strike"], row["type"]): row["oi_prev"] for row in _snapshot(page)["rows"]}
    known = 0
    for row in _chain(page):
        for side in ("CE", "PE"):
            oi, change = row["cells"][f"{side}.oi"], row["cells"][f"{side}.oi_change"]
            oi_prev = previous.get((row["strike"], side))
            if oi_prev is None or oi["text"] == "—":
                assert (change["text"], change["title"]) == ("—", "OI at the previous close unknown"), change
                continue
            # Shown compact (43.72L); the exact figures are the cells' titles.
            assert _number(change["title"]) == _number(oi["title"]) - oi_prev, (
                row["strike"],
                side,
                oi,
                change,
            )
            assert re.fullmatch(r"[+-]?[\d.]+(K|L|Cr)?", change["text"]), change
            known += side == "CE"
    assert known == len(_chain(page)), "every call's OI at the previous close is known"


def _checks_itm_shading(page: Page) -> None:
    """Calls below the forward and puts above it are shaded, on their own side only."""
    forward_text = page.text_content("#forward") or "—"
    assert forward_text != "—"
    forward = _number(forward_text)
    rows = _chain(page)
    if _number(page.text_content("#forward") or "nan") != forward:
        return _checks_itm_shading(page)  # the forward moved while reading: read again
    shaded: dict[bool, set[str]] = {True: set(), False: set()}
    for row in rows:
        ce_itm, pe_itm = row["strike"] < forward, row["strike"] > forward
        assert ("itm-ce" in row["classes"], "itm-pe" in row["classes"]) == (ce_itm, pe_itm), (row, forward)
        shaded[ce_itm].add(row["cells"]["CE.bid"]["background"])
        shaded[pe_itm].add(row["cells"]["PE.bid"]["background"])
    assert len(shaded[True]) == 1 and len(shaded[False]) == 1 and shaded[True] != shaded[False], shaded


def _checks_price_cells_only_flash_with_arrows(page: Page) -> None:
    """Flash up/down on last prices, with ▲/▼ beside them; Greeks, bid/ask and OI never flash."""
    expect(page.locator('td[data-field="last_price"][data-move]').first).to_be_attached(timeout=15_000)
    flashing = page.eval_on_selector_all(
        "#chain td.flash-up, #chain td.flash-down",
        "(tds) => tds.map((td) => td.dataset.field)",
    )
    assert set(flashing) <= {"last_price"}, flashing
    arrows = page.eval_on_selector_all(
        "#chain td[data-move]",
        "(tds) => tds.map((td) => [td.dataset.move, getComputedStyle(td.firstChild, '::before').content])",
    )
    assert {content for _, content in arrows} <= {'"▲ "', '"▼ "'} and arrows, arrows


def _checks_trade_times(page: Page) -> None:
    """The last trade time on hover (IST), and which price fed the IV."""
    row = next(r for r in _chain(page) if r["cells"]["CE.last_price"]["text"] != "—")
    assert re.fullmatch(r"last trade \d\d:\d\d:\d\d IST.*", row["cells"]["CE.last_price"]["title"]), row
    assert row["cells"]["CE.iv"]["title"].startswith(("IV from the last price", "IV from the bid/ask mid")), (
        row
    )


def _checks_header(page: Page) -> None:
    for quote in ("#spot", "#future", "#forward", "#dte", "#lot-size"):
        expect(page.locator(quote)).not_to_have_text("—", timeout=15_000)
    assert re.fullmatch(r"\d+ d \d+ h|\d+ h \d+ m", page.text_content("#dte") or ""), page.text_content(
        "#dte"
    )
    expect(page.locator("#feed-status")).to_have_text(
        re.compile(r"feeds 1/\d+ streaming · lag \d+ ms"), timeout=10_000
    )
    page.click("#feed-status")
    expect(page.locator("#feeds tbody tr", has_text="streaming")).to_have_count(1)
    page.click("#feed-status")


def _visible_strikes(page: Page) -> list[float]:
    return [row["strike"] for row in _chain(page)]


def _checks_strike_range(page: Page) -> None:
    """±5 shows the ATM strike and five each side; wider ranges show more, up to what is streamed."""
    priced = page.eval_on_selector_all(
        "#chain tbody tr",
        "(trs) => trs.filter((tr) => tr.querySelector('td[data-field=\"last_price\"]:not(:empty)')"
        " && [...tr.querySelectorAll('td[data-field=\"last_price\"]')].some((td) => td.textContent !== '—')).length",
    )
    page.select_option("#strike-range", "5")
    strikes = _visible_strikes(page)
    atm = float(page.get_attribute("tr.atm", "data-strike") or "nan")
    assert len(strikes) == 11 and strikes[5] == atm, (strikes, atm)
    offered = page.eval_on_selector_all(
        "#strike-range option:not([disabled])", "(os) => [...os].map((o) => o.value)"
    )
    assert offered[:2] == ["5", "10"] and len(offered) < 6, (
        offered
    )  # the fleet streams about ±STRIKES_WATCHED
    page.select_option("#strike-range", "10")
    wider = _visible_strikes(page)
    assert len(wider) == min(21, priced) and set(strikes) < set(wider), (wider, priced)
    page.select_option("#strike-range", offered[-1])
    assert len(_visible_strikes(page)) == priced  # the widest offered shows every streamed strike
    assert priced > 2 * int(offered[-2]) + 1  # and the one before it did not


def _checks_keyboard(page: Page) -> None:
    """Tab reaches the grid (one tab stop), arrows move, Enter charts the leg."""
    page.locator("#underlying").focus()
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.closest('#chain') !== null"):
            break
    else:
        pytest.fail("Tab never reached the chain")
    assert page.locator("#chain [tabindex='0']").count() == 1
    start = page.evaluate(
        "() => [document.activeElement.parentElement.dataset.strike, document.activeElement.dataset.field]"
    )
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    focused = page.evaluate(
        "() => [document.activeElement.parentElement.dataset.strike, document.activeElement.dataset.leg]"
    )
    assert focused[0] != start[0], (start, focused)
    page.keyboard.press("Enter")
    expect(page.locator("#candles-title")).to_have_text(f"NIFTY {float(focused[0]):g} {focused[1]}")
    while page.evaluate("() => document.activeElement.dataset.leg") != "PE":
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(page.locator("#candles-title")).to_have_text(f"NIFTY {float(focused[0]):g} PE")
    page.keyboard.press("Tab")  # out of the grid in one press
    assert page.evaluate("() => document.activeElement.closest('#chain') === null")


def _checks_contrast(page: Page) -> None:
    measured = page.evaluate(CONTRASTS, TEXT_COLOURS)
    assert {selector for selector, _ in measured} >= {"#chain td.strike", "#chain thead th", ".quotes dt"}
    low = [(selector, round(ratio, 2)) for selector, ratio in measured if ratio < MIN_CONTRAST]
    assert low == [], low


def _pick_columns(page: Page) -> list[str]:
    """Volume out, vega and gamma in, through the picker; returns the columns chosen."""
    page.click("#column-picker summary")
    page.uncheck("#column-choices input[value='volume']")
    page.check("#column-choices input[value='vega']")
    page.check("#column-choices input[value='gamma']")
    expect(page.locator("#column-status")).to_have_text("saved")
    page.click("#column-picker summary")
    return ["oi", "oi_change", "vega", "gamma", "delta", "iv", "bid", "ask", "change", "last_price"]


def _checks_columns(page: Page, columns: list[str]) -> None:
    """OI outermost on both sides, in DASHBOARD_COLUMNS order, mirrored around the strike."""
    assert _headers(page) == [*columns, "strike", *reversed(columns)]
    assert _cells_under_other_headers(page) == []


def _screenshots(page: Page) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for name, viewport in (("1366", SMALL_LAPTOP), ("1920", FULL_HD), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.wait_for_timeout(500)
        chain = page.locator(".chain-wrap").bounding_box()
        assert chain is not None and chain["x"] >= 0 and chain["x"] + chain["width"] <= viewport["width"]
        assert page.evaluate(CLIPPED) == [], name
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True, timeout=60_000)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the phone scrolls sideways: {width} px"
    page.set_viewport_size(LAPTOP)


def _checks_stale_prices(page: Page) -> None:
    """Prices older than DASHBOARD_STALE_PRICE_S market seconds are marked; their IV is the mid's. A
    price turns fresh again at its next trade, so each stale leg is read whole in one turn of the page."""
    page.wait_for_function(f"() => ({READ_STALE})().length > 0", timeout=15_000)
    legs = page.evaluate(READ_STALE)
    assert legs, "no stale price left to read"
    for leg in legs:
        assert f"older than {STALE_AFTER_RESTART_S} s" in leg["title"], leg
        assert "iv-mid" in leg["iv_classes"], leg
        assert leg["iv_title"].startswith("IV from the bid/ask mid"), leg
        assert leg["marker"] not in ("none", "normal", '""'), leg


def _checks_page_stats(page: Page) -> None:
    """window.chainStats counts what the page rendered (tests/browser/test_dashboard_cost.py times it)."""
    page.evaluate("() => chainStats.reset()")
    page.wait_for_timeout(2_000)
    stats = page.evaluate("() => ({...chainStats, lagsMs: chainStats.lagsMs.length})")
    assert stats["deltas"] > 0 and 0 < stats["renders"] <= stats["deltas"] + 1, (
        stats
    )  # +1: a frame due at reset
    assert stats["lagsMs"] >= stats["renders"], stats


def test_a_trader_watches_the_live_nifty_chain_and_survives_a_server_restart(
    nifty_window: None, streaming: None, page: Page, stack_env: dict[str, str], tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    port, log = free_port(), tmp_path / "web.log"
    web = WebProcess(stack_env, port, log)
    try:
        log_in(page, web.url)
        _sees_prices_and_ivs_change(page)
        expect(page.locator("tr.atm")).to_have_count(1)
        _checks_columns(
            page, ["oi", "oi_change", "volume", "delta", "iv", "bid", "ask", "change", "last_price"]
        )
        _checks_header(page)
        _checks_oi_change(page)
        _checks_itm_shading(page)
        _checks_price_cells_only_flash_with_arrows(page)
        _checks_trade_times(page)
        _checks_strike_range(page)
        _checks_keyboard(page)
        _checks_contrast(page)
        _checks_page_stats(page)
        page.select_option("#strike-range", "5")
        expect(page.locator("#column-status")).to_have_text("saved")
        _screenshots(page)
        columns = _pick_columns(page)
        _checks_columns(page, columns)

        web.kill()  # the server goes away under the open page
        expect(page.locator("#connection")).not_to_have_attribute("data-state", "live", timeout=30_000)
        web = WebProcess({**stack_env, "DASHBOARD_STALE_PRICE_S": str(STALE_AFTER_RESTART_S)}, port, log)

        _sees_prices_and_ivs_change(page)  # reconnected, resubscribed, streaming again
        expect(page.locator("tr.atm")).to_have_count(1)  # the fresh snapshot's rows mark ATM again
        page.screenshot(
            path=str(ARTIFACTS / "dashboard-after-reconnect.png"), animations="disabled", timeout=60_000
        )

        page.reload()  # the columns and range come back from the server; the new stale age applies
        _sees_prices_and_ivs_change(page)
        _checks_columns(page, columns)
        assert page.input_value("#strike-range") == "5"
        assert page.request.get(f"{web.url}/api/v1/dashboard/preferences").json() == {
            "columns": columns,
            "strike_range": 5,
        }
        _checks_stale_prices(page)
        assert errors == []
    finally:
        web.kill()
