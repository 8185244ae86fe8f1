"""The dashboard in a real headless Chromium (Debian's chromium, driven by Playwright): the
metrics service as its own process, a generated county quarter; the board signs in (the
development sign-in), reads the quarter's exact figures, switches to English, and the public
view shows the public edition and no team. Screenshots are kept as test artifacts."""

from __future__ import annotations

from collections import Counter

import asyncpg
import pytest

from tests.support import broker as amqp
from tests.support.board_events import QUARTER, county_quarter, events_from_facts
from tests.support.browser import CHROMIUM, FLAGS
from tests.support.system import ARTIFACTS, free_port
from tools.launcher import ServiceProcesses

pytestmark = pytest.mark.infra


async def _count(settings, sql: str) -> int:
    conn = await asyncpg.connect(settings.service_database_url("metrics"))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.fixture
async def metrics(settings):
    """The metrics service fed a county quarter; its public edition made once all is in."""
    processes = ServiceProcesses(
        settings,
        ports={"metrics": free_port()},
        services=("metrics",),
        log_dir=ARTIFACTS / settings.namespace,
        extra_env={"TRISAM_METRICS_EDITION_GRACE_DAYS": "100000"},
    )
    processes.start_all()
    try:
        await processes.wait_ready(timeout=60)
        cases, meetings = county_quarter()
        events = events_from_facts(cases, meetings)
        await amqp.publish_many(
            settings.amqp_url, f"{settings.namespace}.events", [(e["event_type"], e) for e in events]
        )

        async def all_in():
            return await _count(settings, "SELECT count(*) FROM event_log") == len(events)

        await amqp.eventually(all_in, timeout=60, what="every event logged")
        processes.stop_all()  # again, now the quarter may have its public edition
        processes.extra_env["TRISAM_METRICS_EDITION_GRACE_DAYS"] = "0"
        processes.start_all()
        await processes.wait_ready(timeout=60)

        async def edition():
            return await _count(settings, "SELECT count(*) FROM public_editions")

        await amqp.eventually(edition, timeout=60, what="the public edition")
        yield processes.url("metrics"), cases
    finally:
        processes.stop_all()


@pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium found (Debian: apt-get install chromium); only the browser test is skipped"
)
async def test_the_board_signs_in_reads_exact_figures_in_two_languages_and_the_public_sees_no_team(metrics):
    from playwright.async_api import async_playwright

    url, cases = metrics
    by_party = Counter(c.referring_party for c in cases)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            async def cell(figure: str, key: str, column: int) -> str:
                return (await page.text_content(f'[data-figure="{figure}:{key}:{column}"]') or "").strip()

            # the public view first: the edition, no team anywhere
            await page.goto(f"{url}/")
            await page.wait_for_selector("body[data-loaded=yes]", timeout=20000)
            assert await page.get_attribute("body", "data-audience") == "public"
            assert QUARTER in await page.text_content("#public-period")
            public_text = await page.text_content("body")
            assert "Offentlig utgåva" in public_text
            assert not any(team in public_text for team in {c.team_id for c in cases})
            assert await page.locator("#public-controls select#exact-scope").count() == 0
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-public.png"), full_page=True)

            # the board signs in (development sign-in) and reads the quarter exactly
            await page.click("#view-exact")
            await page.select_option("#sign-in-role", "board")
            await page.click("#sign-in button[type=submit]")
            await page.wait_for_selector("#exact-controls:not([hidden])", timeout=15000)
            await page.fill("#exact-period", QUARTER)
            await page.click("#exact-controls button[type=submit]")
            await page.wait_for_selector("body[data-loaded=yes][data-audience=exact]", timeout=20000)
            assert "Styrelsen" in await page.text_content("#who")
            for party, n in by_party.items():
                assert await cell("cases_referred.referring_party", party, 1) == str(n)
            assert await cell("cases_referred.referring_party", "AF", 3) == "25.0 %"  # the goal
            assert "Nya remitterade ärenden" in await page.text_content("#figure-cases_referred h2")
            assert await page.locator("#figure-cases_referred .main-svg").count() > 0  # plotly drew it
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            await page.select_option("#exact-breakdown", "team")  # one breakdown at a time
            small = [k for k, v in Counter(c.team_id for c in cases).items() if 0 < v < 5]
            assert small
            for team in small:  # the small cells the public cannot see, exactly
                assert await cell("cases_referred.team", team, 1) == str(Counter(c.team_id for c in cases)[team])

            await page.click("#lang")
            await page.wait_for_function("document.documentElement.lang === 'en'")
            assert "New cases referred" in await page.text_content("#figure-cases_referred h2")
            await page.select_option("#exact-breakdown", "referring_party")
            assert "Social Insurance Agency" in await page.text_content("#figure-cases_referred")
            await page.screenshot(path=str(ARTIFACTS / "dashboard-en.png"), full_page=True)

            # and the public view, in English: still no team
            await page.click("#view-public")
            await page.wait_for_selector("body[data-loaded=yes][data-audience=public]", timeout=20000)
            text = " ".join([await page.inner_text(s) for s in ("#public-controls", "#notice", "#figures")])
            assert "Public edition" in text
            assert not any(team in text for team in {c.team_id for c in cases})
            assert errors == []
        finally:
            await browser.close()
