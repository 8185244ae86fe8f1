"""The team workspace in a real headless Chromium (Debian's chromium, driven by Playwright),
the platform as separate processes (the four services and the workspace), the whole path as
people walk it: an officer submits a referral on the form (a bad personnummer refused with the
API's message, then a good one); the coordinator sees it on the agenda; a team member without
consent sees the notice, not the details; consent is recorded, the details appear, and the read
is in the access log; with the development clock moved past the meeting the coordinator records
the consultation; moved six months on, the officer sees and records the six-month follow-up.

Every page is checked with axe-core (axe-playwright-python): no serious or critical violation.
No page holds a personnummer where the role lacks consent, nor do the workspace's logs.
Screenshots of each step: test-artifacts/workspace/."""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.support.browser import CHROMIUM, FLAGS
from tests.support.identities import random_adult
from tests.support.privacy import personnummer_in
from tests.support.system import ARTIFACTS, free_port
from tools.launcher import PROCESSES, ServiceProcesses

pytestmark = pytest.mark.infra

SHOTS = ARTIFACTS / "workspace"
TEAM = "GAVLE-BRYNAS"
QUESTION = "Behöver samordnat stöd för återgång i arbete efter lång sjukskrivning."


class Walk:
    """The browser, one context (its own session cookie) per person, and the checks every
    page gets: axe-core, and no personnummer where the role may not see one."""

    def __init__(self, browser, url: str):
        self.browser, self.url, self.step = browser, url, 0
        self.violations: list[str] = []

    async def person(self, role: str, party: str, user: str):
        context = await self.browser.new_context(viewport={"width": 1280, "height": 1000})
        page = await context.new_page()
        await page.goto(f"{self.url}/sign-in")
        await page.fill("#user_id", user)
        await page.select_option("#role", role)
        await page.select_option("#party", party)
        await page.fill("#team", TEAM)
        await page.click("#dev-sign-in button[type=submit]")
        await page.wait_for_selector("#who")
        assert user in await page.inner_text("#who")
        return page

    async def check(self, page, name: str, *, may_hold_personnummer: bool = False) -> str:
        """Screenshot, accessibility (axe-core) and privacy of the page as it is now."""
        from axe_playwright_python.async_playwright import Axe

        self.step += 1
        await page.screenshot(path=str(SHOTS / f"{self.step:02d}-{name}.png"), full_page=True)
        results = await Axe().run(page)
        for violation in results.response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                self.violations.append(f"{name}: {violation['id']} ({violation['impact']}): {violation['help']}")
        html = await page.content()
        if not may_hold_personnummer:
            assert personnummer_in(html) == [], f"a personnummer on {name}"
        return html


CLOCKED = ("meeting", "followup")  # the services whose clock the walk needs moved (cut-offs, due dates)


async def _restart(processes: ServiceProcesses, offset_days: float) -> None:
    """The services that judge time again, with the development clock this far ahead."""
    for name in CLOCKED:
        processes.procs[name].terminate()
        processes.procs[name].wait(15)
    processes.extra_env["TRISAM_DEV_CLOCK_OFFSET_DAYS"] = f"{offset_days:.6f}"
    for name in CLOCKED:
        processes.start(name)
    await processes.wait_ready(timeout=60, only=list(CLOCKED))


async def _until(page, url: str, selector: str, timeout: float = 30.0) -> None:
    """Reload until the page shows ``selector`` (events travel between the services)."""
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while True:
        await page.goto(url)
        if await page.locator(selector).count():
            return
        if datetime.now(UTC) > deadline:
            raise AssertionError(f"{selector} not on {url} within {timeout:.0f}s")
        await page.wait_for_timeout(500)


@pytest.fixture
async def platform(settings):
    ports = {name: free_port() for name in PROCESSES}
    processes = ServiceProcesses(
        settings,
        ports=ports,
        services=PROCESSES,
        log_dir=ARTIFACTS / settings.namespace,
        extra_env={
            "TRISAM_OUTBOX_POLL_SECONDS": "0.2",
            "TRISAM_MEETING_CHECK_SECONDS": "0.5",
            "TRISAM_FOLLOWUP_CHECK_SECONDS": "0.5",
        },
    )
    processes.start_all()
    try:
        await processes.wait_ready(timeout=60)
        yield processes
    finally:
        processes.stop_all()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (Debian: apt-get install chromium)")
async def test_the_whole_path_in_the_workspace(platform):
    from playwright.async_api import async_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    url = platform.url("workspace")
    today = date.today().isoformat()
    personnummer = random_adult(random.Random())
    bad = personnummer[:-1] + str((int(personnummer[-1]) + 1) % 10)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            walk = Walk(browser, url)
            await walk.check(await _signed_out(browser, url), "sign-in")

            # the officer (AF) submits a referral: a bad personnummer is refused with the API's message
            officer = await walk.person("officer", "AF", "af-handlaggare")
            await officer.goto(f"{url}/referrals/new")
            await officer.fill("#agency_ref", f"AF-{random.randrange(10**8)}")
            await officer.fill("#personnummer", bad)
            await officer.select_option("#team_id", TEAM)
            await officer.fill("#question", QUESTION)
            await officer.check("#reason-OKLAR_ARBETSFORMAGA")
            for party in ("AF", "KOMMUN", "REGION"):  # not FK: its member will see the notice
                await officer.check(f"#consent-{party}")
            await officer.fill("#consent_given_on", today)
            await officer.fill("#form_ref", "SAMTYCKE-1")
            await officer.click("#referral-form button[type=submit]")
            await officer.wait_for_selector("#errors")
            assert "Personnumrets kontrollsiffra stämmer inte." in await officer.inner_text("#errors")
            assert "Personnumrets kontrollsiffra" in await officer.inner_text("#personnummer-error")
            await walk.check(officer, "officer-referral-refused", may_hold_personnummer=True)
            await officer.fill("#personnummer", personnummer)
            await officer.click("#referral-form button[type=submit]")
            await officer.wait_for_selector("#notice")
            case_ref = re.search(r"/cases/(TS-[A-Z0-9]+)", officer.url).group(1)
            await walk.check(officer, "officer-referral-accepted")

            # the coordinator sees it on the agenda of the team's next meeting
            coordinator = await walk.person("coordinator", "REGION", "rk-brynas")
            await _until(coordinator, f"{url}/team", f'.meeting tr[data-case="{case_ref}"]')
            meeting = coordinator.locator(f'.meeting:has(tr[data-case="{case_ref}"])')
            meeting_id = (await meeting.get_attribute("id")).removeprefix("meeting-")
            await walk.check(coordinator, "coordinator-team")
            await coordinator.goto(f"{url}/meetings/{meeting_id}")  # the open agenda: pre-meeting and cancel
            await walk.check(coordinator, "coordinator-meeting-open")

            # an FK member: no consent for FK, so the notice and not the details
            member = await walk.person("member", "FK", "fk-brynas")
            await member.goto(f"{url}/agenda")
            await walk.check(member, "member-agenda-purpose")  # nothing read before the purpose
            await member.goto(f"{url}/cases")  # an officer's page: not for a member
            assert "Din roll får inte se detta." in await member.inner_text("h1")
            await walk.check(member, "member-forbidden")
            await member.goto(f"{url}/agenda")
            await member.fill("#purpose", "Förmöte inför teamets möte")
            await member.click("#purpose-form button[type=submit]")
            await member.wait_for_selector("#purpose-shown")
            item = member.locator(f'li[data-case="{case_ref}"]')
            assert await item.get_attribute("data-shown") == "notice"
            assert "inte gett samtycke" in await item.inner_text()
            html = await walk.check(member, "member-no-consent")
            assert QUESTION not in html and personnummer.replace("-", "") not in html

            # the officer records FK's consent; the member's agenda shows the details
            await officer.goto(f"{url}/cases/{case_ref}")
            await officer.select_option("#c-party", "FK")
            await officer.fill("#c-given_on", today)
            await officer.fill("#c-form_ref", "SAMTYCKE-2")
            await officer.click("#consent-form button[type=submit]")
            await officer.wait_for_selector('#consent-history tr[data-party="FK"][data-action="given"]')
            await walk.check(officer, "officer-consent-recorded")
            await officer.goto(f"{url}/referrals/new")
            await walk.check(officer, "officer-referral-form")
            await member.goto(f"{url}/agenda")
            assert await item.get_attribute("data-shown") == "details"
            assert personnummer.replace("-", "") in await item.locator(".pnr").inner_text()
            assert QUESTION in await item.locator(".question").inner_text()
            await walk.check(member, "member-details", may_hold_personnummer=True)

            # the auditor: both reads in the case's access log, denied and then granted
            auditor = await walk.person("auditor", "REGION", "granskare-1")
            await auditor.goto(f"{url}/audit")
            await auditor.fill("#case_ref", case_ref)
            await auditor.click("#audit-form button[type=submit]")
            await auditor.wait_for_selector("#access-log")
            reads = auditor.locator('#access-log tr[data-user="fk-brynas"]')
            assert [await r.get_attribute("data-outcome") for r in await reads.all()] == ["denied", "granted"]
            await walk.check(auditor, "auditor-access-log")
            await auditor.goto(f"{url}/audit/figures")
            await walk.check(auditor, "auditor-figure-reads")

            # the meeting is held: the clock past its start; the coordinator records the consultation
            await coordinator.goto(f"{url}/meetings/{meeting_id}")
            meeting_date = datetime.strptime(meeting_id.rsplit("-", 1)[1], "%Y%m%d").date()  # <team>-YYYYMMDD
            starts = datetime.combine(meeting_date, datetime.min.time(), UTC) + timedelta(hours=10)
            offset = (starts - datetime.now(UTC)).total_seconds() / 86400
            await _restart(platform, offset)
            form_url = f"{url}/meetings/{meeting_id}/cases/{case_ref}/consultation"
            await _until(coordinator, f"{url}/meetings/{meeting_id}", "h1:has-text('dagordningen fastställd')")
            await walk.check(coordinator, "coordinator-meeting-agreed")
            await coordinator.goto(form_url)
            await coordinator.click("#consultation-form button[type=submit]")  # nothing chosen: told what
            await coordinator.wait_for_selector("#errors")
            assert await coordinator.locator("#parties_present-error").count() == 1
            await walk.check(coordinator, "coordinator-consultation-refused")
            for party in ("AF", "FK", "KOMMUN", "REGION"):
                await coordinator.check(f"#present-{party}")
            await coordinator.check("#attended-yes")
            await coordinator.select_option("#action_0_type", "joint_mapping")
            await coordinator.select_option("#action_0_owner", "KOMMUN")
            await coordinator.fill("#action_0_due_on", (meeting_date + timedelta(days=30)).isoformat())
            await coordinator.click("#consultation-form button[type=submit]")
            await coordinator.wait_for_selector("#notice")
            assert "Konsultationen är registrerad." in await coordinator.inner_text("#notice")
            await walk.check(coordinator, "coordinator-consultation-recorded")

            # six months on: the officer sees the follow-up due and records it
            await _restart(platform, offset + 190)
            await _until(officer, f"{url}/followups", f'tr[data-followup="{case_ref}.six_months"]')
            await walk.check(officer, "officer-followups")
            await officer.goto(f"{url}/cases")
            assert await officer.get_attribute(f'tr[data-case="{case_ref}"]', "data-status") == "followup_due"
            await walk.check(officer, "officer-cases")
            await officer.goto(f"{url}/followups/{case_ref}.six_months")
            await officer.fill("#recorded_on", (meeting_date + timedelta(days=186)).isoformat())
            await officer.check("#reached-yes")
            await officer.select_option("#income_source", "LON")
            await officer.select_option("#readiness", "more")
            await officer.click("#followup-form button[type=submit]")
            await officer.wait_for_selector("#records")
            await walk.check(officer, "officer-followup-recorded")

            # English too
            await officer.click("a.lang")
            await officer.wait_for_function("document.documentElement.lang === 'en'")
            assert "Six-month follow-up" in await officer.inner_text("h1")
            await walk.check(officer, "officer-followup-en")
            assert walk.violations == [], "\n".join(walk.violations)
        finally:
            await browser.close()
    logs = (ARTIFACTS / platform.settings.namespace / "workspace.log").read_text()
    assert personnummer_in(logs) == [] and QUESTION not in logs


async def _signed_out(browser, url: str):
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{url}/team")  # not signed in: to the sign-in page
    await page.wait_for_selector("#dev-sign-in")
    return page
