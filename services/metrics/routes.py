"""Metrics HTTP API, thin: the exact figures for signed-in readers (board, analysts,
coordinators and members within their scope; every read logged), the public editions for
anyone, the catalogue, the access log for auditors, the dashboard and the report page.

Each route reads its request (the reader, from a bearer token or the session cookie; the
question) and runs one use case (``exact``, ``editions``) in a unit of work committed before
it answers (``UnitsOfWork.run``), which also answers the use case's refusals (403, 404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, Security
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from shared.platform import http
from shared.platform.auth import (
    BEARER_DESCRIPTION,
    SESSION_COOKIE,
    Principal,
    Role,
    authenticate,
    mint_token,
    signing_key,
)
from shared.platform.config import Settings

from . import catalogue, domain, editions, exact, report
from .domain import EditionMade, Scope
from .store import FigureRead, Team
from .uow import MetricsUnitOfWork

STATIC = Path(__file__).parent / "static"
READERS = frozenset({Role.BOARD, Role.ANALYST, Role.COORDINATOR, Role.MEMBER, Role.AUDITOR})
Name = Annotated[str | None, Query(max_length=48, pattern=r"^[A-Za-z0-9_ åäöÅÄÖéÉ-]+$")]
PeriodText = Annotated[
    str | None, Query(max_length=40, description="2026Q3, 2026-09, 2026 or a range 2026-07-01..2026-09-30")
]
PublicPeriod = Annotated[str, Query(max_length=40)]
EditionNumber = Annotated[int | None, Query(ge=1)]
Dimension = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Outcomes = Annotated[
    Literal["cohort", "due"], Query(description="six-month outcomes by referral cohort (default) or by due date")
]
Lang = Literal["sv", "en"]
SESSION_SECONDS = 8 * 3600
T = TypeVar("T")

router = APIRouter()


def plotly_js() -> Path:
    """plotly.js as the plotly package ships it: served by this service, no CDN."""
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


def _error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status, {"code": code, "message": message})


# --------------------------------------------------------------------------- dependencies


def settings_of(request: Request) -> Settings:
    settings: Settings = http.runtime_of(request).settings
    return settings


Config = Annotated[Settings, Depends(settings_of)]
_bearer = HTTPBearer(auto_error=False, bearerFormat="JWT", description=BEARER_DESCRIPTION)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


async def signed_in(request: Request, settings: Config, credentials: Credentials) -> Principal:
    """The reader, from the bearer token or the session cookie: 401 without one, 403 for a role
    that reads nothing here."""
    principal = await authenticate(settings, accept=READERS, cookie=True)(request, credentials)
    assert principal is not None
    return principal


async def maybe_signed_in(request: Request, settings: Config, credentials: Credentials) -> Principal | None:
    """The reader if signed in, else None (a page that shows anyone the public figures)."""
    return await authenticate(settings, accept=READERS, cookie=True, optional=True)(request, credentials)


SignedIn = Annotated[Principal, Depends(signed_in)]
MaybeSignedIn = Annotated[Principal | None, Depends(maybe_signed_in)]

# A use case's refusals, answered: (status, code).
REFUSALS: dict[type[Exception], tuple[int, str]] = {
    domain.NotInScope: (403, "not_in_scope"),
    domain.NotAllowed: (403, "role_not_allowed"),
    editions.NoEdition: (404, "no_edition"),
    editions.ScopeUnknown: (404, "scope_unknown"),
}


@dataclass(frozen=True)
class UnitsOfWork:
    """Runs a request's use case in a unit of work of its own (``shared.platform.http``)."""

    new_uow: Callable[[], AbstractAsyncContextManager[MetricsUnitOfWork]]
    settings: Settings

    async def run(self, use_case: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``use_case(uow, *args)``, committed before the answer; a refusal rolls it back (a
        refused read is not logged) and is answered with its status and code."""
        try:
            async with self.new_uow() as uow:
                return await use_case(uow, *args)
        except tuple(REFUSALS) as exc:
            status, code = REFUSALS[type(exc)]
            raise _error(status, code, self._message(exc)) from None

    def _message(self, exc: Exception) -> str:
        if isinstance(exc, editions.NoEdition):
            return (
                f"{exc} has no public edition yet: one is made {self.settings.metrics_edition_grace_days} "
                f"days after the period closes"
            )
        return str(exc)


def units_of_work(request: Request, settings: Config) -> UnitsOfWork:
    if not http.runtime_of(request).ready.is_set():
        raise _error(503, "starting", "the metrics service is starting")
    return UnitsOfWork(http.units_of_work(request), settings)


Uow = Annotated[UnitsOfWork, Depends(units_of_work)]


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


def question(
    period: domain.Period, team_id: str | None, municipality: str | None, filters: dict[str, str | None], outcomes: str
) -> exact.Question:
    if team_id and municipality:
        raise _error(422, "scope_invalid", "give a team or a municipality, not both")
    given = {dimension: value for dimension, value in filters.items() if value}
    for dimension, value in given.items():
        if value not in catalogue.VALUES[dimension]:
            raise _error(422, "filter_invalid", f"{dimension} is one of {', '.join(catalogue.VALUES[dimension])}")
    return exact.Question(
        period, Scope(municipality=municipality, teams=(team_id,) if team_id else ()), given, outcomes
    )


def asked(
    period: PeriodText = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    team_id: Name = None,
    municipality: Name = None,
    referring_party: Dimension = None,
    gender: Dimension = None,
    age_band: Dimension = None,
    income_at_referral: Dimension = None,
    outcomes: Outcomes = "cohort",
) -> exact.Question:
    """The question of an exact read: a period or any date range, a team or a municipality (or
    the county), filtered by any case dimension."""
    filters = {
        "referring_party": referring_party,
        "gender": gender,
        "age_band": age_band,
        "income_at_referral": income_at_referral,
    }
    return question(period_of(period, start, end), team_id, municipality, filters, outcomes)


Asked = Annotated[exact.Question, Depends(asked)]


class SignIn(BaseModel):
    """Development sign-in: who to be."""

    role: Literal["board", "analyst", "coordinator", "member", "auditor"]
    team_id: str | None = Field(default=None, max_length=48, pattern=r"^[A-Za-z0-9_-]+$")
    user_id: str = Field(default="dev-user", max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")


# --------------------------------------------------------------------------- exact figures


@router.get("/api/v1/figures", tags=["exact figures"])
async def figures(principal: SignedIn, q: Asked, uow: Uow) -> dict[str, Any]:
    """Every figure, exactly, for a period or any date range, within the reader's scope;
    filtered by any case dimension. The read is logged."""
    return await uow.run(exact.read, q, principal, "api")


@router.get("/api/v1/figures.csv", tags=["exact figures"])
async def figures_csv(principal: SignedIn, q: Asked, uow: Uow, lang: Lang = "sv") -> Response:
    """The same as CSV (one row per figure, breakdown and value)."""
    return _csv(await uow.run(exact.read, q, principal, "csv"), lang)


@router.get("/api/v1/teams", tags=["exact figures"])
async def teams(principal: SignedIn, uow: Uow) -> list[Team]:
    """The teams and their municipalities (the registry), for choosing a scope."""
    return await uow.run(exact.teams)


@router.get("/api/v1/span", tags=["exact figures"])
async def span(principal: SignedIn, uow: Uow) -> dict[str, Any]:
    """The first and the last day anything counted happened on, and the latest quarter
    with data (the dashboard's default period)."""
    return await uow.run(exact.span, date.today())


@router.get("/api/v1/access-log", tags=["exact figures"])
async def access_log(
    principal: SignedIn,
    uow: Uow,
    since: datetime | None = None,
    user_id: Name = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, list[FigureRead]]:
    """Who read which exact figures (auditors only)."""
    return {"reads": await uow.run(exact.access_log, principal, since, user_id, limit)}


# --------------------------------------------------------------------------- public figures


@router.get("/api/v1/public/editions", tags=["public figures"])
async def public_editions(uow: Uow) -> dict[str, list[EditionMade]]:
    """Every public edition: its period, number, when it was made and why."""
    return {"editions": await uow.run(editions.listing)}


@router.get("/api/v1/public/figures", tags=["public figures"])
async def public_figures(
    period: PublicPeriod, uow: Uow, municipality: Name = None, edition: EditionNumber = None, team_id: Name = None
) -> dict[str, Any]:
    """A public edition (the latest, or the one asked for) for the county or a municipality.
    No teams: their counts are too small to show to everyone."""
    if team_id:
        raise _error(422, "teams_not_public", "teams are not in the public figures; sign in to read them")
    return await uow.run(editions.published, edition_period(period), municipality, edition)


@router.get("/api/v1/public/figures.csv", tags=["public figures"])
async def public_figures_csv(
    period: PublicPeriod, uow: Uow, municipality: Name = None, edition: EditionNumber = None, lang: Lang = "sv"
) -> Response:
    return _csv(await uow.run(editions.published, edition_period(period), municipality, edition), lang)


@router.get("/api/v1/catalogue", tags=["public figures"])
async def catalogue_() -> dict[str, Any]:
    """Every figure's name (Swedish, English), definition, unit, breakdowns; every code in words."""
    return {
        "figures": [
            {
                "key": f.key,
                "sv": f.sv,
                "en": f.en,
                "definition": f.definition,
                "kind": f.kind,
                "unit": f.unit,
                "basis": f.basis,
                "by": list(f.by),
                "detail": f.detail,
                "base": f.base,
                "public": f.public,
            }
            for f in catalogue.FIGURES
        ],
        "dimensions": {k: {"sv": v[0], "en": v[1]} for k, v in catalogue.DIMENSION_NAMES.items()},
        "values": {k: list(v) for k, v in catalogue.VALUES.items()},
        "labels": {k: {"sv": v[0], "en": v[1]} for k, v in catalogue.CODE_LABELS.items()},
    }


@router.get("/report/{period}", tags=["report"], response_class=HTMLResponse)
async def quarterly_report(
    period: Annotated[str, "path"],
    principal: MaybeSignedIn,
    uow: Uow,
    municipality: Name = None,
    team_id: Name = None,
    outcomes: Outcomes = "cohort",
    lang: Lang = "sv",
) -> HTMLResponse:
    """The printable report in the structure of the board's quarterly report: exact for a
    signed-in reader (within their scope), the public edition otherwise; it says which."""
    if len(period) > 40:
        raise _error(422, "period_invalid", "too long")
    if principal is None:
        if team_id:
            raise _error(401, "sign_in_needed", "a team's figures are for signed-in readers")
        result = await uow.run(editions.published, edition_period(period), municipality, None)
    else:
        q = question(period_of(period, None, None), team_id, municipality, {}, outcomes)
        result = await uow.run(exact.read, q, principal, "report")
    return HTMLResponse(report.render_html(result, lang))


# --------------------------------------------------------------------------- sign-in


@router.post("/api/v1/session", tags=["sign-in"])
async def start_session(principal: SignedIn, request: Request, settings: Config) -> JSONResponse:
    """Keep the caller's bearer token (from the identity provider) in a cookie, so that the
    browser's pages (the report) are read as this reader."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not token:
        raise _error(422, "bearer_needed", "start a session with the token in the Authorization header")
    answer = JSONResponse(
        {"user_id": principal.user_id, "role": principal.role.value, "teams": sorted(principal.teams)}
    )
    answer.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        path="/",
        secure=settings.env != "dev",
    )
    return answer


@router.delete("/api/v1/session", tags=["sign-in"])
async def end_session() -> JSONResponse:
    answer = JSONResponse({"signed_in": False})
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


@router.get("/api/v1/whoami", tags=["sign-in"])
async def whoami(principal: MaybeSignedIn) -> dict[str, Any]:
    if principal is None:
        return {"signed_in": False}
    return {
        "signed_in": True,
        "user_id": principal.user_id,
        "role": principal.role.value,
        "party": principal.party.value if principal.party else None,
        "teams": sorted(principal.teams),
    }


@router.get("/dev/sign-in", include_in_schema=False)
async def dev_sign_in_available(settings: Config, uow: Uow) -> dict[str, Any]:
    """Whether the development sign-in is here (only in development), with the teams."""
    if settings.env != "dev":
        raise _error(404, "not_found", "no development sign-in here")
    return {"available": True, "teams": [t.team_id for t in await uow.run(exact.teams)]}


@router.post("/dev/sign-in", include_in_schema=False)
async def dev_sign_in(body: SignIn, settings: Config, uow: Uow) -> JSONResponse:
    """Development only (refused otherwise): a token for any reader role, in a cookie too."""
    if settings.env != "dev":
        raise _error(404, "not_found", "no development sign-in here")
    if body.role in ("coordinator", "member") and not body.team_id:
        raise _error(422, "team_missing", "a coordinator or member signs in for a team")
    if body.team_id and body.team_id not in {t.team_id for t in await uow.run(exact.teams)}:
        raise _error(422, "team_unknown", f"no team {body.team_id}")
    party = "REGION" if body.role in ("coordinator", "member", "auditor") else None
    token = mint_token(
        signing_key(settings),
        user_id=body.user_id,
        party=party,
        role=body.role,
        teams=[body.team_id] if body.team_id else [],
        ttl_seconds=SESSION_SECONDS,
    )
    answer = JSONResponse({"token": token, "role": body.role, "team_id": body.team_id})
    answer.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict", path="/")
    return answer


# --------------------------------------------------------------------------- pages


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


@router.get("/static/dashboard.js", include_in_schema=False)
async def dashboard_js() -> FileResponse:
    return FileResponse(STATIC / "dashboard.js", media_type="text/javascript")


@router.get("/static/plotly.min.js", include_in_schema=False)
async def plotly() -> FileResponse:
    return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def _csv(result: dict[str, Any], lang: str) -> Response:
    name = "".join(c for c in str(result["period"]) if c.isalnum() or c in "-.")
    return Response(
        report.render_csv(result, lang),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="trisam-{result["audience"]}-{name}.csv"'},
    )
