"""The browser tests run on the same real stack as the feed tests, in Debian's chromium (never a downloaded one)."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Page, sync_playwright

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, LAPTOP
from tests.ticks.factories import UserFactory
from tests.waiting import until
from tests.workers.conftest import WorkerProcess, fleet, kitesim, stack_env, start_worker  # noqa: F401
from ticks.models import BrokerAccount
from ticks.selectors import latest_ticks
from workers.selectors import feed_plan_current
from workers.services import feed_plan_refresh, feed_supervise


@pytest.fixture
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=LAPTOP)
        yield page
        browser.close()


@pytest.fixture
def streaming(
    fleet: dict[str, BrokerAccount],  # noqa: F811 - the fixture imported above
    start_worker: Callable[..., WorkerProcess],  # noqa: F811 - the fixture imported above
    redis_client: redis.Redis,
) -> None:
    UserFactory(username="trader")  # before the page: Playwright's sync API runs a loop in this thread
    feed_plan_refresh(client=redis_client)
    tokens = sorted(feed_plan_current().assignments.values_list("instrument_token", flat=True))
    start_worker()
    feed_supervise(client=redis_client)
    until(lambda: latest_ticks(tokens=tokens).size == len(tokens))
