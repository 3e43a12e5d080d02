"""The dashboard in Debian's chromium, fed by the whole pipeline: kitesim -> feed worker -> web -> browser."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Page, expect, sync_playwright

from tests.asgi_server import free_port
from tests.browser.web_process import WebProcess
from tests.ticks.factories import UserFactory
from tests.waiting import until
from tests.workers.conftest import WorkerProcess
from ticks.models import BrokerAccount
from ticks.selectors import latest_ticks
from workers.selectors import feed_plan_current
from workers.services import feed_plan_refresh, feed_supervise

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ARTIFACTS = Path(__file__).parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        yield page
        browser.close()


@pytest.fixture
def streaming(
    fleet: dict[str, BrokerAccount], start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    UserFactory(username="trader")  # before the page: Playwright's sync API runs a loop in this thread
    feed_plan_refresh(client=redis_client)
    tokens = sorted(feed_plan_current().assignments.values_list("instrument_token", flat=True))
    start_worker()
    feed_supervise(client=redis_client)
    until(lambda: latest_ticks(tokens=tokens).size == len(tokens))


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


def _log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/")
    expect(page).to_have_url(f"{url}/login/?next=/")
    page.fill('input[name="username"]', "trader")
    page.fill('input[name="password"]', "pw")
    page.click('button[type="submit"]')
    expect(page).to_have_url(f"{url}/")


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
        _log_in(page, web.url)
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
