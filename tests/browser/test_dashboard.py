"""The dashboard in Debian's chromium, fed by the whole pipeline: kitesim -> feed worker -> web -> browser."""

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.asgi_server import free_port
from tests.browser.chromium import ARTIFACTS, log_in
from tests.browser.web_process import WebProcess

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _prices(page: Page) -> list[str]:
    return page.locator('td[data-leg="CE"][data-field="last_price"]').all_inner_texts()


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


def _sees_prices_and_ivs_change(page: Page) -> None:
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15_000)
    expect(page.locator('td[data-field="iv"]:not(:text("—"))').first).to_be_visible(timeout=20_000)
    before = _prices(page)
    deadline = time.monotonic() + 15
    while _prices(page) == before:
        assert time.monotonic() < deadline, "no price changed within 15 s"
        page.wait_for_timeout(250)


def test_a_trader_watches_the_live_nifty_chain_and_survives_a_server_restart(
    streaming: None, page: Page, stack_env: dict[str, str], tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "web.log"
    web = WebProcess(stack_env, port, log)
    try:
        log_in(page, web.url)
        _sees_prices_and_ivs_change(page)
        expect(page.locator("tr.atm")).to_have_count(1)
        assert _cells_under_other_headers(page) == []
        expect(page.locator("#feeds tbody tr", has_text="streaming")).to_have_count(1, timeout=10_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), animations="disabled", timeout=60_000)

        web.kill()  # the server goes away under the open page
        expect(page.locator("#connection")).not_to_have_attribute("data-state", "live", timeout=30_000)
        web = WebProcess(stack_env, port, log)

        _sees_prices_and_ivs_change(page)  # reconnected, resubscribed, streaming again
        expect(page.locator("tr.atm")).to_have_count(1)  # the fresh snapshot's rows mark ATM again
        page.screenshot(
            path=str(ARTIFACTS / "dashboard-after-reconnect.png"), animations="disabled", timeout=60_000
        )
    finally:
        web.kill()
