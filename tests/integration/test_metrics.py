"""Metrics on the real broker and database, from a generated county quarter (hundreds of cases
in ten municipalities, many small cells) sent as the other services would send it:

- the board reads every count and share exactly, over HTTP, in CSV and with the `report`
  command, for the quarter and for any date range; a coordinator reads their team and gets 403
  for another; every read is in the access log;
- the public edition of the quarter shows "<5" where due, passes the exact audit, and does not
  change when an event arrives after it was made;
- the rebuild from the event log gives the same cells.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import date

import pytest

from services.metrics import app as metrics_app
from services.metrics import catalogue, domain, public
from services.metrics.figures import exact
from tests.support import broker as amqp
from tests.support import county
from tests.support.board_events import QUARTER, county_quarter, events_from_facts
from tests.support.http import client_for, token
from tests.support.metrics_history import rebuilt_as_owner
from tests.unit.test_public_editions import audit

pytestmark = pytest.mark.infra

RANGE = ("2026-04-15", "2026-05-20")


def board(settings) -> dict:
    return token(settings, party=None, role="board", user="board-chair")


async def county_metrics(settings, runtimes, **overrides):
    """A metrics runtime fed the county quarter; returns (runtime, settings, cells, cases). It
    makes no public edition before every event is in (a grace period of years); with
    ``overrides`` it is started again with those settings once they are."""
    patient = settings.model_copy(update={"metrics_edition_grace_days": 100_000})
    runtime = await runtimes(metrics_app.spec(patient), patient)
    cases, meetings = county_quarter()
    events = events_from_facts(cases, meetings)
    await amqp.publish_many(settings.amqp_url, f"{settings.namespace}.events", [(e["event_type"], e) for e in events])

    async def all_in():
        async with runtime.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM event_log") == len(events)

    await amqp.eventually(all_in, timeout=60, what="every event in the metrics event log")
    if overrides:
        await runtime.stop()
        settings = settings.model_copy(update=overrides)
        runtime = await runtimes(metrics_app.spec(settings), settings)
    return runtime, settings, county.all_cells(cases, meetings), cases


def expected(cells, start: str, end: str, filters=None, basis="cohort", known=None) -> dict:
    filtered = any(c not in ("team_id", "municipality") for c in (filters or {}))
    figures = exact(
        county.sums(cells, date.fromisoformat(start), date.fromisoformat(end), filters, basis),
        outcome_basis=basis,
        known=known,
        filtered=filtered,
    )
    return json.loads(json.dumps(figures))


async def test_the_board_reads_every_figure_exactly_a_coordinator_their_team_and_every_read_is_logged(
    settings, runtimes
):
    runtime, settings, cells, cases = await county_metrics(settings, runtimes)
    q = domain.parse_period(QUARTER)
    teams = county.teams(2)
    async with client_for(runtime) as api:
        # the quarter, the county: every figure
        answer = await api.get("/api/v1/figures", params={"period": QUARTER}, headers=board(settings))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["audience"] == "exact"
        known = {"team": sorted(teams), "municipality": sorted(set(teams.values()))}
        assert body["figures"] == expected(cells, str(q.start), str(q.end), known=known)
        f = body["figures"]
        # and counted here without the platform's code: cases referred per party, consulted, shares
        in_quarter = [c for c in cases if q.start <= c.referred_on <= q.end]
        assert f["cases_referred"]["value"] == len(in_quarter) == len(cases)
        assert f["cases_referred"]["by"]["referring_party"] == dict(Counter(c.referring_party for c in in_quarter)) | {
            p: 0 for p in catalogue.VALUES["referring_party"] if p not in {c.referring_party for c in in_quarter}
        }
        consulted = [c for c in cases if c.consulted_on and q.start <= c.consulted_on <= q.end]
        assert f["cases_consulted"]["value"] == len(consulted)
        asked = sum(1 for c in in_quarter if c.violence_question_asked)
        assert f["violence_question_asked"] | {"by": None} == {
            "value": asked,
            "of": len(in_quarter),
            "share": round(asked / len(in_quarter), 4),
            "by": None,
        }
        small = [k for k, v in f["cases_referred"]["by"]["team"].items() if 0 < v < 5]
        assert small, "the quarter has small cells, and the board sees them exactly"

        # a municipality, filtered by party and gender, outcomes by due date
        filters = {"referring_party": "FK", "gender": "WOMAN"}
        answer = await api.get(
            "/api/v1/figures",
            headers=board(settings),
            params={"period": QUARTER, "municipality": "Gävle", "outcomes": "due", **filters},
        )
        assert answer.status_code == 200, answer.text
        gavle = sorted(t for t, m in teams.items() if m == "Gävle")
        assert answer.json()["figures"] == expected(
            cells,
            str(q.start),
            str(q.end),
            {"municipality": ["Gävle"], "referring_party": ["FK"], "gender": ["WOMAN"]},
            "due",
            known={"team": gavle, "municipality": ["Gävle"]},
        )
        assert answer.json()["figures"]["meetings_held"] == {"applies": False, "value": None}

        # any date range
        answer = await api.get("/api/v1/figures", headers=board(settings), params={"from": RANGE[0], "to": RANGE[1]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["period"] == f"{RANGE[0]}..{RANGE[1]}"
        assert answer.json()["figures"] == expected(cells, *RANGE, known=known)

        # CSV: the same numbers, names in words
        answer = await api.get("/api/v1/figures.csv", headers=board(settings), params={"period": QUARTER})
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        rows = {(r["figure"], r["dimension"], r["key"]): r for r in csv.DictReader(io.StringIO(answer.text))}
        assert rows[("cases_referred", "", "")]["value"] == str(f["cases_referred"]["value"])
        for party, n in f["cases_referred"]["by"]["referring_party"].items():
            assert rows[("cases_referred", "referring_party", party)]["value"] == str(n)
        assert rows[("cases_referred", "referring_party", "FK")]["key_name"] == "Försäkringskassan"
        assert rows[("violence_question_asked", "", "")]["share"] == str(f["violence_question_asked"]["share"])
        # and for any date range, the range's numbers
        span = {"from": RANGE[0], "to": RANGE[1]}
        ranged = (await api.get("/api/v1/figures", headers=board(settings), params=span)).json()
        answer = await api.get("/api/v1/figures.csv", headers=board(settings), params=span)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        rows = {(r["figure"], r["dimension"], r["key"]): r for r in csv.DictReader(io.StringIO(answer.text))}
        assert rows[("cases_referred", "", "")]["value"] == str(ranged["figures"]["cases_referred"]["value"])
        for party, n in ranged["figures"]["cases_referred"]["by"]["referring_party"].items():
            assert rows[("cases_referred", "referring_party", party)]["value"] == str(n)

        # the report page: exact, says so, in words
        page = await api.get(f"/report/{QUARTER}", headers=board(settings), params={"lang": "sv"})
        assert page.status_code == 200 and "data-audience=exact" in page.text
        assert "Försäkringskassan" in page.text and "Kvinnor" in page.text
        assert ">FK<" not in page.text and ">WOMAN<" not in page.text  # codes never shown raw

        # a coordinator: their own team exactly, their municipality, the county; no other team
        team = sorted(teams)[0]
        own_municipality = teams[team]
        coordinator = token(settings, party="REGION", role="coordinator", teams=[team], user="coord-1")
        answer = await api.get("/api/v1/figures", headers=coordinator, params={"period": QUARTER, "team_id": team})
        assert answer.status_code == 200
        assert answer.json()["figures"] == expected(
            cells,
            str(q.start),
            str(q.end),
            {"team_id": [team]},
            known={"team": [team], "municipality": [own_municipality]},
        )
        other_team = next(t for t in sorted(teams) if t != team)
        denied = await api.get(
            "/api/v1/figures", headers=coordinator, params={"period": QUARTER, "team_id": other_team}
        )
        assert denied.status_code == 403 and denied.json()["detail"]["code"] == "not_in_scope"
        other_municipality = next(m for m in sorted(set(teams.values())) if m != own_municipality)
        denied = await api.get(
            "/api/v1/figures", headers=coordinator, params={"period": QUARTER, "municipality": other_municipality}
        )
        assert denied.status_code == 403
        county_view = (await api.get("/api/v1/figures", headers=coordinator, params={"period": QUARTER})).json()
        assert county_view["figures"]["cases_referred"]["value"] == f["cases_referred"]["value"]
        assert set(county_view["figures"]["cases_referred"]["by"]["team"]) == {team}  # no other team's line
        assert set(county_view["figures"]["cases_referred"]["by"]["municipality"]) == {own_municipality}
        officer = token(settings, party="AF", role="officer")
        assert (await api.get("/api/v1/figures", headers=officer, params={"period": QUARTER})).status_code == 403
        assert (await api.get("/api/v1/figures", params={"period": QUARTER})).status_code == 401

        # the report command: the same exact figures, logged as the user who ran it
        env = {
            **os.environ,
            "TRISAM_AMQP_URL": settings.amqp_url,
            "TRISAM_DATABASE_URL": settings.database_url,
            "TRISAM_NAMESPACE": settings.namespace,
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.metrics",
                "report",
                QUARTER,
                "--format",
                "json",
                "--user",
                "analyst-anna",
                "--role",
                "analyst",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["figures"] == f
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.metrics",
                "report",
                f"{RANGE[0]}..{RANGE[1]}",
                "--format",
                "json",
                "--user",
                "analyst-anna",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert json.loads(done.stdout)["figures"] == expected(cells, *RANGE, known=known)

        # every exact read is in the access log, which an auditor reads (and nobody else)
        auditor = token(settings, party="REGION", role="auditor")
        log = (await api.get("/api/v1/access-log", headers=auditor, params={"limit": 100})).json()["reads"]
        seen = Counter((r["user_id"], r["role"], r["via"]) for r in log)
        assert seen[("board-chair", "board", "api")] == 4 and seen[("board-chair", "board", "csv")] == 2
        assert seen[("board-chair", "board", "report")] == 1
        assert seen[("coord-1", "coordinator", "api")] == 2  # the two refused were not read
        assert seen[("analyst-anna", "analyst", "command")] == 2
        assert any(r["scope"] == "municipality:Gävle" and r["query"]["filters"] == filters for r in log)
        assert (await api.get("/api/v1/access-log", headers=board(settings))).status_code == 403


async def test_the_public_edition_protects_small_counts_passes_the_audit_and_is_frozen(settings, runtimes):
    runtime, settings, cells, cases = await county_metrics(settings, runtimes, metrics_edition_grace_days=0)
    async with amqp.EventTap(settings.amqp_url, settings.namespace, aggregates=True) as tap:

        async def made():
            async with runtime.pool.acquire() as conn:
                return await conn.fetchval("SELECT count(*) FROM public_editions WHERE period = $1", QUARTER)

        await amqp.eventually(made, timeout=60, what="the quarter's public edition")
        async with client_for(runtime) as api:
            first = (await api.get("/api/v1/public/figures", params={"period": QUARTER})).json()
            assert first["audience"] == "public" and first["edition"] == 1 and first["scope"] == "county"
            assert "team" not in json.dumps(first["figures"])  # no team anywhere
            refused = await api.get("/api/v1/public/figures", params={"period": QUARTER, "team_id": "GÄV-1"})
            assert refused.status_code == 422 and refused.json()["detail"]["code"] == "teams_not_public"
            municipality = (
                await api.get("/api/v1/public/figures", params={"period": QUARTER, "municipality": "Ockelbo"})
            ).json()
            page = await api.get(f"/report/{QUARTER}", params={"municipality": "Ockelbo"})
            assert page.status_code == 200 and "data-audience=public" in page.text

        # what is shown: exact for counts of 5 or more (or zero), "<5" for 1 to 4 unless "x"
        q = domain.parse_period(QUARTER)
        truth = expected(cells, str(q.start), str(q.end), {"municipality": ["Ockelbo"]}, "due")
        shown = municipality["figures"]["cases_referred"]
        for party, n in truth["cases_referred"]["by"]["referring_party"].items():
            mark = shown["by"]["referring_party"][party]
            assert mark == n if isinstance(mark, int) else (mark in ("<5", "x") and (mark == "x" or 0 < n < 5))
            assert not (0 < n < 5) or mark in ("<5", "x")
        assert any(v == "<5" for v in json.dumps(municipality["figures"]).split('"') if v == "<5")

        # the exact audit of the stored edition: no hidden count pinned to one value
        async with runtime.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT counts, figures FROM public_editions WHERE period = $1", QUARTER)
        counts = public.loaded_counts(json.loads(row["counts"]))
        municipalities = sorted(set(county.teams(2).values()))
        edition = public.Edition(values={v: value for v, (value, _) in counts.items()}, threshold=5)
        edition.lines = public.relations(edition.values, municipalities)
        edition.hidden = {
            v: ("primary" if mark.startswith("<") else "unshown" if mark == public.UNSHOWN else "secondary")
            for v, (_, mark) in counts.items()
            if isinstance(mark, str)
        }
        assert sum(1 for kind in edition.hidden.values() if kind == "primary") > 20
        assert audit(edition) == []

        # announced: FiguresPublished for the county and each municipality, the same figures
        announced = await tap.wait_for("FiguresPublished", 1 + len(municipalities), period=QUARTER)
        county_edition = next(e for e in announced if e["municipality"] is None)
        assert county_edition["figures"] == first["figures"] and county_edition["edition"] == 1

        # frozen: a late referral changes the exact figures, not the edition
        late = amqp.envelope(
            "CaseReferred",
            {
                "case_ref": "LATE1",
                "team_id": "GÄV-1",
                "municipality": "Gävle",
                "referring_party": "FK",
                "gender": "WOMAN",
                "age_band": "25-34",
                "income_source": "LON",
                "consented_parties": ["FK"],
                "wishes_to_attend": None,
                "violence_question_asked": False,
                "reason_codes": [],
                "referred_at": "2026-05-02T08:00:00+00:00",
            },
        )
        await amqp.publish_many(settings.amqp_url, f"{settings.namespace}.events", [("CaseReferred", late)])

        async def counted():
            async with client_for(runtime) as api:
                body = (await api.get("/api/v1/figures", params={"period": QUARTER}, headers=board(settings))).json()
            return body["figures"]["cases_referred"]["value"] == len(cases) + 1

        await amqp.eventually(counted, timeout=30, what="the late referral counted exactly")
        await runtime.stop()  # a restart makes no new edition either (same threshold, definitions)
        await runtime.start()
        async with client_for(runtime) as api:
            again = (await api.get("/api/v1/public/figures", params={"period": QUARTER})).json()
            assert again["edition"] == 1 and again["figures"] == first["figures"]
            listing = (await api.get("/api/v1/public/editions")).json()["editions"]
            assert [(e["period"], e["edition"]) for e in listing if e["period"] == QUARTER] == [(QUARTER, 1)]


async def test_a_new_threshold_makes_new_editions_at_start_and_a_correction_is_a_new_dated_edition(settings, runtimes):
    runtime, settings, cells, _ = await county_metrics(settings, runtimes, metrics_edition_grace_days=0)

    async def editions(n: int):
        async def made():
            async with runtime.pool.acquire() as conn:
                return await conn.fetchval("SELECT count(*) FROM public_editions WHERE period = $1", QUARTER) >= n

        await amqp.eventually(made, timeout=60, what=f"edition {n} of the quarter")

    await editions(1)
    await runtime.stop()
    lower = settings.model_copy(update={"suppression_threshold": 3, "metrics_edition_grace_days": 0})
    raised = await runtimes(metrics_app.spec(lower), lower)  # the same database, a new threshold
    await amqp.eventually(lambda: _count_editions(raised, 2), timeout=60, what="a new edition with threshold 3")
    async with client_for(raised) as api:
        second = (await api.get("/api/v1/public/figures", params={"period": QUARTER})).json()
    assert second["edition"] == 2 and second["suppression_threshold"] == 3
    assert "threshold changed from 5 to 3" in second["reason"]
    async with raised.pool.acquire() as conn:  # every scope of the edition
        shown = await conn.fetchval(
            "SELECT figures::text FROM public_editions WHERE period = $1 AND edition = 2", QUARTER
        )
    assert '"<3"' in shown and '"<5"' not in shown

    env = {
        **os.environ,
        "TRISAM_AMQP_URL": settings.amqp_url,
        "TRISAM_DATABASE_URL": settings.database_url,
        "TRISAM_NAMESPACE": settings.namespace,
        "TRISAM_SUPPRESSION_THRESHOLD": "3",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.metrics", "edition", QUARTER, "--reason", "late recordings corrected"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    async with client_for(raised) as api:
        third = (await api.get("/api/v1/public/figures", params={"period": QUARTER})).json()
        earlier = (await api.get("/api/v1/public/figures", params={"period": QUARTER, "edition": 1})).json()
    assert third["edition"] == 3 and third["reason"] == "late recordings corrected"
    assert earlier["edition"] == 1 and earlier["suppression_threshold"] == 5  # still there, as it was
    bad = subprocess.run(
        [sys.executable, "-m", "services.metrics", "edition", "2026-05", "--reason", "x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "quarters and years" in bad.stderr
    zero = subprocess.run(
        [sys.executable, "-m", "services.metrics", "report", QUARTER],
        capture_output=True,
        text=True,
        env={**env, "TRISAM_SUPPRESSION_THRESHOLD": "0"},
        timeout=60,
    )
    assert zero.returncode == 2 and "TRISAM_SUPPRESSION_THRESHOLD" in zero.stderr and "Traceback" not in zero.stderr


async def _count_editions(runtime, n: int) -> bool:
    async with runtime.pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM public_editions WHERE period = $1", QUARTER) >= n


async def test_the_rebuild_gives_the_same_cells_as_the_live_build(settings, runtimes):

    runtime, settings, cells, _ = await county_metrics(settings, runtimes)
    async with runtime.pool.acquire() as conn:
        live = sorted(tuple(r) for r in await conn.fetch("SELECT * FROM figure_cells"))
    assert sum(r[-1] for r in live if r[1] == "referred") == sum(n for k, n in cells.items() if k[0] == "referred")
    async with runtime.pool.acquire() as conn:  # an event that no longer decodes is left out, not fatal
        await conn.execute(
            """INSERT INTO event_log (event_id, event_type, version, occurred_at, payload)
               VALUES (gen_random_uuid(), 'CaseReferred', 99, now(), '{}')"""
        )
    replayed = (await rebuilt_as_owner(settings)).events
    async with runtime.pool.acquire() as conn:
        rebuilt = sorted(tuple(r) for r in await conn.fetch("SELECT * FROM figure_cells"))
    assert replayed > 0 and rebuilt == live
    stored = Counter({(r[1], r[2], r[0], *r[3:9]): r[9] for r in rebuilt})
    assert stored == Counter({k: n for k, n in cells.items() if n})  # and they are the facts' cells


async def test_a_session_from_the_bearer_token_and_no_development_sign_in_in_production(settings, runtimes, tmp_path):
    """The dashboard's pages are read as the reader whose identity provider's token starts a
    session (an HttpOnly, SameSite=Strict cookie; Secure outside development); in production
    there is no development sign-in (404), and a session needs the bearer token."""
    import jwt

    from shared.platform.auth import mint_token
    from shared.platform.keys import new_key_pair

    private, public = new_key_pair("idp-1")  # the identity provider's key; the service holds the public one
    (tmp_path / "jwks.json").write_text(json.dumps(public))
    production = settings.model_copy(update={"env": "production", "jwks_file": str(tmp_path / "jwks.json")})
    runtime = await runtimes(metrics_app.spec(production), production)
    bearer = mint_token(jwt.PyJWK(private), user_id="board-chair", party=None, role="board")
    async with client_for(runtime) as api:
        assert (await api.get("/dev/sign-in")).status_code == 404
        refused = await api.post("/dev/sign-in", json={"user_id": "x", "role": "board"})
        assert refused.status_code == 404 and "set-cookie" not in refused.headers
        assert (await api.get("/api/v1/whoami")).json() == {"signed_in": False}
        assert (await api.post("/api/v1/session")).status_code == 401  # no token, no session

        assert (await api.post("/api/v1/session", headers=board(settings))).status_code == 401  # a dev token
        started = await api.post("/api/v1/session", headers={"Authorization": f"Bearer {bearer}"})
        assert started.status_code == 200 and started.json()["role"] == "board"
        cookie = started.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
        api.cookies.set(cookie.split("=", 1)[0], started.cookies[cookie.split("=", 1)[0]])
        who = (await api.get("/api/v1/whoami")).json()
        assert (who["signed_in"], who["user_id"], who["role"]) == (True, "board-chair", "board")
        ended = await api.delete("/api/v1/session")
        assert ended.status_code == 200
