"""Drive the real app: a ``streamlit run`` server on 127.0.0.1 and Debian's Chromium.

Shared by the browser test (tests/browser), the load and fault tests
(tests/load) and the load benchmark (bench/load.py). Chromium is the Debian
package found on PATH; Playwright only drives it (no browser download).
Not a benchmark itself (no ``main``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
UNEXPECTED = "Unexpected error"      # app.ui.UNEXPECTED (no streamlit import here)
SCRIPT_DONE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const main = document.querySelector('[data-testid="stMain"]');
    const drawn = main && main.innerText.trim().length > 0;
    const status = document.querySelector('[data-testid="stStatusWidget"]');
    const running = status && /Running|Stop/.test(status.innerText || '');
    return app && drawn && app.getAttribute('data-test-script-state') !== 'running' && !running;
}"""   # something drawn (the script has run at least once) and no run in progress


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, timeout_s: float = 120.0, path: str = "/_stcore/health") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.5)
    raise RuntimeError(f"streamlit at {url} did not answer {path} in {timeout_s:.0f} s")


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen = field(repr=False)

    def kill(self) -> None:
        """Kill the server and its children at once (SIGKILL to its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)


def start_server(script: str = "app/main.py", *, port: int | None = None,
                 extra_env: dict | None = None, log_path: Path | None = None) -> Server:
    """Start ``streamlit run <script>`` headless on 127.0.0.1; returns when it is healthy."""
    port = port or free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / script),
           "--server.address", "127.0.0.1", "--server.port", str(port),
           "--server.headless", "true", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(log_path or ARTIFACTS / f"server-{port}.log", "a")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    server = Server(f"http://127.0.0.1:{port}", port, proc)
    try:
        wait_healthy(server.url)
    except Exception:
        server.kill()
        raise
    return server


def stop_server(server: Server) -> None:
    """Terminate politely, then kill the whole process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGTERM)
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


@contextlib.contextmanager
def running_server(script: str = "app/main.py", **kwargs):
    server = start_server(script, **kwargs)
    try:
        yield server
    finally:
        stop_server(server)


@contextlib.contextmanager
def streamlit_server(extra_env: dict | None = None, log_path: Path | None = None):
    """Yield the base URL of a fresh app/main.py server; stop it afterwards."""
    with running_server(extra_env=extra_env, log_path=log_path) as server:
        yield server.url


def wait_script_done(page, timeout_ms: int = 180_000) -> None:
    """Wait until Streamlit says the script is no longer running (sync Playwright)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(SCRIPT_DONE_JS, timeout=timeout_ms, polling=250)
    page.wait_for_timeout(500)


# ---------------------------------------------------------------- async sessions
async def async_wait_done(page, timeout_ms: int = 300_000) -> None:
    await page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    await page.wait_for_function(SCRIPT_DONE_JS, timeout=timeout_ms, polling=250)
    await page.wait_for_timeout(300)


async def problems_on(page) -> int:
    """Exception boxes plus 'Unexpected error' messages on the page."""
    boxes = await page.locator('[data-testid="stException"]').count()
    return boxes + await page.get_by_text(UNEXPECTED).count()


async def change_a_widget(page) -> str | None:
    """Nudge one visible widget like a user would: a number input's +, else a checkbox/toggle."""
    for selector, name in (('[data-testid="stNumberInputStepUp"]', "number input"),
                           ('[data-testid="stCheckbox"] label', "checkbox")):
        locator = page.locator(selector)
        for i in range(min(await locator.count(), 6)):
            item = locator.nth(i)
            if await item.is_visible() and await item.is_enabled():
                await item.click()
                return name
    return None


@dataclass
class SessionReport:
    session: int
    pages: list = field(default_factory=list)     # (page path, problems, widget changed, seconds)
    error: str | None = None                      # a page that never finished


async def visit_every_page(context, url: str, titles: list[tuple[str, str]], session: int,
                           timeout_ms: int = 300_000, delay_s: float = 0.0) -> SessionReport:
    """One browser session: open the app, then every page from the sidebar, changing a widget on each."""
    report = SessionReport(session)
    await asyncio.sleep(delay_s)
    context.set_default_timeout(timeout_ms)
    page = await context.new_page()
    try:
        await page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
        await async_wait_done(page, timeout_ms)
        for path, title in titles:
            start = time.monotonic()
            await page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
            await page.get_by_role("heading", name=title).first.wait_for(timeout=timeout_ms)
            await async_wait_done(page, timeout_ms)
            changed = await change_a_widget(page)
            if changed:
                await async_wait_done(page, timeout_ms)
            report.pages.append((path, await problems_on(page), changed,
                                 round(time.monotonic() - start, 2)))
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        await page.close()
    return report


async def run_sessions(url: str, titles: list[tuple[str, str]], n_sessions: int,
                       timeout_ms: int = 300_000, stagger_s: float = 0.0) -> list[SessionReport]:
    """``n_sessions`` concurrent browser contexts, each visiting every page; session i starts
    ``i * stagger_s`` seconds after the first (people do not all click at the same instant)."""
    from playwright.async_api import async_playwright  # optional: a dev dependency (browser runs)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        contexts = [await browser.new_context(viewport={"width": 1280, "height": 900})
                    for _ in range(n_sessions)]
        reports = await asyncio.gather(*(visit_every_page(ctx, url, titles, i, timeout_ms, i * stagger_s)
                                         for i, ctx in enumerate(contexts)))
        await browser.close()
    return list(reports)


async def sidebar_titles(url: str, timeout_ms: int = 300_000) -> list[str]:
    """The page titles the running app's sidebar links to, read in Chromium (the benchmark
    learns the pages from the server it loads, not from app/'s registry)."""
    from playwright.async_api import async_playwright  # optional: a dev dependency (browser runs)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = await browser.new_page()
        await page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
        await async_wait_done(page, timeout_ms)
        titles = await page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
        await browser.close()
    return [t.strip() for t in titles if t.strip()]


def process_tree_rss(pid: int) -> int | None:
    """Resident memory of a process and its children, in bytes (None if unknown)."""
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except Exception:
        return None
