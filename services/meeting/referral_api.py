"""The referral service's consent-gated case details, as the pre-meeting agenda fetches them.

The caller's own bearer token is passed on, so the referral service decides (role, team,
the individual's consent for the caller's party) and writes the read to its access log under
the caller's name, with the purpose "pre-meeting <meeting id>". Nothing fetched is stored here.
"""

from __future__ import annotations

import ssl

import httpx
import structlog

log = structlog.get_logger("meeting.referral_api")


class ReferralApi:
    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    @classmethod
    def at(cls, base_url: str, verify: ssl.SSLContext | bool = True) -> ReferralApi:
        """``verify``: what the referral service's certificate is checked against (https)."""
        return cls(httpx.AsyncClient(base_url=base_url, timeout=5.0, verify=verify))

    async def case_details(self, case_ref: str, *, authorization: str, purpose: str) -> dict:
        """``{"details": {...}}`` when granted, else ``{"withheld": code}``."""
        try:
            response = await self.client.get(
                f"/api/v1/cases/{case_ref}", params={"purpose": purpose}, headers={"Authorization": authorization}
            )
        except httpx.HTTPError as exc:
            log.warning("referral service unreachable for case details", error=type(exc).__name__)
            return {"withheld": "details_unavailable"}
        if response.status_code == 200:
            body = response.json()
            return {"details": {k: body.get(k) for k in ("personnummer", "protected_identity", "question", "erased")}}
        if response.status_code in (401, 403, 404):
            detail = response.json().get("detail")
            return {"withheld": detail.get("code", "denied") if isinstance(detail, dict) else "denied"}
        log.warning("referral service answered case details with an error", status=response.status_code)
        return {"withheld": "details_unavailable"}

    async def close(self) -> None:
        await self.client.aclose()
