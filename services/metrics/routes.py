"""Metrics HTTP API: aggregate figures only, small counts suppressed."""

from fastapi import APIRouter, HTTPException

from . import domain, store


def make_routes(runtime) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["figures"])

    @router.get("/referrals/by-party")
    async def referrals_by_party() -> dict:
        """Referrals per referring party since the start; counts under 5 show as "<5"."""
        if not runtime.ready.is_set():
            raise HTTPException(503, "metrics service is starting; try again shortly")
        async with runtime.pool.acquire() as conn:
            counts = await store.referral_counts(conn)
        return {"referrals_by_party": domain.referrals_by_party(counts),
                "suppression_threshold": domain.SUPPRESSION_THRESHOLD}

    return router
