"""Playwright (sync API) driving Debian's Chromium against pytest-django's live_server.

Playwright's sync API runs an asyncio loop in this thread; Django refuses ORM calls
from a thread with a running loop unless told it is safe, and here it is (one test
thread, the live server in its own thread)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: make test installs it (scripts/bootstrap.sh install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A page that fails its test if the browser refused anything under the site's
    Content-Security-Policy (Chromium logs each refusal to the console)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations: list[str] = []
    page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    page.csp_violations = violations
    yield page
    context.close()
    assert violations == [], violations


@pytest.fixture
def log_in(live_server):
    def do(page, username: str, password: str) -> None:
        page.goto(f"{live_server.url}/backoffice/")
        assert "/backoffice/login/" in page.url
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/backoffice/")

    return do


def _screenshots_dir() -> Path:
    """docs/screenshots/ when asked (`make screenshots` sets UPDATE_SCREENSHOTS=1);
    otherwise a scratch folder, so a test run leaves the checkout unchanged."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        return DOCS_SCREENSHOTS
    return Path(os.environ.get("TMPDIR", "/tmp")) / "concord-screenshots"


def shoot(page, name: str) -> None:
    """Take a full-page screenshot (for the docs with UPDATE_SCREENSHOTS=1)."""
    folder = _screenshots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
