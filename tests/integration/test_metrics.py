"""Metrics on the real broker and database: every figure from a known set of events, exactly;
the rebuild gives the same; suppression; CSV, the report page and the `report` command."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from services.metrics import app as metrics_app
from tests.support import broker as amqp
from tests.support.board_events import Q4, board_events
from tests.support.http import client_for

pytestmark = pytest.mark.infra

EXACT = {
    "referrals_by_party": {"AF": 7, "FK": 2, "KOMMUN": 6, "REGION": 0},
    "referrals_by_gender": {"MAN": 6, "WOMAN": 9, "UNKNOWN": 0},
    "income_at_referral": {"SJUKPENNING": 7, "A_KASSA": 2, "FORSORJNINGSSTOD": 6},
    "cases_consulted_by_gender": {"MAN": 1, "WOMAN": 7, "UNKNOWN": 0},
}


async def start_with_events(settings, runtimes, **overrides):
    settings = settings.model_copy(update=overrides)
    runtime = await runtimes(metrics_app.spec(settings), settings)
    events = board_events()
    await amqp.publish_many(settings.amqp_url, f"{settings.namespace}.events",
                            [(e["event_type"], e) for e in events])

    async def all_in():
        async with runtime.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM event_log") == len(events)

    await amqp.eventually(all_in, timeout=30, what="every event in the metrics event log")
    await published(runtime)
    return runtime, settings


async def published(runtime) -> None:
    """Wait until the publisher has published the figures of every event logged."""
    async def up_to_date():
        async with runtime.pool.acquire() as conn:
            return await conn.fetchval(
                "SELECT s.seq = (SELECT coalesce(max(seq), 0) FROM event_log) AND s.published_at IS NOT NULL "
                "FROM snapshot_state s")

    await amqp.eventually(up_to_date, timeout=60, what="the figures published")


async def test_every_figure_from_a_known_set_of_events(settings, runtimes):
    runtime, settings = await start_with_events(settings, runtimes, suppression_threshold=1)
    async with client_for(runtime) as api:
        answer = await api.get("/api/v1/figures", params={"period": Q4})
        assert answer.status_code == 200, answer.text
        f = answer.json()["figures"]
        for name, counts in EXACT.items():
            assert {k: v for k, v in f[name]["counts"].items() if v or k in counts} == counts, name
        assert f["referrals_by_party"]["total"] == 15
        assert f["referrals_by_party"]["shares"]["AF"] == round(7 / 15, 4)
        assert f["referrals_by_party"]["goal_share"]["FK"] == 0.25
        assert f["referrals_by_age_band"]["counts"]["25-34"] == 15
        assert f["violence_question_asked"] == {"count": 7, "of": 15, "share": round(7 / 15, 4)}
        assert f["individual_participation"] == {"count": 4, "of": 8, "share": 0.5}
        assert {k: v for k, v in f["activities"].items() if v} == {
            "sip": 5, "joint_mapping": 5, "return_to_work_plan": 3}
        assert f["lead_time_days"]["all"] == {"n": 8, "median": 28.0}
        assert f["lead_time_days"]["by_team"] == {"T-ONE": {"n": 5, "median": 28.0},
                                                  "T-TWO": {"n": 3, "median": 28.0}}
        assert f["queue_by_team"] == {"T-ONE": 4, "T-TWO": 3}
        assert f["meetings"] == {"held": 2, "cancelled_by_reason": {
            "no_cases": 1, "staff_absent": 1, "other": 0}}
        assert f["pre_meetings_held"] == 2
        assert f["postponements_by_reason"] == {"consent_missing": 2, "consent_withdrawn": 0,
                                                "meeting_cancelled": 1}
        # MAY5's follow-up was cancelled (its case closed): not due
        assert f["followup_response"]["counts"] == {"reached": 4, "not_reached": 1, "not_recorded": 0}
        assert f["followup_response"]["total"] == 5
        support = f["public_support"]["all"]
        assert support["at_referral"] == {"count": 4, "of": 4, "share": 1.0}
        assert support["at_follow_up"] == {"count": 1, "of": 4, "share": 0.25}
        assert f["public_support"]["by_gender"]["at_follow_up"]["WOMAN"] == {"count": 1, "of": 2, "share": 0.5}
        ss = f["self_sufficiency"]
        assert ss["on_income_support_at_referral"] == 4
        assert ss["self_sufficient"] == {"count": 3, "share": 0.75}
        assert {k: v for k, v in ss["by_type"]["counts"].items() if v} == {
            "LON": 2, "STUDIEMEDEL": 1, "other_support": 1}
        assert f["more_ready"] == {"count": 2, "of": 3, "share": round(2 / 3, 4)}
        # by gender (MAY0, MAY2 men; MAY1, MAY3 women) and by referring party (all KOMMUN)
        assert ss["by_gender"]["MAN"] == {"count": 2, "of": 2, "share": 1.0}
        assert ss["by_gender"]["WOMAN"] == {"count": 1, "of": 2, "share": 0.5}
        assert ss["by_referring_party"]["KOMMUN"] == {"count": 3, "of": 4, "share": 0.75}
        assert f["more_ready_by"]["gender"]["MAN"] == {"count": 1, "of": 2, "share": 0.5}
        assert f["more_ready_by"]["referring_party"]["KOMMUN"] == {"count": 2, "of": 3, "share": round(2 / 3, 4)}

        # a team, a municipality; gender, age band and referring party are breakdowns, not filters
        one = (await api.get("/api/v1/figures", params={"period": Q4, "team_id": "T-ONE"})).json()["figures"]
        assert one["referrals_by_party"]["counts"] == {"AF": 7, "FK": 2, "KOMMUN": 0, "REGION": 0}
        assert one["meetings"]["held"] == 1
        assert list(one["queue_by_team"]) == ["T-ONE"]
        sandviken = (await api.get("/api/v1/figures", params={"period": Q4, "municipality": "Sandviken"})).json()
        assert sandviken["figures"]["referrals_by_party"]["counts"]["KOMMUN"] == 6
        assert sandviken["figures"]["referrals_by_party"]["total"] == 6
        assert sandviken["figures"]["postponements_by_reason"]["consent_missing"] == 0
        assert sandviken["filter"]["municipality"] == "Sandviken"
        for refused in ({"referring_party": "FK"}, {"gender": "MAN"}, {"age_band": "55-65"}):
            answer_ = await api.get("/api/v1/figures", params={"period": Q4, **refused})
            assert answer_.status_code == 422 and answer_.json()["detail"]["code"] == "filter_not_published"
        unknown = await api.get("/api/v1/figures", params={"period": Q4, "team_id": "T-NONE"})
        assert unknown.status_code == 404
        for nonsense in ("9999Q4", "0000", "2026-13", "2026Q5", "2026-02-30..2026-03-01"):
            answer_ = await api.get("/api/v1/figures", params={"period": nonsense})
            assert answer_.status_code == 422 and answer_.json()["detail"]["code"] == "period_invalid", nonsense
        # a range is published only where it is a month, a quarter or a year
        ranged = await api.get("/api/v1/figures", params={"period": "2026-10-01..2026-12-31"})
        assert ranged.json()["figures"] == f and ranged.json()["filter"]["period"] == Q4
        partial = await api.get("/api/v1/figures", params={"period": "2026-10-01..2026-11-15"})
        assert partial.status_code == 422 and partial.json()["detail"]["code"] == "period_not_published"
        month = (await api.get("/api/v1/figures", params={"period": "2026-10"})).json()
        assert month["figures"]["lead_time_days"]["by_team"] == {}  # a team's month is not published
        assert (await api.get("/api/v1/figures", params={"period": "2026-10", "team_id": "T-ONE"})).status_code == 404
        earlier = await api.get("/api/v1/trend", params={"period": "2000Q1"})  # no facts then: zeros
        assert earlier.status_code == 200
        assert earlier.json()["quarters"][-1]["referrals_by_party"]["total"] == 0
        q3 = (await api.get("/api/v1/figures", params={"period": "2026Q3"})).json()["figures"]
        assert q3["referrals_by_party"]["counts"]["AF"] == 1
        year = (await api.get("/api/v1/figures", params={"period": "2026"})).json()["figures"]
        assert year["referrals_by_party"]["total"] == 15 + 1 + 6

        # the rebuild from the event log gives the same figures
        before = answer.json()
        from services.metrics import projections
        replayed = await projections.rebuild(runtime.pool)
        assert replayed == len(board_events())
        await published(runtime)
        after = (await api.get("/api/v1/figures", params={"period": Q4})).json()
        assert after == before


async def test_small_counts_are_hidden_everywhere(settings, runtimes):
    runtime, settings = await start_with_events(settings, runtimes)
    async with client_for(runtime) as api:
        f = (await api.get("/api/v1/figures", params={"period": Q4})).json()["figures"]
        # AF 7, FK 2, KOMMUN 6, REGION 0; FK is hidden, and so much more that neither this
        # table nor its months, its teams (T-ONE: AF 7, FK 2) or the year gives FK away
        # (which of "x" and "–" depends on what the publications while the events arrived showed:
        # what was published stays as it was while its count does not change)
        counts = f["referrals_by_party"]["counts"]
        assert counts["FK"] == "<5" and counts["AF"] in ("x", "–") and counts["KOMMUN"] in ("x", "–")
        assert counts["REGION"] in (0, "<5")
        assert set(f["referrals_by_party"]["shares"].values()) == {None}
        assert f["referrals_by_party"]["total"] in ("x", "–")
        one = (await api.get("/api/v1/figures", params={"period": Q4, "team_id": "T-ONE"})).json()["figures"]
        assert one["referrals_by_party"]["counts"]["FK"] == "<5"
        assert isinstance(one["referrals_by_party"]["counts"]["AF"], str)  # else 15 - 6 - AF = FK
        assert f["individual_participation"]["count"] == "<5"
        assert f["followup_response"]["counts"]["not_reached"] == "<5"
        csv = (await api.get("/api/v1/figures.csv", params={"period": Q4})).text
        assert "referrals_by_party.counts.FK,<5" in csv and f"referrals_by_party.counts.KOMMUN,{counts['KOMMUN']}" in csv
        assert ",2\n" not in csv.split("filter.")[0]
        page = (await api.get(f"/report/{Q4}")).text
        assert "Remisser per remitterande part" in page and "&lt;5" in page
        english = (await api.get(f"/report/{Q4}", params={"lang": "en"})).text
        assert "Referrals per referring party" in english
        assert (await api.get("/")).status_code == 200
        assert (await api.get("/static/plotly.min.js")).headers["content-type"].startswith("text/javascript")

    env = {**os.environ, "TRISAM_AMQP_URL": settings.amqp_url, "TRISAM_DATABASE_URL": settings.database_url,
           "TRISAM_NAMESPACE": settings.namespace}
    done = subprocess.run([sys.executable, "-m", "services.metrics", "report", Q4, "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["figures"] == f
    html = subprocess.run([sys.executable, "-m", "services.metrics", "report", Q4], capture_output=True,
                          text=True, env=env, timeout=60)
    assert "<h1>Trisam – kvartalsrapport till styrelsen</h1>" in html.stdout
    bad = subprocess.run([sys.executable, "-m", "services.metrics", "report", "2026Q9"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "2026Q3" in bad.stderr


async def test_aggregate_snapshots_are_published_when_figures_change_and_on_schedule(settings, runtimes):
    from datetime import datetime

    from shared.clock import STOCKHOLM, SettableClock

    settings = settings.model_copy(update={"metrics_snapshot_seconds": 0.3,
                                           "metrics_snapshot_schedule_seconds": 3600})
    clock = SettableClock(datetime(2026, 11, 23, 12, tzinfo=STOCKHOLM))
    async with amqp.EventTap(settings.amqp_url, settings.namespace, aggregates=True) as tap:
        runtime = await runtimes(metrics_app.spec(settings, clock), settings)
        await amqp.publish_many(settings.amqp_url, f"{settings.namespace}.events",
                                [(e["event_type"], e) for e in board_events()])

        def all_logged_but(more: int = 0):
            async def logged():
                async with runtime.pool.acquire() as conn:
                    return await conn.fetchval("SELECT count(*) FROM event_log") == len(board_events()) + more
            return logged

        await amqp.eventually(all_logged_but(), timeout=30, what="every event logged")
        await published(runtime)
        async with client_for(runtime) as api:
            api_figures = (await api.get("/api/v1/figures", params={"period": Q4})).json()["figures"]
        assert api_figures["referrals_by_party"]["counts"]["FK"] == "<5"

        async def snapshot_with_everything():  # suppressed exactly as the API publishes them
            snapshots = tap.of("FiguresPublished", team_id="ALL", period=Q4)
            return snapshots and snapshots[-1]["figures"] == api_figures and snapshots[-1]

        last = await amqp.eventually(snapshot_with_everything, timeout=30, what="a snapshot of every event")
        assert last["period"] == Q4 and last["trigger"] == "change"
        assert last["figures"]["referrals_by_party"]["counts"]["FK"] == "<5"
        teams = {s["team_id"] for s in tap.of("FiguresPublished")}
        assert teams == {"ALL", "T-ONE", "T-TWO"}
        assert {s["period"] for s in tap.of("FiguresPublished")} == {"2026Q3", Q4}
        q3 = tap.of("FiguresPublished", team_id="ALL", period="2026Q3")[-1]
        assert q3["figures"]["referrals_by_party"]["counts"]["AF"] == "<5"  # the one in September
        await asyncio.sleep(1.0)  # a snapshot of the last events still on its way, if any
        count = len(tap.of("FiguresPublished", team_id="ALL", period=Q4))
        await asyncio.sleep(1.5)  # nothing new: nothing published (debounced)
        assert len(tap.of("FiguresPublished", team_id="ALL", period=Q4)) == count

        # an event that changes no figure (a team's capacity): the year is not worked out again
        async with runtime.pool.acquire() as conn:
            year_published_at = await conn.fetchval("SELECT published_at FROM published_years WHERE year = 2026")
        team = next(e["payload"] for e in board_events() if e["event_type"] == "TeamUpdated")
        capacity = amqp.envelope("TeamUpdated", {**team, "capacity": 6, "revision": 2})
        await amqp.publish_many(settings.amqp_url, f"{settings.namespace}.events", [("TeamUpdated", capacity)])
        await amqp.eventually(all_logged_but(1), timeout=30, what="the team's update logged")
        await published(runtime)
        async with runtime.pool.acquire() as conn:
            assert await conn.fetchval("SELECT published_at FROM published_years WHERE year = 2026") == year_published_at
        assert len(tap.of("FiguresPublished", team_id="ALL", period=Q4)) == count
        clock.advance(hours=1, seconds=1)  # the schedule
        scheduled = (await tap.wait_for("FiguresPublished", count + 1, team_id="ALL", period=Q4))[-1]
        assert scheduled["trigger"] == "schedule"


async def test_the_publisher_recovers_from_a_round_that_loses_its_database_or_hangs(settings, runtimes, monkeypatch):
    """A round whose connection is terminated mid-work fails and the next one publishes; a
    round that hangs is given up after ``metrics_publication_timeout_seconds``, its lock freed."""
    import threading

    import asyncpg

    from services.metrics import publication

    real = publication.publish_year
    calls: list[str] = []
    terminated, released = threading.Event(), threading.Event()

    def publish_year(*args, **kwargs):
        calls.append("call")
        if len(calls) == 1:  # the database is lost while the year is worked out
            terminated.wait(30)
        elif len(calls) == 2:  # this one never comes back (until the test ends)
            released.wait(120)
        return real(*args, **kwargs)

    monkeypatch.setattr(publication, "publish_year", publish_year)
    settings = settings.model_copy(update={"metrics_snapshot_seconds": 0.2,
                                           "metrics_publication_timeout_seconds": 20.0})
    runtime = await runtimes(metrics_app.spec(settings), settings)
    try:
        await amqp.publish_many(settings.amqp_url, f"{settings.namespace}.events",
                                [(e["event_type"], e) for e in board_events()])
        async def round_under_way():
            return len(calls) >= 1

        await amqp.eventually(round_under_way, timeout=30, what="a round under way")
        admin = await asyncpg.connect(settings.service_database_url("metrics"))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE 'trisam-metrics-publisher-%'")
        finally:
            await admin.close()
        assert killed == 1
        terminated.set()
        await published(runtime)
        assert len(calls) >= 3, calls  # the lost round, the hung round, the one that published
        async with client_for(runtime) as api:
            answer = await api.get("/api/v1/figures", params={"period": Q4})
        assert answer.status_code == 200 and answer.json()["figures"]["referrals_by_party"]["counts"]["FK"] == "<5"
    finally:
        terminated.set()
        released.set()
