"""Every page of the app in a real headless Chromium: started with `cmfq ui`, rendered,
checked for what a user sees, screenshotted into tests/artifacts/ (and timed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.chromium import NAV, PAGES, chromium, navigate, open_page, wait_rendered
from tests.conftest import BIN, _free_port, start_server, stop_server

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def app_url(demo_warehouse: Path) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server([str(BIN / "cmfq"), "ui", "-w", str(demo_warehouse), "--port", str(port)],
                        url + "/_stcore/health", timeout=60)
    try:
        yield url
    finally:
        stop_server(proc)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "render_times.json").write_text(json.dumps(TIMES, indent=2))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def visit(browser: object, url: str, name: str) -> object:
    page, seconds = open_page(browser, url, PAGES[name])
    TIMES[name] = round(seconds, 2)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
    _not_blank(ARTIFACTS / f"{name}.png")
    assert not page.locator('[data-testid="stException"]').count(), f"{name}: a traceback is shown"  # type: ignore[attr-defined]
    return page


def _not_blank(png: Path) -> None:
    from PIL import Image

    pixels = Image.open(png).convert("L").getextrema()
    assert pixels[1] - pixels[0] > 50, f"{png.name} looks blank"


def test_overview(browser: object, app_url: str) -> None:
    page = visit(browser, app_url, "overview")
    assert page.get_by_text("Overview", exact=True).first.is_visible()
    metrics = page.locator('[data-testid="stMetric"]').all_inner_texts()
    assert any("Executions" in m and "29" in m for m in metrics)
    assert page.get_by_role("heading", name="Recent executions").is_visible()
    assert page.get_by_role("heading", name="Failures").is_visible()
    search = page.get_by_role("textbox", name="Search", exact=True)
    search.fill("wine-classifier/evaluate")
    search.press("Enter")
    page.get_by_text("match(es)").first.wait_for()
    wait_rendered(page)
    assert page.get_by_text("match(es)").first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "overview_search.png"), full_page=True)


def test_executions(browser: object, app_url: str) -> None:
    page = visit(browser, app_url, "executions")
    assert page.get_by_text("29 executions").is_visible()
    assert page.get_by_text("Parameters", exact=True).first.is_visible()


def test_artifacts(browser: object, app_url: str) -> None:
    page = visit(browser, app_url, "artifacts")
    assert page.locator('[data-testid="stCaptionContainer"]').filter(has_text="artifacts").first.is_visible()
    assert page.get_by_text("Produced by").is_visible()


def test_lineage(browser: object, app_url: str, demo_warehouse: Path) -> None:
    import cmfq

    with cmfq.Warehouse(demo_warehouse) as wh:  # the page centers on the latest model, both ways, depth 10
        latest = wh.sql("SELECT hash FROM models ORDER BY trained_at DESC NULLS LAST LIMIT 1")["hash"][0]
        nodes = wh.lineage(latest, "both", 10).nodes
    executions = nodes.filter(nodes["type"] == "execution").height
    page = visit(browser, app_url, "lineage")
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="nodes").first.inner_text()
    assert caption.startswith(f"{nodes.height} nodes ({nodes.height - executions} artifacts, {executions} executions)")
    assert page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').count() >= 1


def test_compare_models(browser: object, app_url: str) -> None:
    page = visit(browser, app_url, "compare_models")
    assert page.get_by_text("10 runs of train, 9 scored on roc_auc").is_visible()
    assert page.get_by_text("Parallel coordinates").is_visible()
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 3  # scatter, parallel, curves


def test_compare_datasets(browser: object, app_url: str) -> None:
    page = visit(browser, app_url, "compare_datasets")
    assert page.get_by_text("Runs on each dataset").is_visible() and page.get_by_text("Column statistics").is_visible()
    assert page.get_by_text("Drift from").first.is_visible()


def test_deployments(browser: object, app_url: str) -> None:
    page = visit(browser, app_url, "deployments")
    assert page.get_by_text("Status timeline").is_visible() and page.get_by_text("Serving performance").is_visible()
    assert page.locator('[data-testid="stVegaLiteChart"]').count() == 2


def test_sql_console(browser: object, app_url: str) -> None:
    page = visit(browser, app_url, "sql_console")
    assert page.get_by_text("Views and macros").is_visible()
    page.get_by_role("textbox").first.fill("SELECT count(*) AS n FROM executions")
    page.get_by_role("button", name="Run").click()
    # The rerun starts after the click reaches the server: wait for its answer, not for "idle".
    page.get_by_text("1 rows").wait_for(timeout=60_000)
    wait_rendered(page)
    assert page.get_by_text("1 rows").is_visible()
    assert page.get_by_role("button", name="Download CSV").is_visible()


def test_sidebar_navigation_reaches_every_page(browser: object, app_url: str) -> None:
    # How a user moves through the app: one session, a click per page. The times are
    # recorded beside the new-tab ones (render_times.json), judged by `make bench`, not here.
    page, _ = open_page(browser, app_url)
    for name, title in NAV.items():
        TIMES[f"nav_{name}"] = round(navigate(page, title), 2)
        assert not page.locator('[data-testid="stException"]').count(), f"{name}: a traceback is shown"  # type: ignore[attr-defined]
