"""Debian's chromium as the browser tests drive it, and the dashboard's log-in."""

from pathlib import Path

from playwright.sync_api import Page, expect

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
LAPTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
SMALL_LAPTOP = {"width": 1366, "height": 768}
FULL_HD = {"width": 1920, "height": 1080}


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/")
    expect(page).to_have_url(f"{url}/login/?next=/")
    page.fill('input[name="username"]', "trader")
    page.fill('input[name="password"]', "pw")
    page.click('button[type="submit"]')
    expect(page).to_have_url(f"{url}/")
