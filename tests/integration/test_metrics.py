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
    return runtime, settings


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

        # filters: a team, a referring party, a municipality
        one = (await api.get("/api/v1/figures", params={"period": Q4, "team_id": "T-ONE"})).json()["figures"]
        assert one["referrals_by_party"]["counts"] == {"AF": 7, "FK": 2, "KOMMUN": 0, "REGION": 0}
        assert one["meetings"]["held"] == 1
        fk = (await api.get("/api/v1/figures", params={"period": Q4, "referring_party": "FK"})).json()["figures"]
        assert fk["referrals_by_party"]["total"] == 2
        sandviken = (await api.get("/api/v1/figures", params={"period": Q4, "municipality": "Sandviken"})).json()
        assert sandviken["figures"]["referrals_by_party"]["counts"]["KOMMUN"] == 6
        assert sandviken["figures"]["referrals_by_party"]["total"] == 6
        assert sandviken["figures"]["postponements_by_reason"]["consent_missing"] == 0
        men = (await api.get("/api/v1/figures", params={"period": Q4, "gender": "MAN"})).json()["figures"]
        assert men["referrals_by_party"]["total"] == 6 and men["cases_consulted_by_gender"]["total"] == 1
        band = (await api.get("/api/v1/figures", params={"period": Q4, "age_band": "55-65"})).json()["figures"]
        assert band["referrals_by_party"]["total"] == 0
        for nonsense in ("9999Q4", "0000", "2026-13", "2026Q5", "2026-02-30..2026-03-01"):
            answer_ = await api.get("/api/v1/figures", params={"period": nonsense})
            assert answer_.status_code == 422, nonsense
        assert (await api.get("/api/v1/trend", params={"period": "2000Q1"})).status_code == 200
        q3 = (await api.get("/api/v1/figures", params={"period": "2026Q3"})).json()["figures"]
        assert q3["referrals_by_party"]["counts"]["AF"] == 1
        year = (await api.get("/api/v1/figures", params={"period": "2026"})).json()["figures"]
        assert year["referrals_by_party"]["total"] == 15 + 1 + 6
        bad = await api.get("/api/v1/figures", params={"period": "2026Q5"})
        assert bad.status_code == 422 and bad.json()["detail"]["code"] == "period_invalid"

        # the rebuild from the event log gives the same figures
        before = answer.json()
        from services.metrics import projections
        replayed = await projections.rebuild(runtime.pool)
        assert replayed == len(board_events())
        after = (await api.get("/api/v1/figures", params={"period": Q4})).json()
        assert after == before


async def test_small_counts_are_hidden_everywhere(settings, runtimes):
    runtime, settings = await start_with_events(settings, runtimes)
    async with client_for(runtime) as api:
        f = (await api.get("/api/v1/figures", params={"period": Q4})).json()["figures"]
        assert f["referrals_by_party"]["counts"] == {"AF": 7, "FK": "<5", "KOMMUN": "x", "REGION": 0}
        assert f["referrals_by_party"]["shares"]["FK"] is None
        assert f["referrals_by_party"]["shares"]["KOMMUN"] is None
        assert f["referrals_by_party"]["total"] == 15
        assert f["individual_participation"]["count"] == "<5"
        assert f["followup_response"]["counts"]["not_reached"] == "<5"
        csv = (await api.get("/api/v1/figures.csv", params={"period": Q4})).text
        assert "referrals_by_party.counts.FK,<5" in csv and "referrals_by_party.counts.KOMMUN,x" in csv
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

        async def all_logged():
            async with runtime.pool.acquire() as conn:
                return await conn.fetchval("SELECT count(*) FROM event_log") == len(board_events())

        await amqp.eventually(all_logged, timeout=30, what="every event logged")
        async with client_for(runtime) as api:
            api_figures = (await api.get("/api/v1/figures", params={"period": Q4})).json()["figures"]
        assert api_figures["referrals_by_party"]["total"] == 15

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
        clock.advance(hours=1, seconds=1)  # the schedule
        scheduled = (await tap.wait_for("FiguresPublished", count + 1, team_id="ALL", period=Q4))[-1]
        assert scheduled["trigger"] == "schedule"
