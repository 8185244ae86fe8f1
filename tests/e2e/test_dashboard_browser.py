"""The dashboard in a real headless Chromium (Debian's chromium, driven by Playwright): the
metrics service as its own process, a known set of events, the figures on the page, the
language switch, and a screenshot kept as a test artifact."""

from __future__ import annotations

import shutil

import pytest

from services.launcher import ServiceProcesses
from tests.support import broker as amqp
from tests.support.board_events import Q4, board_events
from tests.support.system import ARTIFACTS, free_port

pytestmark = pytest.mark.infra

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# the flags a closed network needs (see the machine notes): no background connections
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def metrics_url(settings):
    processes = ServiceProcesses(settings, ports={"metrics": free_port()}, services=("metrics",),
                                 log_dir=ARTIFACTS / settings.namespace)
    processes.start_all()
    try:
        await processes.wait_ready(timeout=60)
        events = board_events()
        await amqp.publish_many(settings.amqp_url, f"{settings.namespace}.events",
                                [(e["event_type"], e) for e in events])
        yield processes.url("metrics")
    finally:
        processes.stop_all()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (Debian: apt-get install chromium); "
                                             "only the browser test is skipped")
async def test_the_dashboard_shows_the_figures_in_swedish_and_english(metrics_url):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{metrics_url}/?period={Q4}")

            async def cell(party: str, column: int) -> str:
                return (await page.text_content(f'[data-figure="table-party:{party}:{column}"]') or "").strip()

            async def figures_shown():  # the events are still being projected at first
                await page.reload()
                await page.wait_for_selector("body[data-loaded=yes]", timeout=15000)
                return await cell("FK", 1) == "<5"  # published

            await amqp.eventually(figures_shown, timeout=45, interval=1, what="the figures on the page")
            # AF 7, FK 2, KOMMUN 6, REGION 0, protected as the API publishes them
            shown = [await cell(p, 1) for p in ("AF", "FK", "KOMMUN", "REGION")]
            assert shown[1] == "<5" and shown[0] in ("x", "–") and shown[2] in ("x", "–") and shown[3] in ("0", "<5")
            assert await cell("AF", 3) == "25.0 %"  # the even-spread goal
            assert (await page.text_content('[data-figure="table-meetings:Genomförda:1"]')).strip() == "2"
            # six-month outcomes per gender: 1 of 2 women self-sufficient, both under 5
            assert (await page.text_content('[data-figure="table-outcomes:Kvinna:1"]')).strip() == "<5 / <5"
            assert await page.locator("#chart-party .main-svg").count() > 0  # plotly drew it
            assert "Remisser per remitterande part" in await page.text_content("h2")

            await page.click("#lang")
            await page.wait_for_function("document.documentElement.lang === 'en'")
            assert "Referrals per referring party" in await page.text_content("h2")
            assert (await page.text_content('[data-figure="table-meetings:Held:1"]')).strip() == "2"
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()
