"""What the live chain costs the browser per delta, measured with the DevTools protocol on the real stack.

Counts are asserted (layouts per delta, renders per delta); timings (script ms, lag) are recorded in
artifacts/dashboard-cost.json and printed but judged in bench/dashboard.py, where the box is not shared
with the rest of the suite.
"""

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.asgi_server import free_port
from tests.browser.chromium import ARTIFACTS, log_in
from tests.browser.devtools import PageCost, cdp_session, measure, wait_for_chain_stats, wait_for_deltas
from tests.browser.web_process import WebProcess

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SECONDS = 10.0
MIN_DELTAS = 10  # the streaming stack sends several a second: fewer means the page was not streaming
MAX_LAYOUTS_PER_DELTA = 2
# A render without a delta: a snapshot after a gap in seq, or the row of a delta that arrived just before
# the window opened and was painted just after.
RENDER_SLACK = 3


def _report(costs: list[PageCost]) -> None:
    figures = [cost.figures() for cost in costs]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dashboard-cost.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))  # noqa: T201 - the figures are this test's output


def _check(cost: PageCost) -> None:
    label = f"at {cost.throttle:g}x"
    assert cost.deltas >= MIN_DELTAS, f"{label}: only {cost.deltas} deltas in {cost.seconds:g} s"
    assert cost.renders >= 1 and cost.lag_samples >= 1, f"{label}: deltas arrived but nothing was rendered"
    assert cost.layouts_per_delta <= MAX_LAYOUTS_PER_DELTA, (
        f"{label}: {cost.layouts} layouts for {cost.deltas} deltas ({cost.layouts_per_delta:.1f} per delta)"
    )
    assert cost.renders <= cost.deltas + RENDER_SLACK, (
        f"{label}: {cost.renders} renders for {cost.deltas} deltas: more than one render per delta"
    )


def test_the_live_chain_costs_at_most_two_layouts_and_one_render_per_delta(
    streaming: None, page: Page, stack_env: dict[str, str], tmp_path: Path
) -> None:
    web = WebProcess(stack_env, free_port(), tmp_path / "web.log")
    try:
        log_in(page, web.url)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15_000)
        wait_for_chain_stats(page)
        wait_for_deltas(page, 5)
        session = cdp_session(page)
        costs = [measure(page, SECONDS, session, throttle=rate) for rate in (1, 4)]
    finally:
        web.kill()
    _report(costs)
    for cost in costs:
        _check(cost)
