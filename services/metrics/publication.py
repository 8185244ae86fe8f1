"""The publication: every figure of a year, for every period (its months, quarters and the
year) and every scope (all teams, each municipality, each team), protected together (pure
rules, no I/O). The API, the dashboard, the report, CSV and the aggregate snapshots all read
these figures and nothing else, so what a reader can combine is exactly this set.

The counts come as *atoms*: exact counts per month and team (``figures.atoms``). Every other
count is a sum of atoms, and every such sum is told to ``disclosure.protect``: a table's total
and its cells, a municipality and its teams, all teams and the municipalities, a quarter and
its months, a year and its quarters, a share's whole and its part and rest, a group's whole
and its parts. The exact definitions of the figures: docs/metrics.md.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

from shared.vocabulary import (ActionType, AgeBand, CancellationReason, Gender, IncomeSource, Party,
                               PostponementReason)

from . import disclosure, domain

ALL = "ALL"

PARTIES = [p.value for p in Party]
GENDERS = [g.value for g in Gender]
AGE_BANDS = [a.value for a in AgeBand]
INCOMES = [i.value for i in IncomeSource] + ["UNKNOWN"]
ACTIONS = [a.value for a in ActionType]
POSTPONEMENTS = [r.value for r in PostponementReason if r != PostponementReason.DISPLACED]
CANCELLATIONS = [r.value for r in CancellationReason
                 if r not in (CancellationReason.HOLIDAY, CancellationReason.RESCHEDULED)]
SS_TYPES = list(domain.SELF_SUFFICIENCY_TYPES)
MOMENTS = ("at_referral", "at_follow_up")
GROUPS = {"gender": GENDERS, "party": PARTIES}  # the outcomes are also shown per these

STOCK = {"queue"}  # a count at the period's end, not a sum over its months
# the rests of subsets (below): protected as if shown, never shown
UNSHOWN_PREFIXES = ("rch.unanswered", "ps.at_referral.other_public", "queue.in", "queue.out")
UNPROTECTED = {"meet.held", "meet.pre", *(f"meet.cancelled.{r}" for r in CANCELLATIONS)}  # not people


def _tables() -> list[tuple[str, list[str]]]:
    """Every sum among the counts of one period and scope: (total, parts)."""
    sums = [("ref", [f"ref.party.{p}" for p in PARTIES]),
            ("ref", [f"ref.gender.{g}" for g in GENDERS]),
            ("ref", [f"ref.age.{a}" for a in AGE_BANDS]),
            ("ref", [f"ref.income.{i}" for i in INCOMES]),
            ("ref", ["ref.violence.yes", "ref.violence.no"]),
            ("con", [f"con.gender.{g}" for g in GENDERS]),
            ("con", ["con.attended.yes", "con.attended.no"]),
            ("due", ["due.reached", "due.not_reached", "due.not_recorded"]),
            ("ss", [f"ss.type.{t}" for t in SS_TYPES] + ["ss.type.other_support"]),
            ("ss", ["ss.yes", "ss.type.other_support"]),
            ("ss.yes", [f"ss.type.{t}" for t in SS_TYPES]),
            ("ans", ["mr.yes", "mr.no"]),
            # subsets, as sums with a rest that is never shown (the protection assumes it is,
            # which only hides more): those who answered are among those reached, and those on
            # income support at referral among those on public support at referral
            ("due.reached", ["ans", "rch.unanswered"]),
            ("ps.at_referral.yes", ["ss", "ps.at_referral.other_public"])]
    for moment in MOMENTS:
        sums.append(("due.reached", [f"ps.{moment}.yes", f"ps.{moment}.no"]))
    for dim, keys in GROUPS.items():
        sums.append(("due.reached", [f"rch.{dim}.{k}" for k in keys]))
        for moment in MOMENTS:
            for k in keys:
                sums.append((f"rch.{dim}.{k}", [f"ps.{moment}.{dim}.{k}.yes", f"ps.{moment}.{dim}.{k}.no"]))
            for answer in ("yes", "no"):
                sums.append((f"ps.{moment}.{answer}", [f"ps.{moment}.{dim}.{k}.{answer}" for k in keys]))
        sums.append(("ss", [f"ss.{dim}.{k}" for k in keys]))
        sums.append(("ans", [f"ans.{dim}.{k}" for k in keys]))
        for k in keys:
            sums.append((f"ss.{dim}.{k}", [f"ss.{dim}.{k}.yes", f"ss.{dim}.{k}.no"]))
            sums.append((f"ans.{dim}.{k}", [f"mr.{dim}.{k}.yes", f"mr.{dim}.{k}.no"]))
            sums.append((f"rch.{dim}.{k}", [f"ans.{dim}.{k}", f"rch.unanswered.{dim}.{k}"]))
            sums.append((f"ps.at_referral.{dim}.{k}.yes", [f"ss.{dim}.{k}", f"ps.at_referral.other_public.{dim}.{k}"]))
        sums.append(("rch.unanswered", [f"rch.unanswered.{dim}.{k}" for k in keys]))
        sums.append(("ps.at_referral.other_public", [f"ps.at_referral.other_public.{dim}.{k}" for k in keys]))
        sums.append(("ss.yes", [f"ss.{dim}.{k}.yes" for k in keys]))
        sums.append(("ss.type.other_support", [f"ss.{dim}.{k}.no" for k in keys]))
        sums.append(("mr.yes", [f"mr.{dim}.{k}.yes" for k in keys]))
        sums.append(("mr.no", [f"mr.{dim}.{k}.no" for k in keys]))
    return sums


TABLES = _tables()
NAMES = sorted({n for total, parts in TABLES for n in (total, *parts)}
               | {f"act.{a}" for a in ACTIONS} | {f"post.{r}" for r in POSTPONEMENTS}
               | STOCK | UNPROTECTED)
PROTECTED = [n for n in NAMES if n not in UNPROTECTED]


# --------------------------------------------------------------------------- atoms


def referral_atom(party, gender, age_band, income, violence) -> Counter:
    return Counter({"ref": 1, f"ref.party.{party}": 1, f"ref.gender.{gender or 'UNKNOWN'}": 1,
                    f"ref.age.{age_band or 'UNKNOWN'}": 1,
                    f"ref.income.{income if income in INCOMES else 'UNKNOWN'}": 1,
                    f"ref.violence.{'yes' if violence else 'no'}": 1})


def consultation_atom(gender, attended) -> Counter:
    return Counter({"con": 1, f"con.gender.{gender or 'UNKNOWN'}": 1,
                    f"con.attended.{'yes' if attended else 'no'}": 1})


def followup_atom(revision: int, reached, income_at_referral, income_source, readiness,
                  gender, party) -> Counter:
    """One six-month follow-up due, with its latest record."""
    if revision == 0:
        return Counter({"due": 1, "due.not_recorded": 1})
    if not reached:
        return Counter({"due": 1, "due.not_reached": 1})
    group = {"gender": gender or "UNKNOWN", "party": party}
    atom = Counter({"due": 1, "due.reached": 1})
    public = {"at_referral": income_at_referral in domain.PUBLIC_SUPPORT,
              "at_follow_up": income_source in domain.PUBLIC_SUPPORT}
    for moment, yes in public.items():
        atom[f"ps.{moment}.{'yes' if yes else 'no'}"] += 1
        for dim, key in group.items():
            atom[f"ps.{moment}.{dim}.{key}.{'yes' if yes else 'no'}"] += 1
    for dim, key in group.items():
        atom[f"rch.{dim}.{key}"] += 1
    if public["at_referral"] and income_at_referral != IncomeSource.FORSORJNINGSSTOD.value:
        atom["ps.at_referral.other_public"] += 1
        for dim, key in group.items():
            atom[f"ps.at_referral.other_public.{dim}.{key}"] += 1
    if income_at_referral == IncomeSource.FORSORJNINGSSTOD.value:
        self_sufficient = income_source in domain.SELF_SUFFICIENCY_TYPES
        atom["ss"] += 1
        atom[f"ss.type.{income_source if self_sufficient else 'other_support'}"] += 1
        if self_sufficient:
            atom["ss.yes"] += 1
        for dim, key in group.items():
            atom[f"ss.{dim}.{key}"] += 1
            atom[f"ss.{dim}.{key}.{'yes' if self_sufficient else 'no'}"] += 1
    if not readiness or readiness == "not_answered":
        atom["rch.unanswered"] += 1
        for dim, key in group.items():
            atom[f"rch.unanswered.{dim}.{key}"] += 1
    else:
        more = readiness in ("much_more", "more")
        atom["ans"] += 1
        atom[f"mr.{'yes' if more else 'no'}"] += 1
        for dim, key in group.items():
            atom[f"ans.{dim}.{key}"] += 1
            atom[f"mr.{dim}.{key}.{'yes' if more else 'no'}"] += 1
    return atom


@dataclass
class Atoms:
    """Exact counts of one year per (month, team), and the lead times behind the medians."""
    year: int
    counts: dict[tuple[int, str], Counter] = field(default_factory=dict)
    lead_days: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    opening: dict[str, int] = field(default_factory=dict)  # each team's queue as the year begins

    def add(self, month: int, team: str | None, atom: Counter | dict, times: int = 1) -> None:
        """Count ``atom`` (name -> count) ``times`` in the month and team."""
        self.counts.setdefault((month, team or "UNKNOWN"), Counter()).update(
            {name: n * times for name, n in atom.items()})


# Raise when what a publication holds or how it is protected changes: every year is then
# published again (the digest of its source changes with it).
PUBLICATION_VERSION = 2  # 2: a small queue as the year began is taken as "<5"


def source_digest(atoms: Atoms, teams: dict[str, str], threshold: int) -> str:
    """A digest of everything a year's publication is worked out from: the same digest, the
    same publication (so a year whose facts have not changed is not protected again)."""
    source = {
        "version": PUBLICATION_VERSION, "year": atoms.year, "threshold": threshold,
        "teams": sorted(teams.items()), "teams_counted": sorted({t for _, t in atoms.counts}),
        "opening": sorted((t, n) for t, n in atoms.opening.items() if n),
        "counts": sorted((m, t, sorted((k, n) for k, n in c.items() if n))
                         for (m, t), c in atoms.counts.items() if any(c.values())),
        "lead_days": sorted((m, t, sorted(days)) for (m, t), days in atoms.lead_days.items() if days),
    }
    return hashlib.sha256(json.dumps(source, separators=(",", ":")).encode()).hexdigest()


# --------------------------------------------------------------------------- periods, scopes


def periods(year: int) -> list[tuple[str, list[int]]]:
    """The year's months, quarters and the year, each with its months."""
    months = [(f"{year}-{m:02d}", [m]) for m in range(1, 13)]
    quarters = [(f"{year}Q{q}", [3 * q - 2, 3 * q - 1, 3 * q]) for q in range(1, 5)]
    return months + quarters + [(str(year), list(range(1, 13)))]


def scope_key(team_id: str | None = None, municipality: str | None = None) -> str:
    return f"team:{team_id}" if team_id else (f"municipality:{municipality}" if municipality else ALL)


def scopes(teams: dict[str, str], months: int = 3) -> dict[str, list[str]]:
    """Every scope with its teams: all, each municipality, each team (team -> municipality).
    A single month is not published per team: almost every count of a team's month is
    under the threshold, and they would only make more counts hidden elsewhere."""
    result = {ALL: sorted(teams)}
    for team, municipality in sorted(teams.items()):
        result.setdefault(scope_key(municipality=municipality), []).append(team)
        if months > 1:
            result[scope_key(team_id=team)] = [team]
    return result


def published(period_label: str, scope: str) -> bool:
    """Whether a period and scope is published at all (a team's single month is not)."""
    return not (scope.startswith("team:") and len(period_label) == 7)


# --------------------------------------------------------------------------- the publication


@dataclass
class Publication:
    """A year's figures per (period, scope), and every count behind them with its mark."""
    figures: dict[tuple[str, str], dict]
    counts: dict[tuple[str, str, str], tuple[int, int | str]]


def publish_year(atoms: Atoms, teams: dict[str, str], threshold: int,
                 previous: dict[tuple[str, str, str], tuple[int, int | str]] | None = None) -> Publication:
    """Every figure of the year for every (period, scope), protected together; ``previous``:
    the counts as last published (unchanged counts keep their marks)."""
    values, marks, scopes_of, _ = protected_counts(atoms, teams, threshold, previous)
    result = {}
    for label, months in periods(atoms.year):
        for scope, members in scopes_of[label].items():
            result[(label, scope)] = _figures(label, months, scope, members, marks, values, atoms,
                                              threshold)
    return Publication(result, {k: (v, marks[k]) for k, v in values.items()})


def protected_counts(atoms: Atoms, teams: dict[str, str], threshold: int, previous=None):
    """Every count of the year (period, scope, name) and its published mark, protected as one
    publication; the scopes of each period; and the sums the protection was told."""
    teams = dict(teams)
    for _, team in atoms.counts:
        teams.setdefault(team, "UNKNOWN")
    all_periods = periods(atoms.year)
    scopes_of = {label: scopes(teams, len(months)) for label, months in all_periods}

    values: dict[tuple, int] = {}
    for label, months in all_periods:
        for scope, members in scopes_of[label].items():
            total: Counter = Counter()
            for m in months:  # a count at the period's end (STOCK): of its last month
                for t in members:
                    total.update({n: v for n, v in atoms.counts.get((m, t), {}).items()
                                  if m == months[-1] or n not in STOCK})
            for name in NAMES:
                values[(label, scope, name)] = total.get(name, 0)

    linked = sums(all_periods, scopes_of, teams) + _queue_flow(atoms, all_periods, scopes_of, values)
    # the queue as the year began was published with the year before: taken as known, but for
    # a small one, which that publication hid ("<5"). (Taken as known exactly, a team's small
    # queue with no referrals since pinned its inflow, and undoing that took hiding the team's
    # every zero: minutes of work, for nothing the reader did not know.)
    small = disclosure.primary_mark(threshold)
    known = {k: (v, small if 0 < v < threshold else v) for k, v in values.items() if k[0] == "opening"}
    protected = {k: v for k, v in values.items() if k[2] not in UNPROTECTED}
    marks = disclosure.protect(protected, linked, threshold, (previous or {}) | known)
    marks.update({k: v for k, v in values.items() if k[2] in UNPROTECTED})
    return values, marks, scopes_of, linked


def _queue_flow(atoms: Atoms, all_periods, scopes_of, values: dict) -> list[disclosure.Sum]:
    """The queue moves: at a period's end it is the queue at the previous period's end plus
    the period's referrals, less the cases that left it (the consulted among them; and those
    not consulted or closed).
    Told to the protection with the inflow and the outflow as counts never shown; else the
    queues and the referrals would give away a small count of either."""
    result: list[disclosure.Sum] = []
    for scope, members in scopes_of[str(atoms.year)].items():
        values[("opening", scope, "queue")] = sum(atoms.opening.get(t, 0) for t in members)
    for length in (1, 3, 12):
        chain = [label for label, months in all_periods if len(months) == length]
        for i, label in enumerate(chain):
            before = chain[i - 1] if i else "opening"
            for scope in scopes_of[label]:
                if (before, scope, "queue") not in values:
                    continue
                inflow = values[(before, scope, "queue")] + values[(label, scope, "ref")]
                outflow = inflow - values[(label, scope, "queue")]
                if outflow < 0:
                    continue  # facts that do not add up (a case moved between teams): no such sum
                values[(label, scope, "queue.in")] = inflow
                values[(label, scope, "queue.out")] = outflow
                result.append(((label, scope, "queue.in"), [(before, scope, "queue"), (label, scope, "ref")]))
                result.append(((label, scope, "queue.in"), [(label, scope, "queue"), (label, scope, "queue.out")]))
                other = outflow - values[(label, scope, "con")]  # consulted cases are among those who left
                if other >= 0:
                    values[(label, scope, "queue.out.other")] = other
                    result.append(((label, scope, "queue.out"), [(label, scope, "con"), (label, scope, "queue.out.other")]))
    return result


def sums(all_periods, scopes_of, teams) -> list[disclosure.Sum]:
    """Every sum a reader knows: within a period and scope (TABLES), over the scopes (all =
    the municipalities, a municipality = its teams) and over time (a year = its quarters, a
    quarter = its months; not for a count at the period's end)."""
    result: list[disclosure.Sum] = []
    municipalities = sorted({scope_key(municipality=m) for m in teams.values()})
    flows = [n for n in PROTECTED if n not in STOCK]
    for label, _ in all_periods:
        in_period = scopes_of[label]
        for scope in in_period:
            for total, parts in TABLES:
                result.append(((label, scope, total), [(label, scope, p) for p in parts]))
        for name in PROTECTED:
            result.append(((label, ALL, name), [(label, m, name) for m in municipalities]))
            for m in municipalities:
                if all(f"team:{t}" in in_period for t in in_period[m]):
                    result.append(((label, m, name), [(label, f"team:{t}", name) for t in in_period[m]]))
    labels = {tuple(months): label for label, months in all_periods}
    year = next(label for label, months in all_periods if len(months) == 12)
    quarters = [(label, months) for label, months in all_periods if len(months) == 3]
    for scope in scopes_of[year]:
        for name in flows:
            result.append(((year, scope, name), [(q, scope, name) for q, _ in quarters]))
            for q, months in quarters:
                if all(scope in scopes_of[labels[(m,)]] for m in months):
                    result.append(((q, scope, name), [(labels[(m,)], scope, name) for m in months]))
        for name in STOCK:  # the same count: at the end of the year, its last quarter, its last month
            result.append(((year, scope, name), [(quarters[-1][0], scope, name)]))
            for q, months in quarters:
                if scope in scopes_of[labels[(months[-1],)]]:
                    result.append(((q, scope, name), [(labels[(months[-1],)], scope, name)]))
    return result


def _figures(label, months, scope, members, marks, values, atoms: Atoms, threshold) -> dict:
    """The figures of one period and scope, in the shape the API, the report and the
    snapshots publish."""
    def at(name: str, where: str = scope):
        return marks[(label, where, name)]

    def value(name: str, where: str = scope) -> int:
        return values[(label, where, name)]

    shown_teams = [t for t in members if (label, f"team:{t}", "con") in marks]

    def share(part: str, whole: str, where: str = scope) -> dict:
        shown = isinstance(at(part, where), int) and isinstance(at(whole, where), int) and value(whole, where)
        return {"count": at(part, where), "of": at(whole, where),
                "share": round(value(part, where) / value(whole, where), 4) if shown else None}

    def table(total: str, cells: dict[str, str]) -> dict:
        shown_total = isinstance(at(total), int) and value(total) > 0
        return {"counts": {k: at(n) for k, n in cells.items()}, "total": at(total),
                "shares": {k: (round(value(n) / value(total), 4) if shown_total and isinstance(at(n), int)
                               else None) for k, n in cells.items()}}

    def median(where_teams: list[str], shown) -> float | None:
        if not (isinstance(shown, int) and shown >= threshold):
            return None
        return domain.median([d for m in months for t in where_teams for d in atoms.lead_days.get((m, t), [])])

    f: dict = {}
    f["referrals_by_party"] = table("ref", {p: f"ref.party.{p}" for p in PARTIES})
    f["referrals_by_party"]["goal_share"] = domain.even_spread_goal()
    f["referrals_by_gender"] = table("ref", {g: f"ref.gender.{g}" for g in GENDERS})
    f["referrals_by_age_band"] = table("ref", {a: f"ref.age.{a}" for a in AGE_BANDS})
    f["income_at_referral"] = table("ref", {i: f"ref.income.{i}" for i in INCOMES})
    f["violence_question_asked"] = share("ref.violence.yes", "ref")
    f["cases_consulted_by_gender"] = table("con", {g: f"con.gender.{g}" for g in GENDERS})
    f["individual_participation"] = share("con.attended.yes", "con")
    f["activities"] = {a: at(f"act.{a}") for a in ACTIONS}
    f["lead_time_days"] = {
        "all": {"n": at("con"), "median": median(members, at("con"))},
        "by_team": {t: {"n": at("con", f"team:{t}"), "median": median([t], at("con", f"team:{t}"))}
                    for t in shown_teams}}
    f["queue_by_team"] = {t: at("queue", f"team:{t}") for t in shown_teams}
    f["meetings"] = {"held": at("meet.held"),
                     "cancelled_by_reason": {r: at(f"meet.cancelled.{r}") for r in CANCELLATIONS}}
    f["pre_meetings_held"] = at("meet.pre")
    f["postponements_by_reason"] = {r: at(f"post.{r}") for r in POSTPONEMENTS}
    f["followup_response"] = table("due", {k: f"due.{k}" for k in ("reached", "not_reached", "not_recorded")})
    f["public_support"] = {"all": {m: share(f"ps.{m}.yes", "due.reached") for m in MOMENTS}}
    for dim, title in (("gender", "by_gender"), ("party", "by_referring_party")):
        f["public_support"][title] = {m: {k: share(f"ps.{m}.{dim}.{k}.yes", f"rch.{dim}.{k}")
                                          for k in GROUPS[dim]} for m in MOMENTS}
    f["self_sufficiency"] = {
        "on_income_support_at_referral": at("ss"),
        "self_sufficient": {k: v for k, v in share("ss.yes", "ss").items() if k != "of"},
        "by_type": table("ss", {t: f"ss.type.{t}" for t in [*SS_TYPES, "other_support"]})}
    f["more_ready"] = share("mr.yes", "ans")
    f["more_ready_by"] = {}
    for dim, title in (("gender", "by_gender"), ("party", "by_referring_party")):
        f["self_sufficiency"][title] = {k: share(f"ss.{dim}.{k}.yes", f"ss.{dim}.{k}") for k in GROUPS[dim]}
        f["more_ready_by"][title.removeprefix("by_")] = {k: share(f"mr.{dim}.{k}.yes", f"ans.{dim}.{k}")
                                                         for k in GROUPS[dim]}
    return f
