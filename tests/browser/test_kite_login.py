"""The morning login in Debian's chromium: admin's account list → "Log in to Kite" → kitesim's login page →
Login → our callback → the list shows the token valid, the database holds kitesim's new token, and the
account's feed starts at once (no beat runs here: only the login's own tasks can start it)."""

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Page, expect

from kitesim.testing import KitesimThread
from tests.asgi_server import free_port
from tests.browser.chromium import ARTIFACTS
from tests.browser.web_process import WebProcess
from tests.ticks.factories import UserFactory
from tests.waiting import until
from tests.workers.conftest import WorkerProcess
from ticks.feeds.lease import lease_key
from ticks.market_time import IST
from ticks.models import BrokerAccount
from ticks.services import broker_account_mark_health
from workers.services import feed_plan_refresh

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.clock]


T = TypeVar("T")


@pytest.fixture
def expired_demo(
    fleet: dict[str, BrokerAccount],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> BrokerAccount:
    """The morning: demo's token died at 06:00, the plan drained it, a worker waits; set up before the page
    opens (Playwright's sync API runs an event loop in this thread, where the ORM refuses to run)."""
    demo = broker_account_mark_health(
        account=fleet["demo"],
        health=BrokerAccount.Health.TOKEN_EXPIRED,
        reason="06:00 rollover",
        at=timezone.now(),
    )
    UserFactory(username="operator", is_staff=True, is_superuser=True)
    feed_plan_refresh(client=redis_client)
    start_worker()  # feeds and default queues, no beat
    return demo


def _off_the_loop(read: Callable[[], T]) -> T:
    """An ORM read after the page opened: in a short-lived thread, its connection closed after."""

    def run() -> T:
        try:
            return read()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _admin_log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/admin/ticks/brokeraccount/")
    page.fill('input[name="username"]', "operator")
    page.fill('input[name="password"]', "pw")
    page.click('input[type="submit"]')
    expect(page).to_have_url(f"{url}/admin/ticks/brokeraccount/")


def test_an_operator_logs_an_account_in_from_admin(
    expired_demo: BrokerAccount,
    kitesim: KitesimThread,
    stack_env: dict[str, str],
    redis_client: redis.Redis,
    tmp_path: Path,
    page: Page,
) -> None:
    port, log = free_port(), tmp_path / "web.log"
    assert kitesim.state is not None
    kitesim.call(
        kitesim.state.accounts.register_redirect_url, "demo", f"http://127.0.0.1:{port}/kite/callback"
    )
    web = WebProcess(stack_env, port, log)
    try:
        _admin_log_in(page, web.url)
        row = page.locator("#result_list tr", has=page.locator("th.field-name", has_text="demo"))
        expect(row.locator("td.field-health")).to_have_text("Token expired")

        row.get_by_role("link", name="Log in to Kite").click()
        login_page = rf"^{re.escape(kitesim.root)}/connect/login\?api_key=demo&v=3&redirect_params="
        expect(page).to_have_url(re.compile(login_page))
        expect(page.get_by_role("heading", name="Kite (simulated)")).to_be_visible()
        page.get_by_role("button", name="Login").click()

        expect(page).to_have_url(f"{web.url}/admin/ticks/brokeraccount/")
        expect(page.locator(".messagelist .success")).to_contain_text(
            "Demo is logged in to Kite: token valid until"
        )
        account = _off_the_loop(lambda: BrokerAccount.objects.get(pk=expired_demo.pk))
        expiry = f"valid until {account.token_expires_at.astimezone(IST):%d %b} 06:00 IST"
        expect(row.locator("td.field-token")).to_have_text(expiry)
        expect(row.locator("td.field-health")).to_have_text("OK")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "kite-login-done.png"))
    finally:
        web.kill()

    assert account.access_token == kitesim.state.accounts.get("demo").access_token != "demotoken"
    assert (account.health, account.health_reason) == (BrokerAccount.Health.OK, "")
    # No beat runs here: only the login's own re-plan and supervise start the account's feed.
    until(lambda: redis_client.exists(lease_key(expired_demo.pk)), timeout=30)
