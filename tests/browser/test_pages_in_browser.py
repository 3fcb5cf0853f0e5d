"""Open every page from the sidebar in headless Chromium against a real server.

For each page: click its sidebar link, wait until the script has finished,
check there is no exception box and no 'Unexpected error' message, and save a
full-page screenshot under test-artifacts/<page>.png (home.png is the README's
screenshot).
"""

from __future__ import annotations

import pytest

from app.navigation import all_pages
from app.ui import UNEXPECTED
from bench.browser import (
    ARTIFACTS,
    CHROMIUM_FLAGS,
    chromium_path,
    streamlit_server,
    wait_script_done,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser_page():
    from playwright.sync_api import sync_playwright

    with streamlit_server() as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        wait_script_done(page)
        yield page, url
        browser.close()


@pytest.mark.parametrize("spec", all_pages(), ids=lambda s: s.path)
def test_page_opens_from_sidebar(browser_page, spec):
    page, url = browser_page
    links = page.locator('[data-testid="stSidebarNav"] a', has_text=spec.title)
    if len(all_pages()) == 1:          # Streamlit hides the navigation for a single page
        page.goto(url, wait_until="domcontentloaded")
    else:
        links.first.click()
    page.get_by_role("heading", name=spec.title).first.wait_for(timeout=180_000)
    wait_script_done(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{spec.path.removesuffix('.py')}.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text(UNEXPECTED).count() == 0
