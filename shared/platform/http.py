"""What the services' HTTP APIs share: the text rule, error bodies, and an outbox emitter per
request (its correlation id from the ``X-Correlation-Id`` header, or a new one)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from pydantic import BaseModel

from shared.platform.outbox import Emitter

# Text from outside holds no control characters but line breaks and tabs (the commands' rule;
# and PostgreSQL cannot store NUL): refused with 422, never a failure in the database (500).
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """401 (no valid token), 403 (role, team or consent), 404 (not found), 409 (state)."""
    detail: ErrorDetail


# The error answers the routes give, for the OpenAPI document (what clients may expect).
UNAUTHENTICATED = {401: {"model": ErrorBody, "description": "No valid bearer token"}}
FORBIDDEN = {403: {"model": ErrorBody, "description": "Your role or team may not do this"}}


def correlation_id(request: Request) -> str:
    return (request.headers.get("x-correlation-id") or str(uuid.uuid4()))[:128]


def request_emitter(conn, request: Request, producer: str) -> Emitter:
    """Emits the events of one HTTP request, in its transaction."""
    return Emitter(conn, producer, correlation_id(request))


def runtime_of(request: Request) -> Any:
    """The running service (``shared.platform.runtime.Runtime``) behind a request."""
    return request.app.state.runtime


async def unit_of_work(request: Request) -> AsyncIterator[Any]:
    """FastAPI dependency: the service's unit of work for one request, committed when the route
    returns without an error (rolled back otherwise); its events carry the request's
    correlation id. Use as ``uow: Annotated[ReferralUnitOfWork, Depends(unit_of_work)]``."""
    async with runtime_of(request).unit_of_work(correlation_id(request)) as uow:
        yield uow
