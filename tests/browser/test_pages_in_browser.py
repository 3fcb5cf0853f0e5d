"""Open every page from the sidebar in headless Chromium against a real server, in English
and in Simplified Chinese (?lang=zh, as a shared link carries the language).

For each page: click its sidebar link (its title in that language), wait until the script
has finished, check there is no exception box and no 'Unexpected error' message, and save a
full-page screenshot under test-artifacts/<page>.png (<page>-zh.png in Chinese; home.png and
home-zh.png are the README's screenshots).
"""

from __future__ import annotations

import pytest

from app.i18n import translate
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
LANGS = ("en", "zh")


@pytest.fixture(scope="module")
def server_url():
    with streamlit_server() as url:
        yield url


@pytest.fixture(scope="module", params=LANGS)
def browser_page(request, server_url):
    from playwright.sync_api import sync_playwright

    lang = request.param
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000},
                                locale="zh-CN" if lang == "zh" else "en-GB")
        page.goto(f"{server_url}/?lang={lang}", wait_until="domcontentloaded")
        wait_script_done(page)
        yield page, server_url, lang
        browser.close()


@pytest.mark.parametrize("spec", all_pages(), ids=lambda s: s.path)
def test_page_opens_from_sidebar(browser_page, spec):
    page, url, lang = browser_page
    title = translate(spec.title, lang)
    links = page.locator('[data-testid="stSidebarNav"] a', has_text=title)
    if len(all_pages()) == 1:          # Streamlit hides the navigation for a single page
        page.goto(f"{url}/?lang={lang}", wait_until="domcontentloaded")
    else:
        links.first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=180_000)
    wait_script_done(page)
    ARTIFACTS.mkdir(exist_ok=True)
    suffix = "" if lang == "en" else f"-{lang}"
    page.screenshot(path=str(ARTIFACTS / f"{spec.path.removesuffix('.py')}{suffix}.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text(UNEXPECTED).count() == 0
    assert f"lang={lang}" in page.url                     # the language stays in the URL
