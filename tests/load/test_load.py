"""Load and fault tests of the hosted mode (app/server.py) with real browsers.

- N = 8 concurrent sessions each open every page and change a widget: no
  exception box or 'Unexpected error' anywhere, every page finishes; the
  server's memory is reported (test-artifacts/load-report.json).
- Two sessions start the same measurement at once: the scheduler runs them one
  after the other (checked in its job log, /api/jobs) and both complete.
- A job past its time limit is stopped, the page says so, and the server keeps
  serving other sessions.
- Killing the server mid-run and starting it again keeps what the app promises
  to keep: settings in the URL.
The longer run (32+ sessions) is bench/load.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

from app.navigation import all_pages
from bench.browser import (
    ARTIFACTS,
    CHROMIUM_FLAGS,
    UNEXPECTED,
    async_wait_done,
    chromium_path,
    process_tree_rss,
    run_sessions,
    running_server,
    start_server,
    stop_server,
    wait_script_done,
)

pytestmark = [pytest.mark.browser, pytest.mark.load]
SESSIONS = 8


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def hosted():
    with running_server("app/server.py") as server:
        yield server


def test_eight_sessions_open_every_page(hosted):
    titles = [(spec.path, spec.title) for spec in all_pages()]
    rss_before = process_tree_rss(hosted.proc.pid)
    start = time.monotonic()
    reports = asyncio.run(run_sessions(hosted.url, titles, SESSIONS))
    seconds = time.monotonic() - start
    rss_after = process_tree_rss(hosted.proc.pid)
    served = sum(len(r.pages) for r in reports)
    problems = [(r.session, p) for r in reports for p in r.pages if p[1]]
    summary = {
        "sessions": SESSIONS, "pages_served": served, "pages_expected": SESSIONS * len(titles),
        "errors": len(problems) + sum(1 for r in reports if r.error),
        "seconds": round(seconds, 1), "rss_before_bytes": rss_before, "rss_after_bytes": rss_after,
        "widgets_changed": sum(1 for r in reports for p in r.pages if p[2]),
        "ready": get_json(f"{hosted.url}/api/ready"),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load-report.json").write_text(json.dumps(summary, indent=1))
    print(f"\nload: {summary['sessions']} sessions, {served} pages in {seconds:.0f} s, "
          f"errors {summary['errors']}, server RSS {rss_before} -> {rss_after} bytes")
    assert [r.error for r in reports if r.error] == []
    assert problems == []
    assert served == SESSIONS * len(titles)
    assert summary["widgets_changed"] >= SESSIONS


def test_two_measurements_at_once_run_one_after_the_other(hosted):
    async def prepare(browser, hidden: int):
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{hosted.url}/training_memory", wait_until="domcontentloaded")
        await async_wait_done(page)
        await page.get_by_role("tab", name="Measure it").click()
        box = page.locator(".st-key-tm_m_hidden input")   # two sizes: two results, not one cached
        await box.fill(str(hidden))
        await box.press("Enter")
        await async_wait_done(page)
        return page

    async def measure(page):
        await page.get_by_role("button", name="Measure activations").click()
        await page.wait_for_timeout(1000)
        await async_wait_done(page)
        text = await page.locator('[data-testid="stMain"]').inner_text()
        problems = await page.locator('[data-testid="stException"]').count()
        await page.close()
        return text, problems

    async def both():
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            pages = [await prepare(browser, 512), await prepare(browser, 576)]
            results = await asyncio.gather(*(measure(page) for page in pages))   # clicked together
            await browser.close()
        return results

    before = {j["job_id"] for j in get_json(f"{hosted.url}/api/jobs")["jobs"]}
    results = asyncio.run(both())
    assert all(problems == 0 and UNEXPECTED not in text for text, problems in results)
    jobs = [j for j in get_json(f"{hosted.url}/api/jobs")["jobs"]
            if j["job_id"] not in before and j["name"] == "activation measurement"]
    assert len(jobs) == 2, jobs
    first, second = sorted(jobs, key=lambda j: j["started_at"])
    assert first["status"] == second["status"] == "done"
    assert second["started_at"] >= first["ended_at"]          # never overlapped
    assert second["queued_at"] < first["ended_at"]            # ... although both were waiting


def test_job_over_its_limit_is_stopped_and_others_are_served():
    from playwright.sync_api import sync_playwright

    with running_server("app/server.py", extra_env={"ATLAS_MAX_JOB_SECONDS": "2"}) as server, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server.url}/rnn_vs_transformer", wait_until="domcontentloaded")
        wait_script_done(page)
        page.get_by_role("button", name="Train the four models").click()
        page.get_by_text("time limit").first.wait_for(timeout=120_000)
        wait_script_done(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        other = browser.new_page()
        other.goto(server.url, wait_until="domcontentloaded")
        wait_script_done(other)
        assert other.get_by_role("heading", name="LLM Atlas").count() >= 1
        browser.close()
        jobs = get_json(f"{server.url}/api/jobs")["jobs"]
    assert any(j["status"] == "timeout" for j in jobs), jobs


def test_settings_in_the_url_survive_a_server_kill():
    from playwright.sync_api import expect, sync_playwright

    server = start_server("app/server.py")
    port = server.port
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/training_memory?preset=llama-3-8b&zero=3&dp=64",
                      wait_until="domcontentloaded")
            page.get_by_role("heading", name="Training memory").wait_for(timeout=120_000)
            wait_script_done(page)
            dp = page.locator(".st-key-tm_dp input")     # Streamlit tags containers by widget key
            expect(dp).to_have_value("64", timeout=60_000)
            page.locator('.st-key-tm_dp [data-testid="stNumberInputStepUp"]').click()   # N: 64 -> 65
            wait_script_done(page)
            page.wait_for_function("() => window.location.search.includes('dp=65')", timeout=30_000)
            saved = page.url
            server.kill()                                   # mid-session, no clean shutdown
            server = start_server("app/server.py", port=port)
            page.goto(saved, wait_until="domcontentloaded")
            page.get_by_role("heading", name="Training memory").wait_for(timeout=120_000)
            wait_script_done(page)
            expect(page.locator(".st-key-tm_dp input")).to_have_value("65", timeout=60_000)
            assert "zero=3" in page.url and "preset=llama-3-8b" in page.url
            assert page.locator('[data-testid="stException"]').count() == 0
            browser.close()
    finally:
        stop_server(server)


def test_garbage_query_parameters_get_a_clear_message(hosted):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"{hosted.url}/training_memory?zero=banana&dp=-5&seq=1e99&preset=%3Cscript%3E",
                  wait_until="domcontentloaded")
        wait_script_done(page)
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
        assert "zero" in text and UNEXPECTED not in text
        assert page.locator("script:text('<script>')").count() == 0
        browser.close()


def test_health_and_readiness_routes(hosted):
    assert get_json(f"{hosted.url}/api/health")["status"] == "ok"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            state = get_json(f"{hosted.url}/api/ready")
            break
        except urllib.error.HTTPError as err:    # 503 while warming up
            assert err.code == 503
            time.sleep(1)
    assert state["ready"] and state["warm_up"]["MiniLM model"]["status"] == "ok"
    assert "cpu" in state["queues"]
