"""The board's figures: the exact counts of a year per month and team (``atoms``), read from
the projections by the publisher, never on a request. ``publication.publish_year`` sums and
protects them. Each figure's exact definition is in docs/metrics.md; the names are the same.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import asyncpg

from . import publication, store
from .publication import Atoms


def _month_ends(year: int) -> list[date]:
    return [(date(year + 1, 1, 1) if m == 12 else date(year, m + 1, 1)) - timedelta(days=1)
            for m in range(1, 13)]


async def atoms(conn: asyncpg.Connection, year: int) -> Atoms:
    """Every exact count of the year per month and team (which date decides: docs/metrics.md)."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    result = Atoms(year)
    for r in await conn.fetch(
            """SELECT extract(month FROM referred_on)::int AS m, team_id, referring_party, gender, age_band,
                      income_at_referral, violence_question_asked, count(*) AS n
               FROM case_facts WHERE referred_on BETWEEN $1 AND $2 GROUP BY 1, 2, 3, 4, 5, 6, 7""", start, end):
        atom = publication.referral_atom(r["referring_party"], r["gender"], r["age_band"],
                                         r["income_at_referral"], r["violence_question_asked"])
        result.add(r["m"], r["team_id"], atom, times=r["n"])
    for r in await conn.fetch(
            """SELECT extract(month FROM consulted_on)::int AS m, team_id, gender, individual_attended,
                      count(*) AS n, array_agg(consulted_on - referred_on) AS days
               FROM case_facts WHERE consulted_on BETWEEN $1 AND $2 GROUP BY 1, 2, 3, 4""", start, end):
        atom = publication.consultation_atom(r["gender"], r["individual_attended"])
        result.add(r["m"], r["team_id"], atom, times=r["n"])
        result.lead_days.setdefault((r["m"], r["team_id"] or "UNKNOWN"), []).extend(d for d in r["days"] if d is not None)
    for r in await conn.fetch(
            """SELECT extract(month FROM c.consulted_on)::int AS m, c.team_id, a.type, count(*) AS n
               FROM action_facts a JOIN case_facts c USING (case_ref)
               WHERE c.consulted_on BETWEEN $1 AND $2 GROUP BY 1, 2, 3""", start, end):
        result.add(r["m"], r["team_id"], {f"act.{r['type']}": r["n"]})
    for r in await conn.fetch(_QUEUE, date(year - 1, 12, 31)):
        result.opening[r["team_id"] or "UNKNOWN"] = r["n"]
    for month, last_day in enumerate(_month_ends(year), start=1):
        for r in await conn.fetch(_QUEUE, last_day):
            result.add(month, r["team_id"], {"queue": r["n"]})
    for r in await conn.fetch(
            """SELECT extract(month FROM meeting_date)::int AS m, team_id,
                      count(*) FILTER (WHERE cancelled_reason IS NULL AND EXISTS (
                          SELECT 1 FROM case_facts k WHERE k.meeting_id = f.meeting_id
                          AND (k.consulted_on IS NOT NULL OR k.not_consulted_on IS NOT NULL))) AS held,
                      count(*) FILTER (WHERE cancelled_reason = 'no_cases') AS no_cases,
                      count(*) FILTER (WHERE cancelled_reason = 'staff_absent') AS staff_absent,
                      count(*) FILTER (WHERE cancelled_reason = 'other') AS other
               FROM meeting_facts f WHERE meeting_date BETWEEN $1 AND $2 GROUP BY 1, 2""", start, end):
        result.add(r["m"], r["team_id"], {"meet.held": r["held"], "meet.cancelled.no_cases": r["no_cases"],
                                          "meet.cancelled.staff_absent": r["staff_absent"],
                                          "meet.cancelled.other": r["other"]})
    for r in await conn.fetch(
            """SELECT extract(month FROM pre_meeting_held_on)::int AS m, team_id, count(*) AS n
               FROM meeting_facts WHERE pre_meeting_held_on BETWEEN $1 AND $2 GROUP BY 1, 2""", start, end):
        result.add(r["m"], r["team_id"], {"meet.pre": r["n"]})
    for r in await conn.fetch(
            """SELECT extract(month FROM from_meeting_date)::int AS m, team_id, reason, count(*) AS n
               FROM postponement_facts WHERE from_meeting_date BETWEEN $1 AND $2 AND reason <> 'displaced'
               GROUP BY 1, 2, 3""", start, end):
        result.add(r["m"], r["team_id"], {f"post.{r['reason']}": r["n"]})
    for r in await conn.fetch(
            """SELECT extract(month FROM u.due_on)::int AS m, u.team_id, u.revision > 0 AS recorded,
                      u.reached, c.income_at_referral, u.income_source, u.readiness, c.gender,
                      u.referring_party, count(*) AS n
               FROM followup_facts u LEFT JOIN case_facts c USING (case_ref)
               WHERE u.kind = 'six_months' AND NOT u.cancelled AND u.due_on BETWEEN $1 AND $2
               GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9""", start, end):
        atom = publication.followup_atom(1 if r["recorded"] else 0, r["reached"], r["income_at_referral"],
                                         r["income_source"], r["readiness"], r["gender"], r["referring_party"])
        result.add(r["m"], r["team_id"], atom, times=r["n"])
    return result


_QUEUE = """SELECT team_id, count(*) AS n FROM case_facts
             WHERE referred_on <= $1 AND (consulted_on IS NULL OR consulted_on > $1)
               AND (not_consulted_on IS NULL OR not_consulted_on > $1)
               AND (closed_on IS NULL OR closed_on > $1) GROUP BY 1"""


async def teams(conn: asyncpg.Connection) -> dict[str, str]:
    """Every team and its municipality: as the team was last updated, else as its facts say."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (team_id) team_id, municipality FROM (
               SELECT team_id, municipality, 0 AS source FROM team_facts
               UNION ALL SELECT team_id, municipality, 1 FROM case_facts WHERE team_id IS NOT NULL) t
           ORDER BY team_id, source, municipality""")  # the same answer every time
    return {r["team_id"]: r["municipality"] or "UNKNOWN" for r in rows}


async def years(conn: asyncpg.Connection) -> list[int]:
    """The years any fact falls in."""
    row = await conn.fetchrow(
        """SELECT least((SELECT min(referred_on) FROM case_facts), (SELECT min(meeting_date) FROM meeting_facts),
                        (SELECT min(due_on) FROM followup_facts WHERE due_on > DATE '1970-01-01')) AS first,
                  greatest((SELECT max(coalesce(closed_on, consulted_on, referred_on)) FROM case_facts),
                           (SELECT max(meeting_date) FROM meeting_facts),
                           (SELECT max(due_on) FROM followup_facts)) AS last""")
    if row["first"] is None:
        return []
    return list(range(row["first"].year, row["last"].year + 1))


async def publish_year(conn: asyncpg.Connection, year: int, threshold: int,
                       previous=None) -> publication.Publication:
    return publication.publish_year(await atoms(conn, year), await teams(conn), threshold, previous)


async def publish_if_changed(conn: asyncpg.Connection, year: int, teams: dict[str, str], threshold: int,
                             at: datetime) -> bool:
    """Work out the year's publication (in a thread: it takes seconds) and store it, unless
    nothing it is worked out from has changed since it was last stored (then it would be the
    same). True if it was published."""
    year_atoms = await atoms(conn, year)
    source = publication.source_digest(year_atoms, teams, threshold)
    if source == await store.published_source(conn, year):
        return False
    previous = await store.published_counts(conn, year)
    published = await asyncio.to_thread(publication.publish_year, year_atoms, teams, threshold, previous)
    await store.save_publication(conn, year, published, at, source)
    return True
