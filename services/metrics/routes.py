"""Metrics HTTP API: aggregate figures only, every count under the threshold suppressed; the
dashboard (`/`), the printable quarterly report (`/report/{period}`) and CSV export. No
personal data is held here, so the figures need no sign-in."""

from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from . import domain, publication, report, store

STATIC = Path(__file__).parent / "static"
Dimension = Annotated[str | None, Query(max_length=48, pattern=r"^[A-Za-z0-9_ åäöÅÄÖ-]+$")]


def plotly_js() -> Path:
    """plotly.js as the plotly package ships it: served by this service, no CDN."""
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


def make_routes(runtime) -> APIRouter:
    router = APIRouter()
    threshold = runtime.settings.suppression_threshold
    zeros: dict[tuple, dict] = {}  # the publication of a year without facts, per set of teams

    def ready() -> None:
        if not runtime.ready.is_set():
            raise HTTPException(503, {"code": "starting", "message": "the metrics service is starting"})

    def period_of(text: str) -> domain.Period:
        try:
            period = domain.parse_period(text)
        except domain.BadPeriod as exc:
            raise HTTPException(422, {"code": "period_invalid", "message": str(exc)}) from None
        published = domain.published_period(period)
        if published is None:
            raise HTTPException(422, {"code": "period_not_published", "message": (
                "figures are published per month, quarter and year; a range that is none of "
                "these could be set against a published period to reveal a hidden count")})
        return published

    def scope_of(team_id, municipality, refused: dict) -> str:
        given = [name for name, value in refused.items() if value is not None]
        if given:
            raise HTTPException(422, {"code": "filter_not_published", "message": (
                f"{', '.join(given)}: figures are published per team and municipality, with gender, "
                "age band and referring party as breakdowns in them, not as filters (a filtered "
                "figure could be set against the whole to reveal a hidden count)")})
        return publication.scope_key(team_id, municipality)

    async def build(period: domain.Period, scope: str) -> dict:
        """The published figures of a period and scope: the rows the publisher wrote, never
        the case-level projections."""
        ready()
        async with runtime.pool.acquire() as conn:
            found = await store.published_figures(conn, period.label, scope)
            if found is None:
                years = await store.published_years(conn)
                if not years:
                    raise HTTPException(503, {"code": "not_yet_published",
                                              "message": "the figures are being published; try again shortly"},
                                        headers={"Retry-After": "5"})
                if period.start.year in years:  # a year with facts: the scope is unknown
                    raise HTTPException(404, {"code": "scope_unknown", "message": f"no figures for {scope}"})
                teams = {r["team_id"]: r["municipality"] for r in await store.teams(conn)}
                # a year without any fact: every count is zero (worked out once per set of teams)
                key = (period.start.year, tuple(sorted(teams.items())))
                if key not in zeros:
                    zeros.clear()
                    zeros[key] = publication.publish_year(publication.Atoms(period.start.year), teams,
                                                          threshold).figures
                found = zeros[key].get((period.label, scope))
                if found is None:
                    raise HTTPException(404, {"code": "scope_unknown", "message": f"no figures for {scope}"})
        team_id, _, name = scope.partition(":")
        return {"filter": {"period": period.label, "from": period.start.isoformat(),
                           "to": period.end.isoformat(),
                           "team_id": name if team_id == "team" else None,
                           "municipality": name if team_id == "municipality" else None},
                "suppression_threshold": threshold, "figures": found}

    Period = Annotated[str, Query(max_length=40, description="2026Q3, 2026-09 or 2026")]
    Refused = Annotated[str | None, Query(max_length=48, include_in_schema=False)]

    @router.get("/api/v1/figures", tags=["figures"])
    async def all_figures(period: Period, team_id: Dimension = None, municipality: Dimension = None,
                          referring_party: Refused = None, gender: Refused = None,
                          age_band: Refused = None) -> dict:
        """Every figure of the board's report for a period, for all teams, a municipality or a
        team, as published (docs/metrics.md)."""
        scope = scope_of(team_id, municipality, {"referring_party": referring_party, "gender": gender,
                                                 "age_band": age_band})
        return await build(period_of(period), scope)

    @router.get("/api/v1/figures.csv", tags=["figures"], response_class=PlainTextResponse)
    async def figures_csv(period: Period, team_id: Dimension = None, municipality: Dimension = None,
                          referring_party: Refused = None, gender: Refused = None,
                          age_band: Refused = None) -> Response:
        scope = scope_of(team_id, municipality, {"referring_party": referring_party, "gender": gender,
                                                 "age_band": age_band})
        parsed = period_of(period)
        built = await build(parsed, scope)
        name = "".join(c for c in parsed.label if c.isalnum() or c in "-.")
        return Response(report.render_csv(built), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="trisam-{name}.csv"'})

    @router.get("/api/v1/trend", tags=["figures"])
    async def trend(period: Period, quarters: Annotated[int, Query(ge=1, le=12)] = 4,
                    team_id: Dimension = None, municipality: Dimension = None) -> dict:
        """Referrals per party for each of the last ``quarters`` quarters up to the period."""
        last = period_of(period)
        scope = publication.scope_key(team_id, municipality)
        result = []
        for quarter in domain.quarters_back(last, quarters):
            built = await build(quarter, scope)
            result.append({"period": quarter.label,
                           "referrals_by_party": built["figures"]["referrals_by_party"]})
        return {"quarters": result, "suppression_threshold": threshold}

    @router.get("/api/v1/teams", tags=["figures"])
    async def teams() -> list[dict]:
        """The teams and their municipalities, for the filters."""
        async with runtime.pool.acquire() as conn:
            return [dict(r) for r in await store.teams(conn)]

    @router.get("/report/{period}", tags=["report"], response_class=HTMLResponse)
    async def quarterly_report(period: Annotated[str, "path"],
                               lang: Literal["sv", "en"] = "sv") -> HTMLResponse:
        """The printable report in the structure of the board's quarterly report."""
        if len(period) > 40:
            raise HTTPException(422, {"code": "period_invalid", "message": "too long"})
        built = await build(period_of(period), publication.ALL)
        return HTMLResponse(report.render_html(built, lang))

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
