"""The app in a real browser: `streamlit run` + Playwright driving Debian's chromium.

Goes Overview -> Dataset -> Saliency -> Watermark inspector -> Verify -> Evidence, runs the demo verification
against the Malicious suspect, asserts the verdict and saves screenshots under
docs/screenshots/. Skipped only when chromium (or the playwright package) is absent;
`make browser-deps` installs chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from xmark_core.app_support import demo

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

if not os.path.exists(CHROMIUM):
    pytest.skip(f"chromium not found at {CHROMIUM}; run `make browser-deps` (apt-get install chromium)",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
           "--server.fileWatcherType", "none", "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port),
           "--browser.gatherUsageStats", "false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited early:\n{proc.stdout.read()}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("streamlit did not answer /_stcore/health within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1440, "height": 1500})
        pg.set_default_timeout(90_000)
        yield pg
        browser.close()


BUSY = ('[data-testid="stSpinner"], [data-testid="stSkeleton"], '
        '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]')


def _settle(pg, timeout_s: float = 240) -> None:
    """Wait until Streamlit has finished the current run (no spinner, skeleton or running icon for 2 s)."""
    quiet, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        quiet = quiet + 1 if pg.locator(BUSY).count() == 0 else 0
        if quiet >= 4:
            return
        pg.wait_for_timeout(500)
    raise AssertionError(f"the app was still busy after {timeout_s} s")


def _goto(pg, title: str) -> None:
    pg.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    pg.get_by_role("heading", name=title).first.wait_for()
    _settle(pg)


def _no_exception(pg) -> None:
    assert pg.get_by_test_id("stException").count() == 0, pg.get_by_test_id("stException").first.inner_text()


def _run_verification(pg, title: str, done: str) -> str:
    """Open page ``title``, press "Run verification", wait for ``done``; returns the page text."""
    _goto(pg, title)
    _no_exception(pg)
    pg.get_by_role("button", name="Run verification").click()
    pg.get_by_text(done).first.wait_for(timeout=240_000)
    _settle(pg)
    _no_exception(pg)
    return pg.inner_text("body")


def test_tour_dataset_inspector_verify(page, server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg = page
    pg.goto(server)
    pg.get_by_role("heading", name="X-Mark").first.wait_for()
    _settle(pg)
    _no_exception(pg)
    pg.screenshot(path=str(SHOTS / "overview.png"))

    _goto(pg, "Dataset")
    pg.locator('[data-testid="stImage"] img').first.wait_for()
    pg.locator(".js-plotly-plot").first.wait_for()
    _no_exception(pg)
    pg.screenshot(path=str(SHOTS / "dataset.png"), full_page=True)

    status = demo.demo_status()
    if status.ready:
        _goto(pg, "Saliency")
        assert pg.locator('[data-testid="stImage"] img').count() == 2
        _no_exception(pg)
        pg.screenshot(path=str(SHOTS / "saliency.png"))
    _goto(pg, "Watermark inspector")
    if not status.ready:
        assert "make models" in pg.inner_text("body")
        pytest.skip(f"inspector and verification steps need the demo models: {status.message()}")
    pg.locator(".js-plotly-plot").first.wait_for()
    _no_exception(pg)
    assert "PSNR" in pg.inner_text("body")
    pg.screenshot(path=str(SHOTS / "inspector.png"), full_page=True)

    body = _run_verification(pg, "Verify", "Ownership is claimed")
    assert "Ownership claimed." in body and "p-value" in body
    pg.screenshot(path=str(SHOTS / "verify.png"), full_page=True)

    _goto(pg, "Evidence")
    pg.get_by_text("Download evidence.json").first.wait_for()
    _no_exception(pg)
    pg.screenshot(path=str(SHOTS / "evidence.png"), full_page=True)

    # StealthMark: the shipped marked segmenter draws the demo's QR code
    body = _run_verification(pg, "Segmentation ownership", "VERIFIED.")
    assert "XMARK:DEMO" in body and "NOT VERIFIED" not in body
    pg.screenshot(path=str(SHOTS / "segmentation.png"), full_page=True)
