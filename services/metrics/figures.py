"""The board's figures, computed from the projections (SQL), then suppressed (``domain``).
Each figure's exact definition is in docs/metrics.md; the names here are the same.

A filter narrows every case-based figure to a period (which date decides is part of each
definition), a team, a municipality, a referring party, a gender and an age band; meeting
figures by period, team and municipality only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import asyncpg

from shared.vocabulary import (ActionType, AgeBand, CancellationReason, Gender, IncomeSource, Party,
                               PostponementReason)

from . import domain
from .domain import Period


@dataclass(frozen=True)
class Filter:
    period: Period
    team_id: str | None = None
    municipality: str | None = None
    referring_party: str | None = None
    gender: str | None = None
    age_band: str | None = None

    def describe(self) -> dict:
        return {"period": self.period.label, "from": self.period.start.isoformat(),
                "to": self.period.end.isoformat(), "team_id": self.team_id,
                "municipality": self.municipality, "referring_party": self.referring_party,
                "gender": self.gender, "age_band": self.age_band}


@dataclass
class Sql:
    """A WHERE clause built with numbered parameters."""
    args: list = field(default_factory=list)
    parts: list = field(default_factory=list)

    def add(self, template: str, *values) -> "Sql":
        names = []
        for value in values:
            self.args.append(value)
            names.append(f"${len(self.args)}")
        self.parts.append(template.format(*names))
        return self

    @property
    def where(self) -> str:
        return " AND ".join(self.parts) or "true"


def case_conditions(f: Filter, date_column: str, sql: Sql | None = None, alias: str = "c") -> Sql:
    sql = sql or Sql()
    sql.add(f"{alias}.{date_column} BETWEEN {{}} AND {{}}", f.period.start, f.period.end)
    for column, value in (("team_id", f.team_id), ("municipality", f.municipality),
                          ("referring_party", f.referring_party), ("gender", f.gender),
                          ("age_band", f.age_band)):
        if value is not None:
            sql.add(f"{alias}.{column} = {{}}", value)
    return sql


def meeting_conditions(f: Filter, date_column: str, alias: str = "m") -> Sql:
    sql = Sql().add(f"{alias}.{date_column} BETWEEN {{}} AND {{}}", f.period.start, f.period.end)
    for column, value in (("team_id", f.team_id), ("municipality", f.municipality)):
        if value is not None:
            sql.add(f"{alias}.{column} = {{}}", value)
    return sql


async def _breakdown(conn, sql_text: str, args, keys) -> dict[str, int]:
    rows = await conn.fetch(sql_text, *args)
    counts = {k: 0 for k in keys}
    for r in rows:
        counts[r["k"] if r["k"] is not None else "UNKNOWN"] = counts.get(r["k"] or "UNKNOWN", 0) + r["n"]
    return counts


async def raw_figures(conn: asyncpg.Connection, f: Filter) -> dict:
    """Every figure as exact counts (before suppression)."""
    referred = case_conditions(f, "referred_on")

    async def by(column: str, keys) -> dict[str, int]:
        return await _breakdown(conn, f"SELECT {column} AS k, count(*) AS n FROM case_facts c "
                                      f"WHERE {referred.where} GROUP BY 1", referred.args, keys)

    figures: dict = {}
    figures["referrals_by_party"] = await by("referring_party", [p.value for p in Party])
    figures["referrals_by_gender"] = await by("gender", [g.value for g in Gender])
    figures["referrals_by_age_band"] = await by("age_band", [a.value for a in AgeBand])
    figures["income_at_referral"] = await by("income_at_referral", [i.value for i in IncomeSource])
    asked = await conn.fetchrow(
        f"SELECT count(*) FILTER (WHERE violence_question_asked) AS yes, count(*) AS n "
        f"FROM case_facts c WHERE {referred.where}", *referred.args)
    figures["violence_question_asked"] = {"yes": asked["yes"], "of": asked["n"]}

    consulted = case_conditions(f, "consulted_on")
    figures["cases_consulted_by_gender"] = await _breakdown(
        conn, f"SELECT gender AS k, count(*) AS n FROM case_facts c WHERE {consulted.where} GROUP BY 1",
        consulted.args, [g.value for g in Gender])
    attended = await conn.fetchrow(
        f"SELECT count(*) FILTER (WHERE individual_attended) AS yes, count(*) AS n "
        f"FROM case_facts c WHERE {consulted.where}", *consulted.args)
    figures["individual_participation"] = {"yes": attended["yes"], "of": attended["n"]}
    figures["activities"] = await _breakdown(
        conn, f"SELECT a.type AS k, count(*) AS n FROM action_facts a JOIN case_facts c USING (case_ref) "
              f"WHERE {consulted.where} GROUP BY 1", consulted.args, [a.value for a in ActionType])
    lead = await conn.fetch(
        f"SELECT c.team_id, (c.consulted_on - c.referred_on) AS days FROM case_facts c "
        f"WHERE {consulted.where} AND c.referred_on IS NOT NULL", *consulted.args)
    per_team: dict[str, list[int]] = {}
    for r in lead:
        per_team.setdefault(r["team_id"], []).append(r["days"])
    figures["lead_time_days"] = {
        "all": {"n": len(lead), "median": domain.median([r["days"] for r in lead])},
        "by_team": {t: {"n": len(d), "median": domain.median(d)} for t, d in sorted(per_team.items())}}

    end = Sql()
    end.add("c.referred_on <= {}", f.period.end)
    end.add("(c.consulted_on IS NULL OR c.consulted_on > {})", f.period.end)
    end.add("(c.not_consulted_on IS NULL OR c.not_consulted_on > {})", f.period.end)
    end.add("(c.closed_on IS NULL OR c.closed_on > {})", f.period.end)
    for column, value in (("team_id", f.team_id), ("municipality", f.municipality),
                          ("referring_party", f.referring_party), ("gender", f.gender),
                          ("age_band", f.age_band)):
        if value is not None:
            end.add(f"c.{column} = {{}}", value)
    queue = await conn.fetch(f"SELECT team_id AS k, count(*) AS n FROM case_facts c WHERE {end.where} "
                             f"GROUP BY 1 ORDER BY 1", *end.args)
    figures["queue_by_team"] = {r["k"]: r["n"] for r in queue}

    meetings = meeting_conditions(f, "meeting_date")
    held = await conn.fetchval(
        f"SELECT count(*) FROM meeting_facts m WHERE {meetings.where} AND m.cancelled_reason IS NULL "
        f"AND EXISTS (SELECT 1 FROM case_facts k WHERE k.meeting_id = m.meeting_id "
        f"AND (k.consulted_on IS NOT NULL OR k.not_consulted_on IS NOT NULL))", *meetings.args)
    cancelled = await _breakdown(
        conn, f"SELECT cancelled_reason AS k, count(*) AS n FROM meeting_facts m "
              f"WHERE {meetings.where} AND cancelled_reason IS NOT NULL "
              f"AND cancelled_reason NOT IN ('holiday', 'rescheduled') GROUP BY 1",
        meetings.args, [r.value for r in CancellationReason
                        if r not in (CancellationReason.HOLIDAY, CancellationReason.RESCHEDULED)])
    figures["meetings"] = {"held": held, "cancelled_by_reason": cancelled}
    pre = meeting_conditions(f, "pre_meeting_held_on")
    figures["pre_meetings_held"] = await conn.fetchval(
        f"SELECT count(*) FROM meeting_facts m WHERE {pre.where}", *pre.args)
    postponed = Sql().add("p.from_meeting_date BETWEEN {} AND {}", f.period.start, f.period.end)
    if f.team_id is not None:
        postponed.add("p.team_id = {}", f.team_id)
    for column, value in (("municipality", f.municipality), ("referring_party", f.referring_party),
                          ("gender", f.gender), ("age_band", f.age_band)):
        if value is not None:
            postponed.add(f"c.{column} = {{}}", value)
    figures["postponements_by_reason"] = await _breakdown(
        conn, f"SELECT reason AS k, count(*) AS n FROM postponement_facts p "
              f"LEFT JOIN case_facts c USING (case_ref) WHERE {postponed.where} "
              f"AND reason <> 'displaced' GROUP BY 1", postponed.args,
        [r.value for r in PostponementReason if r != PostponementReason.DISPLACED])

    figures |= await _outcomes(conn, f)
    return figures


async def _outcomes(conn, f: Filter) -> dict:
    """Six-month outcomes: the follow-ups of kind six_months due in the period, not cancelled,
    with their latest record."""
    sql = Sql().add("u.kind = 'six_months'").add("NOT u.cancelled")
    sql.add("u.due_on BETWEEN {} AND {}", f.period.start, f.period.end)
    for column, value in (("team_id", f.team_id), ("municipality", f.municipality),
                          ("referring_party", f.referring_party), ("gender", f.gender),
                          ("age_band", f.age_band)):
        if value is not None:
            sql.add(f"{'u' if column in ('team_id', 'municipality', 'referring_party') else 'c'}.{column} = {{}}",
                    value)
    rows = await conn.fetch(
        f"SELECT u.revision, u.reached, u.income_source, u.readiness, c.income_at_referral, "
        f"c.gender, u.referring_party FROM followup_facts u LEFT JOIN case_facts c USING (case_ref) "
        f"WHERE {sql.where}", *sql.args)
    due = len(rows)
    recorded = [r for r in rows if r["revision"] > 0]
    reached = [r for r in recorded if r["reached"]]
    public = domain.PUBLIC_SUPPORT

    def support(group) -> dict:
        return {"of": len(group),
                "at_referral": sum(1 for r in group if r["income_at_referral"] in public),
                "at_follow_up": sum(1 for r in group if r["income_source"] in public)}

    def grouped(key: str, keys) -> dict:
        return {k: support([r for r in reached if r[key] == k]) for k in keys}

    on_support = [r for r in reached if r["income_at_referral"] == IncomeSource.FORSORJNINGSSTOD.value]
    by_type = {t: sum(1 for r in on_support if r["income_source"] == t) for t in domain.SELF_SUFFICIENCY_TYPES}
    answered = [r for r in reached if r["readiness"] and r["readiness"] != "not_answered"]

    def per_group(key: str, keys) -> dict:
        return {k: {"on_support": sum(1 for r in on_support if r[key] == k),
                    "self_sufficient": sum(1 for r in on_support if r[key] == k
                                           and r["income_source"] in domain.SELF_SUFFICIENCY_TYPES),
                    "answered": sum(1 for r in answered if r[key] == k),
                    "more_ready": sum(1 for r in answered if r[key] == k
                                      and r["readiness"] in ("much_more", "more"))} for k in keys}

    groups = {"by_gender": per_group("gender", [g.value for g in Gender]),
              "by_referring_party": per_group("referring_party", [p.value for p in Party])}
    return {
        "outcome_groups": groups,
        "followup_response": {"due": due, "recorded": len(recorded), "reached": len(reached)},
        "public_support": {"all": support(reached),
                           "by_gender": grouped("gender", [g.value for g in Gender]),
                           "by_referring_party": grouped("referring_party", [p.value for p in Party])},
        "self_sufficiency": {"on_income_support_at_referral": len(on_support),
                             "self_sufficient": sum(by_type.values()), "by_type": by_type},
        "more_ready": {"yes": sum(1 for r in reached if r["readiness"] in ("much_more", "more")),
                       "of": sum(1 for r in reached if r["readiness"] and r["readiness"] != "not_answered")},
    }


def publish(raw: dict, threshold: int) -> dict:
    """The figures as published: every count under the threshold hidden, with secondary
    suppression; breakdowns of the same population hide their total together."""
    out: dict = {}
    out |= {name: table for name, table in domain.suppress_together(
        {k: raw[k] for k in ("referrals_by_party", "referrals_by_gender", "referrals_by_age_band",
                             "income_at_referral")}, threshold).items()}
    out["referrals_by_party"]["goal_share"] = domain.even_spread_goal()
    out["violence_question_asked"] = domain.share(raw["violence_question_asked"]["yes"],
                                                  raw["violence_question_asked"]["of"], threshold)
    out["cases_consulted_by_gender"] = domain.suppress_table(raw["cases_consulted_by_gender"], threshold)
    out["individual_participation"] = domain.share(raw["individual_participation"]["yes"],
                                                   raw["individual_participation"]["of"], threshold)
    out["activities"] = {k: domain.suppress_count(n, threshold) for k, n in raw["activities"].items()}
    lead = raw["lead_time_days"]

    # the teams' case counts add up to the total: protected as one table
    per_team = domain.suppress_table({t: v["n"] for t, v in lead["by_team"].items()}, threshold)
    out["lead_time_days"] = {
        "all": {"n": per_team["total"] if lead["by_team"] else 0,
                "median": lead["all"]["median"] if lead["all"]["n"] >= threshold else None},
        "by_team": {t: {"n": per_team["counts"][t],
                        "median": v["median"] if isinstance(per_team["counts"][t], int) else None}
                    for t, v in lead["by_team"].items()}}
    out["queue_by_team"] = {t: domain.suppress_count(n, threshold) for t, n in raw["queue_by_team"].items()}
    out["meetings"] = {"held": raw["meetings"]["held"],  # meetings are not people: not suppressed
                       "cancelled_by_reason": raw["meetings"]["cancelled_by_reason"]}
    out["pre_meetings_held"] = raw["pre_meetings_held"]
    out["postponements_by_reason"] = {k: domain.suppress_count(n, threshold)
                                      for k, n in raw["postponements_by_reason"].items()}
    response = raw["followup_response"]
    out["followup_response"] = domain.suppress_table({
        "reached": response["reached"], "not_reached": response["recorded"] - response["reached"],
        "not_recorded": response["due"] - response["recorded"]}, threshold)

    ps = raw["public_support"]
    out["public_support"] = {"all": {
        "at_referral": domain.share(ps["all"]["at_referral"], ps["all"]["of"], threshold),
        "at_follow_up": domain.share(ps["all"]["at_follow_up"], ps["all"]["of"], threshold)}}
    for dimension in ("by_gender", "by_referring_party"):
        groups = ps[dimension]
        wholes = {k: v["of"] for k, v in groups.items()}
        out["public_support"][dimension] = {
            moment: domain.grouped_share({k: v[moment] for k, v in groups.items()}, wholes, threshold)
            for moment in ("at_referral", "at_follow_up")}
    ss = raw["self_sufficiency"]
    by_type = dict(ss["by_type"])
    by_type["other_support"] = ss["on_income_support_at_referral"] - ss["self_sufficient"]
    table = domain.suppress_table(by_type, threshold)
    shown_other, shown_total = table["counts"]["other_support"], table["total"]
    self_sufficient = (shown_total - shown_other if isinstance(shown_other, int)
                       and isinstance(shown_total, int) else domain.SECONDARY)
    out["self_sufficiency"] = {
        "on_income_support_at_referral": shown_total,
        "self_sufficient": {"count": self_sufficient,
                            "share": round(self_sufficient / shown_total, 4)
                            if isinstance(self_sufficient, int) and isinstance(shown_total, int)
                            and shown_total else None},
        "by_type": table}
    out["more_ready"] = domain.share(raw["more_ready"]["yes"], raw["more_ready"]["of"], threshold)
    out["more_ready_by"] = {}
    for dimension, groups in raw["outcome_groups"].items():  # the outcomes by gender and by party
        out["self_sufficiency"][dimension] = domain.grouped_share(
            {k: v["self_sufficient"] for k, v in groups.items()},
            {k: v["on_support"] for k, v in groups.items()}, threshold)
        out["more_ready_by"][dimension.removeprefix("by_")] = domain.grouped_share(
            {k: v["more_ready"] for k, v in groups.items()},
            {k: v["answered"] for k, v in groups.items()}, threshold)
    return out
