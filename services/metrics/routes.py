"""Metrics HTTP API: aggregate figures only, every count under the threshold suppressed; the
dashboard (`/`), the printable quarterly report (`/report/{period}`) and CSV export. No
personal data is held here, so the figures need no sign-in."""

from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from . import domain, figures, report, store

STATIC = Path(__file__).parent / "static"
Dimension = Annotated[str | None, Query(max_length=48, pattern=r"^[A-Za-z0-9_ åäöÅÄÖ-]+$")]


def plotly_js() -> Path:
    """plotly.js as the plotly package ships it: served by this service, no CDN."""
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


def make_routes(runtime) -> APIRouter:
    router = APIRouter()
    threshold = runtime.settings.suppression_threshold

    def ready() -> None:
        if not runtime.ready.is_set():
            raise HTTPException(503, {"code": "starting", "message": "the metrics service is starting"})

    def filter_of(period: str, team_id, municipality, referring_party, gender, age_band) -> figures.Filter:
        try:
            parsed = domain.parse_period(period)
        except domain.BadPeriod as exc:
            raise HTTPException(422, {"code": "period_invalid", "message": str(exc)}) from None
        return figures.Filter(parsed, team_id, municipality, referring_party, gender, age_band)

    async def build(f: figures.Filter) -> dict:
        ready()
        async with runtime.pool.acquire() as conn:
            raw = await figures.raw_figures(conn, f)
        return {"filter": f.describe(), "suppression_threshold": threshold,
                "figures": figures.publish(raw, threshold)}

    Period = Annotated[str, Query(max_length=40, description="2026Q3, 2026-09, 2026 or 2026-07-01..2026-09-30")]
    Party = Annotated[Literal["AF", "FK", "KOMMUN", "REGION"] | None, Query()]
    GenderQ = Annotated[Literal["MAN", "WOMAN", "UNKNOWN"] | None, Query()]
    Band = Annotated[Literal["16-24", "25-34", "35-44", "45-54", "55-65", "UNKNOWN"] | None, Query()]

    @router.get("/api/v1/figures", tags=["figures"])
    async def all_figures(period: Period, team_id: Dimension = None, municipality: Dimension = None,
                          referring_party: Party = None, gender: GenderQ = None,
                          age_band: Band = None) -> dict:
        """Every figure of the board's report for the period and filters (docs/metrics.md)."""
        return await build(filter_of(period, team_id, municipality, referring_party, gender, age_band))

    @router.get("/api/v1/figures.csv", tags=["figures"], response_class=PlainTextResponse)
    async def figures_csv(period: Period, team_id: Dimension = None, municipality: Dimension = None,
                          referring_party: Party = None, gender: GenderQ = None,
                          age_band: Band = None) -> Response:
        f = filter_of(period, team_id, municipality, referring_party, gender, age_band)
        built = await build(f)
        name = "".join(c for c in f.period.label if c.isalnum() or c in "-.")
        return Response(report.render_csv(built), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="trisam-{name}.csv"'})

    @router.get("/api/v1/trend", tags=["figures"])
    async def trend(period: Period, quarters: Annotated[int, Query(ge=1, le=12)] = 4,
                    team_id: Dimension = None, municipality: Dimension = None) -> dict:
        """Referrals per party for each of the last ``quarters`` quarters up to the period."""
        last = filter_of(period, team_id, municipality, None, None, None).period
        result = []
        for quarter in domain.quarters_back(last, quarters):
            built = await build(figures.Filter(quarter, team_id, municipality))
            result.append({"period": quarter.label,
                           "referrals_by_party": built["figures"]["referrals_by_party"]})
        return {"quarters": result, "suppression_threshold": threshold}

    @router.get("/api/v1/teams", tags=["figures"])
    async def teams() -> list[dict]:
        """The teams and their municipalities, for the filters."""
        async with runtime.pool.acquire() as conn:
            return [dict(r) for r in await store.teams(conn)]

    @router.get("/api/v1/referrals/by-party", tags=["figures"])
    async def referrals_by_party() -> dict:
        """Referrals per referring party since the start; counts under the threshold hidden."""
        ready()
        async with runtime.pool.acquire() as conn:
            counts = await store.referral_counts(conn)
        return {"referrals_by_party": domain.referrals_by_party(counts, threshold),
                "suppression_threshold": threshold}

    @router.get("/report/{period}", tags=["report"], response_class=HTMLResponse)
    async def quarterly_report(period: Annotated[str, "path"],
                               lang: Literal["sv", "en"] = "sv") -> HTMLResponse:
        """The printable report in the structure of the board's quarterly report."""
        if len(period) > 40:
            raise HTTPException(422, {"code": "period_invalid", "message": "too long"})
        built = await build(filter_of(period, None, None, None, None, None))
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
