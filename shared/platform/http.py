"""What the services' HTTP APIs share: the text rule, error bodies, and a unit of work per
request (its events carry the correlation id of the ``X-Correlation-Id`` header, or a new one)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import Request
from pydantic import BaseModel

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


def runtime_of(request: Request) -> Any:
    """The running service (``shared.platform.runtime.Runtime``) behind a request."""
    return request.app.state.runtime


def units_of_work(request: Request) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """FastAPI dependency: opens the service's unit of work for this request, its events
    carrying the request's correlation id. The route commits before it answers:

        async with new_uow() as uow:
            result = await use_case(uow, ...)

    (a dependency with ``yield`` would commit only after the response was built)."""
    return functools.partial(runtime_of(request).unit_of_work, correlation_id(request))
