"""Metrics HTTP API, thin: the exact figures for signed-in readers (board, analysts,
coordinators and members within their scope; every read logged), the public editions for
anyone, the catalogue, the access log for auditors, the dashboard and the report page.
"""


from datetime import date, datetime
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from shared.platform.auth import (SESSION_COOKIE, Principal, Role, authenticate, mint_token,
                         require_roles)

from . import catalogue, domain, exact, public, report, store
from .domain import Scope

STATIC = Path(__file__).parent / "static"
READERS = frozenset({Role.BOARD, Role.ANALYST, Role.COORDINATOR, Role.MEMBER, Role.AUDITOR})
Name = Annotated[str | None, Query(max_length=48, pattern=r"^[A-Za-z0-9_ åäöÅÄÖéÉ-]+$")]
PeriodText = Annotated[str | None, Query(max_length=40, description="2026Q3, 2026-09, 2026 or a range "
                                                                     "2026-07-01..2026-09-30")]
SESSION_SECONDS = 8 * 3600


def plotly_js() -> Path:
    """plotly.js as the plotly package ships it: served by this service, no CDN."""
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


def _error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status, {"code": code, "message": message})


def period_of(period: str | None, start: date | None, end: date | None) -> domain.Period:
    try:
        if period and not (start or end):
            return domain.parse_period(period)
        if start and end and not period:
            return domain.date_range(start, end)
    except domain.BadPeriod as exc:
        raise _error(422, "period_invalid", str(exc)) from None
    raise _error(422, "period_invalid", "give a period (2026Q3, 2026-09, 2026) or both from and to")


def edition_period(period: str) -> domain.Period:
    try:
        parsed = domain.parse_period(period)
    except domain.BadPeriod as exc:
        raise _error(422, "period_invalid", str(exc)) from None
    if parsed.kind not in ("quarter", "year"):
        raise _error(422, "period_not_public", "the public figures are of quarters and years")
    return parsed


class SignIn(BaseModel):
    """Development sign-in: who to be."""
    role: Literal["board", "analyst", "coordinator", "member", "auditor"]
    team_id: str | None = Field(default=None, max_length=48, pattern=r"^[A-Za-z0-9_-]+$")
    user_id: str = Field(default="dev-user", max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")


def make_routes(runtime) -> APIRouter:
    router = APIRouter()
    settings = runtime.settings
    signed_in = authenticate(settings, accept=READERS, cookie=True)
    maybe_signed_in = authenticate(settings, accept=READERS, cookie=True, optional=True)
    Reader = Annotated[Principal, Depends(signed_in)]

    def ready() -> None:
        if not runtime.ready.is_set():
            raise _error(503, "starting", "the metrics service is starting")

    def question(period, start, end, team_id, municipality, referring_party, gender, age_band,
                 income_at_referral, outcomes) -> exact.Question:
        if team_id and municipality:
            raise _error(422, "scope_invalid", "give a team or a municipality, not both")
        filters = {k: v for k, v in (("referring_party", referring_party), ("gender", gender),
                                      ("age_band", age_band), ("income_at_referral", income_at_referral)) if v}
        for dimension, value in filters.items():
            if value not in catalogue.VALUES[dimension]:
                raise _error(422, "filter_invalid", f"{dimension} is one of {', '.join(catalogue.VALUES[dimension])}")
        return exact.Question(period_of(period, start, end),
                              Scope(municipality=municipality, teams=(team_id,) if team_id else ()),
                              filters, outcomes)

    async def read(q: exact.Question, principal: Principal, via: str) -> dict:
        ready()
        async with runtime.pool.acquire() as conn, conn.transaction():
            try:
                return await exact.read(conn, q, principal, via)
            except domain.NotInScope as exc:
                raise _error(403, "not_in_scope", str(exc)) from None

    Outcomes = Annotated[Literal["cohort", "due"], Query(description="six-month outcomes by referral "
                                                                     "cohort (default) or by due date")]
    Dimension = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]

    @router.get("/api/v1/figures", tags=["exact figures"])
    async def figures(principal: Reader, period: PeriodText = None, start: Annotated[date | None, Query(alias="from")] = None,
                      end: Annotated[date | None, Query(alias="to")] = None, team_id: Name = None,
                      municipality: Name = None, referring_party: Dimension = None, gender: Dimension = None,
                      age_band: Dimension = None, income_at_referral: Dimension = None,
                      outcomes: Outcomes = "cohort") -> dict:
        """Every figure, exactly, for a period or any date range, within the reader's scope;
        filtered by any case dimension. The read is logged."""
        return await read(question(period, start, end, team_id, municipality, referring_party, gender,
                                   age_band, income_at_referral, outcomes), principal, "api")

    @router.get("/api/v1/figures.csv", tags=["exact figures"])
    async def figures_csv(principal: Reader, period: PeriodText = None,
                          start: Annotated[date | None, Query(alias="from")] = None,
                          end: Annotated[date | None, Query(alias="to")] = None, team_id: Name = None,
                          municipality: Name = None, referring_party: Dimension = None, gender: Dimension = None,
                          age_band: Dimension = None, income_at_referral: Dimension = None,
                          outcomes: Outcomes = "cohort", lang: Literal["sv", "en"] = "sv") -> Response:
        """The same as CSV (one row per figure, breakdown and value)."""
        result = await read(question(period, start, end, team_id, municipality, referring_party, gender,
                                     age_band, income_at_referral, outcomes), principal, "csv")
        return _csv(result, lang)

    @router.get("/api/v1/teams", tags=["exact figures"])
    async def teams(principal: Reader) -> list[dict]:
        """The teams and their municipalities (the registry), for choosing a scope."""
        async with runtime.pool.acquire() as conn:
            return await store.teams(conn)

    @router.get("/api/v1/span", tags=["exact figures"])
    async def span(principal: Reader) -> dict:
        """The first and the last day anything counted happened on, and the latest quarter
        with data (the dashboard's default period)."""
        async with runtime.pool.acquire() as conn:
            first, last = await store.first_and_last_day(conn)
        return {"first": first, "last": last,
                "latest_quarter": domain.quarter_of(min(last, date.today()) if last else date.today()).label}

    @router.get("/api/v1/access-log", tags=["exact figures"])
    async def access_log(principal: Reader, since: datetime | None = None, user_id: Name = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
        """Who read which exact figures (auditors only)."""
        require_roles(principal, Role.AUDITOR)
        async with runtime.pool.acquire() as conn:
            return {"reads": await store.reads(conn, since=since, user_id=user_id, limit=limit)}

    @router.get("/api/v1/public/editions", tags=["public figures"])
    async def editions() -> dict:
        """Every public edition: its period, number, when it was made and why."""
        async with runtime.pool.acquire() as conn:
            return {"editions": await store.editions(conn)}

    async def public_edition(period: str, municipality: str | None, edition: int | None) -> dict:
        parsed = edition_period(period)
        async with runtime.pool.acquire() as conn:
            found = await store.latest_edition(conn, parsed.label, edition)
        if found is None:
            raise _error(404, "no_edition", f"{parsed.label} has no public edition yet: one is made "
                                            f"{settings.metrics_edition_grace_days} days after the period closes")
        scope = municipality or public.COUNTY
        if scope not in found["figures"]:
            raise _error(404, "scope_unknown", f"no public figures for {municipality}")
        return {"audience": "public", "period": found["period"], "from": found["period_start"],
                "to": found["period_end"], "edition": found["edition"], "made_at": found["made_at"],
                "reason": found["reason"], "suppression_threshold": found["threshold"],
                "scope": scope, "municipality": municipality, "scopes": sorted(found["figures"]),
                "outcome_basis": "due", "figures": found["figures"][scope]}

    @router.get("/api/v1/public/figures", tags=["public figures"])
    async def public_figures(period: Annotated[str, Query(max_length=40)], municipality: Name = None,
                             edition: Annotated[int | None, Query(ge=1)] = None,
                             team_id: Name = None) -> dict:
        """A public edition (the latest, or the one asked for) for the county or a municipality.
        No teams: their counts are too small to show to everyone."""
        if team_id:
            raise _error(422, "teams_not_public", "teams are not in the public figures; sign in to read them")
        return await public_edition(period, municipality, edition)

    @router.get("/api/v1/public/figures.csv", tags=["public figures"])
    async def public_figures_csv(period: Annotated[str, Query(max_length=40)], municipality: Name = None,
                                 edition: Annotated[int | None, Query(ge=1)] = None,
                                 lang: Literal["sv", "en"] = "sv") -> Response:
        return _csv(await public_edition(period, municipality, edition), lang)

    @router.get("/api/v1/catalogue", tags=["public figures"])
    async def catalogue_() -> dict:
        """Every figure's name (Swedish, English), definition, unit, breakdowns; every code in words."""
        return {"figures": [{"key": f.key, "sv": f.sv, "en": f.en, "definition": f.definition,
                             "kind": f.kind, "unit": f.unit, "basis": f.basis, "by": list(f.by),
                             "detail": f.detail, "base": f.base, "public": f.public}
                            for f in catalogue.FIGURES],
                "dimensions": {k: {"sv": v[0], "en": v[1]} for k, v in catalogue.DIMENSION_NAMES.items()},
                "values": {k: list(v) for k, v in catalogue.VALUES.items()},
                "labels": {k: {"sv": v[0], "en": v[1]} for k, v in catalogue.CODE_LABELS.items()}}

    @router.post("/api/v1/session", tags=["sign-in"])
    async def start_session(principal: Reader, request: Request) -> JSONResponse:
        """Keep the caller's bearer token (from the identity provider) in a cookie, so that the
        browser's pages (the report) are read as this reader."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            raise _error(422, "bearer_needed", "start a session with the token in the Authorization header")
        answer = JSONResponse({"user_id": principal.user_id, "role": principal.role.value,
                               "teams": sorted(principal.teams)})
        answer.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                          path="/", secure=settings.env != "dev")
        return answer

    @router.delete("/api/v1/session", tags=["sign-in"])
    async def end_session() -> JSONResponse:
        answer = JSONResponse({"signed_in": False})
        answer.delete_cookie(SESSION_COOKIE, path="/")
        return answer

    @router.get("/api/v1/whoami", tags=["sign-in"])
    async def whoami(principal: Annotated[Principal | None, Depends(maybe_signed_in)]) -> dict:
        if principal is None:
            return {"signed_in": False}
        return {"signed_in": True, "user_id": principal.user_id, "role": principal.role.value,
                "party": principal.party.value if principal.party else None, "teams": sorted(principal.teams)}

    @router.get("/dev/sign-in", include_in_schema=False)
    async def dev_sign_in_available() -> dict:
        """Whether the development sign-in is here (only in development), with the teams."""
        if settings.env != "dev":
            raise _error(404, "not_found", "no development sign-in here")
        async with runtime.pool.acquire() as conn:
            return {"available": True, "teams": [t["team_id"] for t in await store.teams(conn)]}

    @router.post("/dev/sign-in", include_in_schema=False)
    async def dev_sign_in(body: SignIn) -> JSONResponse:
        """Development only (refused otherwise): a token for any reader role, in a cookie too."""
        if settings.env != "dev":
            raise _error(404, "not_found", "no development sign-in here")
        if body.role in ("coordinator", "member") and not body.team_id:
            raise _error(422, "team_missing", "a coordinator or member signs in for a team")
        async with runtime.pool.acquire() as conn:
            teams = {t["team_id"]: t for t in await store.teams(conn)}
        if body.team_id and body.team_id not in teams:
            raise _error(422, "team_unknown", f"no team {body.team_id}")
        party = "REGION" if body.role in ("coordinator", "member", "auditor") else None
        token = mint_token(settings.jwt_secret.get_secret_value(), user_id=body.user_id, party=party,
                           role=body.role, teams=[body.team_id] if body.team_id else [],
                           ttl_seconds=SESSION_SECONDS)
        answer = JSONResponse({"token": token, "role": body.role, "team_id": body.team_id})
        answer.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict", path="/")
        return answer

    @router.get("/report/{period}", tags=["report"], response_class=HTMLResponse)
    async def quarterly_report(period: Annotated[str, "path"],
                               principal: Annotated[Principal | None, Depends(maybe_signed_in)],
                               municipality: Name = None, team_id: Name = None,
                               outcomes: Outcomes = "cohort",
                               lang: Literal["sv", "en"] = "sv") -> HTMLResponse:
        """The printable report in the structure of the board's quarterly report: exact for a
        signed-in reader (within their scope), the public edition otherwise; it says which."""
        if len(period) > 40:
            raise _error(422, "period_invalid", "too long")
        if principal is None:
            if team_id:
                raise _error(401, "sign_in_needed", "a team's figures are for signed-in readers")
            result = await public_edition(period, municipality, None)
        else:
            result = await read(question(period, None, None, team_id, municipality, None, None, None, None,
                                         outcomes), principal, "report")
        return HTMLResponse(report.render_html(result, lang))

    @router.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html", media_type="text/html")

    @router.get("/static/dashboard.js", include_in_schema=False)
    async def dashboard_js() -> FileResponse:
        return FileResponse(STATIC / "dashboard.js", media_type="text/javascript")

    @router.get("/static/plotly.min.js", include_in_schema=False)
    async def plotly() -> FileResponse:
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "max-age=86400"})

    return router


def _csv(result: dict, lang: str) -> Response:
    name = "".join(c for c in str(result["period"]) if c.isalnum() or c in "-.")
    return Response(report.render_csv(result, lang), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="trisam-{result["audience"]}-{name}.csv"'})
