"""Driving the app in Debian's headless Chromium through Playwright: shared by the browser
tests and the app benchmark (bench/benchmarks.py), so both wait for the same "rendered"."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
READY = '[data-testid="stApp"][data-test-script-state="notRunning"][data-test-connection-state="CONNECTED"]'
#: The app's pages, by the name used for screenshots and timings, with their URL path.
PAGES = {"overview": "", "executions": "Executions", "artifacts": "Artifacts", "lineage": "Lineage",
         "compare_models": "Compare_models", "compare_datasets": "Compare_datasets",
         "deployments": "Deployments", "sql_console": "SQL_console"}


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, timeout=60_000, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"])
        try:
            yield b
        finally:
            b.close()


def wait_rendered(page: Any, timeout_ms: int = 60_000) -> None:
    """Streamlit says 'notRunning' before widgets and charts are drawn: also wait for every
    skeleton to go and every chart to have its canvas or svg."""
    page.wait_for_selector(READY, timeout=timeout_ms)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stSkeleton"]') &&
             [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].every(c => c.querySelector('canvas, svg'))""",
        timeout=timeout_ms)


def open_page(browser: Any, url: str, path: str = "", timeout_ms: int = 60_000) -> tuple[Any, float]:
    """A new tab on ``url/path``, once rendered, and the seconds that took."""
    # Streamlit scrolls an inner container, not the document: a tall viewport shows it all.
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    started = time.perf_counter()
    page.goto(f"{url}/{path}")
    wait_rendered(page, timeout_ms)
    return page, time.perf_counter() - started


#: Each page's link text in the sidebar and the title it shows.
NAV = {"executions": "Executions", "artifacts": "Artifacts", "lineage": "Lineage",
       "compare_models": "Compare models", "compare_datasets": "Compare datasets",
       "deployments": "Deployments", "sql_console": "SQL console", "overview": "Overview"}


def navigate(page: Any, title: str, timeout_ms: int = 60_000) -> float:
    """Click ``title`` in the sidebar, as a user moves between pages (no reload, one session),
    and return the seconds until that page is rendered."""
    started = time.perf_counter()
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=timeout_ms)
    wait_rendered(page, timeout_ms)
    return time.perf_counter() - started
