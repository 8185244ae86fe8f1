"""Metrics storage (asyncpg): the event log, a case's and a meeting's facts, the cells, the
sums the figures are made of, the teams, the access log of exact reads, and the public editions.

What the use cases read and write goes through small repositories over the transaction's
connection (``EventLog``, ``Cells``, ``Teams``, ``AccessLog``, ``Editions``, gathered by
``MetricsUnitOfWork``), which answer in dataclasses, never database records. The facts of cases
and meetings are the projections' own (``projections``): plain functions over the connection.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
import structlog
from pydantic import ValidationError

from shared.contracts import Contract, Envelope, registered

from .domain import CaseFacts, Cell, EditionMade, MeetingFacts, Period, SixMonths
from .figures import Sum

log = structlog.get_logger("metrics.store")

CELL_COLUMNS = ("team_id", "municipality", "referring_party", "gender", "age_band", "income")
# the dimension (catalogue) of each cell column
DIMENSION_OF = {
    "team_id": "team",
    "municipality": "municipality",
    "referring_party": "referring_party",
    "gender": "gender",
    "age_band": "age_band",
    "income": "income_at_referral",
}


# --------------------------------------------------------------------------- the event log


@dataclass(frozen=True)
class LoggedEvent:
    """An event of the log, decoded into its contract again (as the consumer first decoded it)."""

    seq: int  # the order it was received in
    event_id: uuid.UUID
    event: Contract | None  # None: it no longer decodes (its contract is gone, or stricter now)


class EventLog:
    """Every event the service consumed, as received: what the projections are rebuilt from."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def add(self, envelope: Envelope) -> bool:
        """Keep the event as received (the inbox already made it unique). False if it was there."""
        return envelope.event_id in await self.add_many([envelope])

    async def add_many(self, envelopes: Sequence[Envelope]) -> set[uuid.UUID]:
        """Keep these events as received, in this order, in one statement; the ids of those
        that were not there yet."""
        if not envelopes:
            return set()
        rows = await self.conn.fetch(
            """INSERT INTO event_log (event_id, event_type, version, occurred_at, payload)
               SELECT event_id, event_type, version, occurred_at, payload::jsonb
               FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::text[])
                    WITH ORDINALITY AS e (event_id, event_type, version, occurred_at, payload, received)
               ORDER BY received
               ON CONFLICT (event_id) DO NOTHING RETURNING event_id""",
            [e.event_id for e in envelopes],
            [e.event_type for e in envelopes],
            [e.version for e in envelopes],
            [e.occurred_at for e in envelopes],
            [json.dumps(e.payload) for e in envelopes],
        )
        return {r["event_id"] for r in rows}

    async def after(self, seq: int, limit: int, types: Collection[str]) -> list[LoggedEvent]:
        """The events of ``types`` received after ``seq``, in order, each decoded into the
        contract registered for its type and version, as the consumer decoded it. One that no
        longer decodes (its contract version was removed, or made stricter) comes as None and is
        logged: a rebuild goes on without it rather than never finishing (the live service has
        it in its projections already; the error says which to look at)."""
        rows = await self.conn.fetch(
            """SELECT seq, event_id, event_type, version, payload FROM event_log
               WHERE seq > $1 AND event_type = ANY($3) ORDER BY seq LIMIT $2""",
            seq,
            limit,
            list(types),
        )
        contracts = registered()
        return [LoggedEvent(r["seq"], r["event_id"], _decoded(contracts, r)) for r in rows]


def _decoded(contracts: dict[tuple[str, int], type[Contract]], row: asyncpg.Record) -> Contract | None:
    contract_cls = contracts.get((row["event_type"], row["version"]))
    try:
        if contract_cls is None:
            raise LookupError(f"no contract {row['event_type']} v{row['version']} is registered")
        payload = row["payload"]
        if isinstance(payload, str):
            return contract_cls.model_validate_json(payload)
        return contract_cls.model_validate(payload)
    except (LookupError, ValidationError) as exc:
        log.error(
            "a logged event no longer decodes; the rebuild leaves it out",
            event_id=str(row["event_id"]),
            event_type=row["event_type"],
            version=row["version"],
            error=type(exc).__name__,
        )
        return None


# --------------------------------------------------------------------------- facts

# a case's six-month follow-ups, as JSON (``_case`` reads them)
_SIX_MONTHS = """json_build_object(
                    'due_on', f.due_on, 'cancelled', f.cancelled, 'recorded', f.revision > 0,
                    'reached', f.reached, 'income_source', f.income_source, 'readiness', f.readiness)"""
_CASE_COLUMNS = """c.team_id, c.municipality, c.referring_party, c.gender, c.age_band,
       c.income_at_referral, c.violence_question_asked, c.referred_on, c.consulted_on,
       c.individual_attended, c.not_consulted_on, c.closed_on, c.meeting_id"""
_CASE = f"""
SELECT k.case_ref, {_CASE_COLUMNS},
       coalesce((SELECT array_agg(a.type ORDER BY a.position) FROM action_facts a
                 WHERE a.case_ref = k.case_ref), '{{}}') AS actions,
       coalesce((SELECT array_agg(p.from_meeting_date ORDER BY p.event_id) FROM postponement_facts p
                 WHERE p.case_ref = k.case_ref), '{{}}') AS postponed_on,
       coalesce((SELECT array_agg(p.reason ORDER BY p.event_id) FROM postponement_facts p
                 WHERE p.case_ref = k.case_ref), '{{}}') AS postponed_why,
       coalesce((SELECT json_agg({_SIX_MONTHS} ORDER BY f.followup_id)
                 FROM followup_facts f WHERE f.case_ref = k.case_ref AND f.kind = 'six_months'), '[]')
           AS followups
FROM unnest($1::text[]) AS k(case_ref) LEFT JOIN case_facts c ON c.case_ref = k.case_ref
"""
# every case anything is known of, from the fact tables named with ``suffix`` (a rebuild's)
_ALL_CASES = f"""
WITH k AS (SELECT case_ref FROM case_facts{{s}} UNION SELECT case_ref FROM followup_facts{{s}}
           UNION SELECT case_ref FROM postponement_facts{{s}}),
     a AS (SELECT case_ref, array_agg(type ORDER BY position) AS actions FROM action_facts{{s}} GROUP BY case_ref),
     p AS (SELECT case_ref, array_agg(from_meeting_date ORDER BY event_id) AS postponed_on,
                  array_agg(reason ORDER BY event_id) AS postponed_why
           FROM postponement_facts{{s}} GROUP BY case_ref),
     f AS (SELECT case_ref, json_agg({_SIX_MONTHS} ORDER BY f.followup_id) AS followups
           FROM followup_facts{{s}} f WHERE f.kind = 'six_months' GROUP BY case_ref)
SELECT k.case_ref, {_CASE_COLUMNS}, coalesce(a.actions, '{{{{}}}}') AS actions,
       coalesce(p.postponed_on, '{{{{}}}}') AS postponed_on, coalesce(p.postponed_why, '{{{{}}}}') AS postponed_why,
       coalesce(f.followups, '[]') AS followups
FROM k LEFT JOIN case_facts{{s}} c USING (case_ref) LEFT JOIN a USING (case_ref) LEFT JOIN p USING (case_ref)
     LEFT JOIN f USING (case_ref)
"""


def _case(row: asyncpg.Record) -> CaseFacts:
    followups = row["followups"]
    followups = json.loads(followups) if isinstance(followups, str) else followups
    return CaseFacts(
        case_ref=row["case_ref"],
        team_id=row["team_id"],
        municipality=row["municipality"],
        referring_party=row["referring_party"],
        gender=row["gender"],
        age_band=row["age_band"],
        income_at_referral=row["income_at_referral"],
        violence_question_asked=row["violence_question_asked"],
        referred_on=row["referred_on"],
        consulted_on=row["consulted_on"],
        individual_attended=row["individual_attended"],
        not_consulted_on=row["not_consulted_on"],
        closed_on=row["closed_on"],
        meeting_id=row["meeting_id"],
        actions=tuple(row["actions"]),
        postponements=tuple(zip(row["postponed_on"], row["postponed_why"], strict=True)),
        followups=tuple(
            SixMonths(
                due_on=date.fromisoformat(f["due_on"]) if f["due_on"] and f["due_on"] > "1970-01-01" else None,
                cancelled=f["cancelled"],
                recorded=f["recorded"],
                reached=f["reached"],
                income_source=f["income_source"],
                readiness=f["readiness"],
            )
            for f in followups
        ),
    )


async def cases(conn: asyncpg.Connection, case_refs: Iterable[str]) -> list[CaseFacts]:
    """The facts of these cases (a case with no facts yet comes back empty)."""
    return [_case(r) for r in await conn.fetch(_CASE, list(case_refs))]


async def all_cases(conn: asyncpg.Connection, suffix: str = "") -> AsyncIterator[CaseFacts]:
    """The facts of every case anything is known of, in a few scans (a rebuild), from the fact
    tables named with ``suffix`` (``case_facts_rebuild``...). In a transaction (a cursor)."""
    async for row in conn.cursor(_ALL_CASES.format(s=suffix), prefetch=5000):
        yield _case(row)


async def meetings(conn: asyncpg.Connection, meeting_ids: Iterable[str]) -> list[MeetingFacts]:
    rows = await conn.fetch(
        """SELECT m.*, (SELECT count(*) FROM case_facts c WHERE c.meeting_id = m.meeting_id
                          AND (c.consulted_on IS NOT NULL OR c.not_consulted_on IS NOT NULL))
                      + COALESCE((SELECT r.cases_recorded FROM retired_meeting_cases r
                                  WHERE r.meeting_id = m.meeting_id), 0) AS cases_recorded
           FROM meeting_facts m WHERE m.meeting_id = ANY($1::text[]) ORDER BY m.meeting_id""",
        list(meeting_ids),
    )
    return [_meeting(r) for r in rows]


async def all_meetings(conn: asyncpg.Connection, suffix: str = "") -> list[MeetingFacts]:
    """Every meeting's facts (a rebuild), from the tables named with ``suffix``, counting the
    cases recorded at it that are gone after retention."""
    rows = await conn.fetch(
        f"""SELECT m.*, coalesce(r.n, 0) + coalesce(gone.cases_recorded, 0) AS cases_recorded
            FROM meeting_facts{suffix} m
            LEFT JOIN (SELECT meeting_id, count(*) AS n FROM case_facts{suffix}
                       WHERE consulted_on IS NOT NULL OR not_consulted_on IS NOT NULL GROUP BY meeting_id) r
            USING (meeting_id)
            LEFT JOIN retired_meeting_cases gone USING (meeting_id)"""
    )
    return [_meeting(r) for r in rows]


def _meeting(r: asyncpg.Record) -> MeetingFacts:
    return MeetingFacts(
        meeting_id=r["meeting_id"],
        team_id=r["team_id"],
        municipality=r["municipality"],
        meeting_date=r["meeting_date"],
        cancelled_reason=r["cancelled_reason"],
        pre_meeting_held_on=r["pre_meeting_held_on"],
        cases_recorded=r["cases_recorded"],
    )


# --------------------------------------------------------------------------- cells


class Cells:
    """The cells (``domain.Cell`` -> count) every figure is a sum of, kept up to date by the
    projections, and the sums the exact figures are read from."""

    def __init__(self, conn: asyncpg.Connection, table: str = "figure_cells") -> None:
        assert table in ("figure_cells", "retired_cells")  # retired: the counts of cases gone after retention
        self.conn, self.table = conn, table

    async def add(self, delta: dict[Cell, int]) -> None:
        """Add a change of cells (cell -> +/- count); a cell that comes to zero is removed."""
        if not delta:
            return
        rows = [(*cell, n) for cell, n in delta.items()]
        columns = list(zip(*rows, strict=True))
        zeroed = await self.conn.fetch(
            f"""WITH changed AS (
                   INSERT INTO {self.table} AS f (measure, detail, day, team_id, municipality, referring_party,
                                                  gender, age_band, income, n)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::text[], $6::text[],
                                        $7::text[], $8::text[], $9::text[], $10::bigint[])
                   ON CONFLICT (day, measure, detail, team_id, municipality, referring_party, gender, age_band, income)
                   DO UPDATE SET n = f.n + EXCLUDED.n
                   RETURNING f.day, f.n)
               SELECT DISTINCT day FROM changed WHERE n = 0""",
            *[list(c) for c in columns],
        )
        # a cell can come to zero from either side (a cell below zero for a while, when a case's
        # facts arrive out of step, comes back to zero when raised): the upsert names those days
        if zeroed:
            days = [r["day"] for r in zeroed]
            await self.conn.execute(f"DELETE FROM {self.table} WHERE n = 0 AND day = ANY($1::date[])", days)

    async def all(self) -> Counter[Cell]:
        """Every cell with its count."""
        rows = await self.conn.fetch(f"""SELECT measure, detail, day, {", ".join(CELL_COLUMNS)}, n FROM {self.table}""")
        return Counter({(r["measure"], r["detail"], r["day"], *(r[c] for c in CELL_COLUMNS)): r["n"] for r in rows})

    async def write(self, cells: Counter[Cell], table: str | None = None) -> None:
        """Write cells into an empty table (``table``: a rebuild's shadow of this one)."""
        await self.conn.copy_records_to_table(
            table or self.table,
            columns=["measure", "detail", "day", *CELL_COLUMNS, "n"],
            records=[(*cell, n) for cell, n in cells.items() if n],
        )

    async def sums(self, measures: list[str], start: date, end: date, filters: dict[str, list[str]]) -> list[Sum]:
        """The sum of each measure's cells (per detail) from ``start`` to ``end``, with the filters
        (cell column -> values), in total and per value of each dimension: one query."""
        args: list[Any] = [measures, start, end]
        where = ["measure = ANY($1::text[])", "day BETWEEN $2 AND $3"]
        for column, values in filters.items():
            assert column in CELL_COLUMNS
            args.append(list(values))
            where.append(f"{column} = ANY(${len(args)}::text[])")
        sets = ", ".join(["(measure, detail)"] + [f"(measure, detail, {c})" for c in CELL_COLUMNS])
        groupings = ", ".join(f"GROUPING({c}) AS g_{c}" for c in CELL_COLUMNS)
        rows = await self.conn.fetch(
            f"""SELECT measure, detail, {", ".join(CELL_COLUMNS)}, {groupings}, sum(n)::bigint AS n
                FROM figure_cells WHERE {" AND ".join(where)}
                GROUP BY GROUPING SETS ({sets})""",
            *args,
        )
        result: list[Sum] = []
        for r in rows:
            column = next((c for c in CELL_COLUMNS if r[f"g_{c}"] == 0), None)
            result.append(
                (
                    r["measure"],
                    r["detail"],
                    DIMENSION_OF[column] if column else None,
                    r[column] if column else None,
                    r["n"],
                )
            )
        return result

    async def first_and_last_day(self) -> tuple[date | None, date | None]:
        """The first and last day anything counted happened on (not the queue's last move)."""
        row = await self.conn.fetchrow(
            "SELECT min(day) AS first, max(day) AS last FROM figure_cells WHERE measure NOT LIKE 'outcome.%@cohort'"
        )
        return row["first"], row["last"]

    async def municipalities(self) -> list[str]:
        """Every municipality anything was counted in: the county is exactly their sum."""
        return [
            r["municipality"]
            for r in await self.conn.fetch(
                "SELECT DISTINCT municipality FROM figure_cells WHERE municipality <> '' ORDER BY 1"
            )
        ]


# --------------------------------------------------------------------------- teams


@dataclass(frozen=True)
class Team:
    team_id: str
    team_name: str
    municipality: str


class Teams:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def all(self) -> list[Team]:
        """Every team and its municipality (as last updated, or as its first case said)."""
        rows = await self.conn.fetch(
            "SELECT team_id, team_name, municipality FROM team_facts ORDER BY municipality, team_id"
        )
        return [Team(r["team_id"], r["team_name"], r["municipality"]) for r in rows]


async def closed_before(conn: asyncpg.Connection, day: date, limit: int) -> list[str]:
    """Up to ``limit`` cases closed before ``day``, the longest closed first."""
    rows = await conn.fetch(
        "SELECT case_ref FROM case_facts WHERE closed_on < $1 ORDER BY closed_on, case_ref LIMIT $2", day, limit
    )
    return [r["case_ref"] for r in rows]


async def retire_meeting_cases(conn: asyncpg.Connection, recorded: Counter[str]) -> None:
    """Keep, per meeting, how many cases recorded at it are gone after retention."""
    if recorded:
        await conn.execute(
            """INSERT INTO retired_meeting_cases AS r (meeting_id, cases_recorded)
               SELECT * FROM unnest($1::text[], $2::int[])
               ON CONFLICT (meeting_id) DO UPDATE SET cases_recorded = r.cases_recorded + EXCLUDED.cases_recorded""",
            list(recorded),
            list(recorded.values()),
        )


async def delete_cases(conn: asyncpg.Connection, case_refs: list[str]) -> None:
    """Every case-level row of these cases: their facts, their logged events, their consent."""
    for table in ("action_facts", "postponement_facts", "followup_facts", "case_facts", "consent_state"):
        await conn.execute(f"DELETE FROM {table} WHERE case_ref = ANY($1::text[])", case_refs)
    await conn.execute(
        "DELETE FROM event_log WHERE payload ? 'case_ref' AND payload->>'case_ref' = ANY($1::text[])", case_refs
    )


async def know_teams_of_cases(conn: asyncpg.Connection, suffix: str = "") -> None:
    """Teams known only from their cases get a row of their own (revision 0); in the tables
    named with ``suffix`` (a rebuild's)."""
    await conn.execute(
        f"""INSERT INTO team_facts{suffix} (team_id, municipality, team_name, revision)
           SELECT DISTINCT ON (team_id) team_id, municipality, team_id, 0 FROM case_facts{suffix}
           WHERE team_id IS NOT NULL AND municipality IS NOT NULL ORDER BY team_id, municipality
           ON CONFLICT (team_id) DO NOTHING"""
    )


# --------------------------------------------------------------------------- access log


@dataclass(frozen=True, kw_only=True)
class FigureRead:
    """One read of exact figures: who, in which role, by which way (api, csv, report, command),
    of which scope and question. ``id`` and ``read_at`` are the log's, once written."""

    id: int | None = None
    read_at: datetime | None = None
    user_id: str
    role: str
    party: str | None
    via: str
    scope: str
    query: dict[str, Any]


class AccessLog:
    """The append-only log of exact reads (the table refuses updates and deletes)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def add(self, read: FigureRead) -> None:
        await self.conn.execute(
            "INSERT INTO figure_reads (user_id, role, party, via, scope, query) VALUES ($1, $2, $3, $4, $5, $6)",
            read.user_id,
            read.role,
            read.party,
            read.via,
            read.scope,
            json.dumps(read.query, default=str),
        )

    async def latest(self, *, since: datetime | None, user_id: str | None, limit: int) -> list[FigureRead]:
        """The latest reads first, since a time and of one user if asked."""
        rows = await self.conn.fetch(
            """SELECT id, read_at, user_id, role, party, via, scope, query FROM figure_reads
               WHERE ($1::timestamptz IS NULL OR read_at >= $1) AND ($2::text IS NULL OR user_id = $2)
               ORDER BY id DESC LIMIT $3""",
            since,
            user_id,
            limit,
        )
        return [
            FigureRead(
                id=r["id"],
                read_at=r["read_at"],
                user_id=r["user_id"],
                role=r["role"],
                party=r["party"],
                via=r["via"],
                scope=r["scope"],
                query=_json(r["query"]),
            )
            for r in rows
        ]


# --------------------------------------------------------------------------- public editions


@dataclass(frozen=True)
class PublishedEdition(EditionMade):
    """An edition with what it shows: per scope (the county, each municipality) its figures;
    ``counts`` every count with its mark (what a later year's edition is tied to)."""

    figures: dict[str, Any]
    counts: dict[str, Any] | None = None


class Editions:
    """The public editions: frozen once made; a correction or a remake is a new edition."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def lock(self) -> bool:
        """One instance makes editions at a time (for the transaction): False if another does."""
        return bool(await self.conn.fetchval("SELECT pg_try_advisory_xact_lock(7246014)"))

    async def wait_for_lock(self) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(7246014)")

    async def add(
        self,
        period: Period,
        *,
        made_at: datetime,
        threshold: int,
        definitions_version: int,
        reason: str,
        counts: dict[str, Any],
        figures: dict[str, Any],
    ) -> int:
        """Store a new edition of the period; returns its number."""
        number: int = await self.conn.fetchval(
            """INSERT INTO public_editions (period, edition, period_start, period_end, made_at, threshold,
                                            definitions_version, reason, counts, figures)
               SELECT $1, coalesce(max(edition), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9
               FROM public_editions WHERE period = $1
               RETURNING edition""",
            period.label,
            period.start,
            period.end,
            made_at,
            threshold,
            definitions_version,
            reason,
            json.dumps(counts),
            json.dumps(figures),
        )
        return number

    async def latest(self, period: str, edition: int | None = None) -> PublishedEdition | None:
        """The latest edition of a period, or the one of that number."""
        row = await self.conn.fetchrow(
            """SELECT * FROM public_editions WHERE period = $1 AND ($2::int IS NULL OR edition = $2)
               ORDER BY edition DESC LIMIT 1""",
            period,
            edition,
        )
        if row is None:
            return None
        return PublishedEdition(
            **{k: row[k] for k in _EDITION_MADE}, figures=_json(row["figures"]), counts=_json(row["counts"])
        )

    async def all(self) -> list[EditionMade]:
        """Every edition, newest period first (without their figures)."""
        rows = await self.conn.fetch(
            f"""SELECT {", ".join(_EDITION_MADE)} FROM public_editions
                ORDER BY period_end DESC, period, edition DESC"""
        )
        return [EditionMade(**dict(r)) for r in rows]


_EDITION_MADE = (
    "period",
    "edition",
    "period_start",
    "period_end",
    "made_at",
    "threshold",
    "definitions_version",
    "reason",
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
