"""The other services' HTTP APIs, called with the signed-in person's own bearer token: each
service decides what the person may see or do, and logs the reads of personal data under the
person's name. Nothing fetched is kept here; the correlation id goes along.

Every call gives an ``Answer``: its status and body, or 503 ``service_unavailable`` when the
service does not answer (the page says so; nothing is retried behind the person's back)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

log = structlog.get_logger("workspace.client")


@dataclass(frozen=True)
class Reason:
    """Why a service refused: its code, the field, and its texts (Swedish, English) if it gave them."""

    code: str
    field: str | None = None
    message_sv: str | None = None
    message_en: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None
    reasons: list[Reason] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def reasons_of(status: int, body: Any) -> list[Reason]:
    """The refusal's reasons, from either shape the services answer with: ``{"reasons": [...]}``
    (rules, with texts) or ``{"detail": {"code", "message"}}`` (auth, state, not found)."""
    if 200 <= status < 300 or not isinstance(body, dict):
        return [] if 200 <= status < 300 else [Reason(code=f"http_{status}")]
    if isinstance(body.get("reasons"), list):
        return [
            Reason(
                code=str(r.get("code")),
                field=r.get("field"),
                message_sv=r.get("message_sv"),
                message_en=r.get("message_en"),
            )
            for r in body["reasons"]
            if isinstance(r, dict)
        ]
    detail = body.get("detail")
    if isinstance(detail, dict):
        return [Reason(code=str(detail.get("code")), message=detail.get("message"))]
    return [Reason(code=f"http_{status}")]


class Services:
    """One HTTP client per service (connection reuse), shared by every request."""

    def __init__(
        self,
        urls: dict[str, str],
        *,
        timeout: float,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: how to reach the services (tests: fakes in process)."""
        self.clients = {
            name: httpx.AsyncClient(base_url=url, timeout=timeout, verify=verify, transport=transport)
            for name, url in urls.items()
        }

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str,
        correlation_id: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}", "X-Correlation-Id": correlation_id}
        try:
            response = await self.clients[service].request(method, path, params=params, json=json, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("service unreachable", service=service, error=type(exc).__name__)
            return Answer(503, None, [Reason(code="service_unavailable", message=service)])
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 500:
            log.warning("service answered with an error", service=service, status=response.status_code)
        return Answer(response.status_code, body, reasons_of(response.status_code, body))


class Api:
    """The calls the workspace makes, as the signed-in person (``token``)."""

    def __init__(self, services: Services, token: str, correlation_id: str) -> None:
        self.services, self.token, self.correlation_id = services, token, correlation_id

    async def _call(self, service: str, method: str, path: str, **kwargs: Any) -> Answer:
        return await self.services.call(
            service, method, path, token=self.token, correlation_id=self.correlation_id, **kwargs
        )

    # ------------------------------------------------------------------ referral

    async def submit_referral(self, body: dict[str, Any]) -> Answer:
        return await self._call("referral", "POST", "/api/v1/referrals", json=body)

    async def party_referrals(self) -> Answer:
        return await self._call("referral", "GET", "/api/v1/referrals")

    async def case_details(self, case_ref: str, purpose: str) -> Answer:
        return await self._call("referral", "GET", f"/api/v1/cases/{case_ref}", params={"purpose": purpose})

    async def consents(self, case_ref: str) -> Answer:
        return await self._call("referral", "GET", f"/api/v1/cases/{case_ref}/consents")

    async def record_consent(self, case_ref: str, body: dict[str, Any]) -> Answer:
        return await self._call("referral", "POST", f"/api/v1/cases/{case_ref}/consents", json=body)

    async def withdraw_consent(self, case_ref: str, party: str, body: dict[str, Any]) -> Answer:
        return await self._call("referral", "POST", f"/api/v1/cases/{case_ref}/consents/{party}/withdrawal", json=body)

    async def access_log(self, case_ref: str) -> Answer:
        return await self._call("referral", "GET", f"/api/v1/cases/{case_ref}/access-log")

    # ------------------------------------------------------------------ meeting

    async def teams(self) -> Answer:
        return await self._call("meeting", "GET", "/api/v1/teams")

    async def team_meetings(self, team_id: str, weeks: int = 12) -> Answer:
        return await self._call("meeting", "GET", f"/api/v1/teams/{team_id}/meetings", params={"weeks": weeks})

    async def queue(self, team_id: str) -> Answer:
        return await self._call("meeting", "GET", f"/api/v1/teams/{team_id}/queue")

    async def meeting(self, meeting_id: str) -> Answer:
        return await self._call("meeting", "GET", f"/api/v1/meetings/{meeting_id}")

    async def case_schedule(self, case_ref: str) -> Answer:
        return await self._call("meeting", "GET", f"/api/v1/cases/{case_ref}/schedule")

    async def cancel_meeting(self, meeting_id: str, body: dict[str, Any]) -> Answer:
        return await self._call("meeting", "POST", f"/api/v1/meetings/{meeting_id}/cancellation", json=body)

    async def record_pre_meeting(self, meeting_id: str, body: dict[str, Any]) -> Answer:
        return await self._call("meeting", "POST", f"/api/v1/meetings/{meeting_id}/pre-meeting", json=body)

    async def record_consultation(self, meeting_id: str, case_ref: str, body: dict[str, Any]) -> Answer:
        path = f"/api/v1/meetings/{meeting_id}/cases/{case_ref}/consultation"
        return await self._call("meeting", "POST", path, json=body)

    # ------------------------------------------------------------------ follow-up

    async def party_followups(self, state: str = "open") -> Answer:
        return await self._call("followup", "GET", "/api/v1/followups", params={"state": state})

    async def team_followups(self, team_id: str, state: str) -> Answer:
        return await self._call("followup", "GET", f"/api/v1/teams/{team_id}/followups", params={"state": state})

    async def followup(self, followup_id: str) -> Answer:
        return await self._call("followup", "GET", f"/api/v1/followups/{followup_id}")

    async def record_followup(self, followup_id: str, body: dict[str, Any]) -> Answer:
        return await self._call("followup", "POST", f"/api/v1/followups/{followup_id}/records", json=body)

    # ------------------------------------------------------------------ metrics

    async def figure_reads(self) -> Answer:
        return await self._call("metrics", "GET", "/api/v1/access-log", params={"limit": 200})
