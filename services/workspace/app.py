"""The workspace's web app: FastAPI serving server-rendered pages (Jinja2), htmx as progressive
enhancement (the pages work without JavaScript), a signed session cookie, the body limit, JSON
logs with correlation ids, and security headers. No runtime: it keeps no data, consumes no
events; every page asks the services as the signed-in person."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import structlog
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from shared.platform import tls
from shared.platform.limits import BoundedBody
from shared.platform.logging import bound_contextvars
from shared.platform.logging import configure as configure_logging

from .client import Services
from .oidc import Oidc
from .settings import WorkspaceSettings

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "trisam_workspace"
log = structlog.get_logger("workspace")

# No inline script or style, nothing from elsewhere; forms post only here; not framed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def build_app(
    settings: WorkspaceSettings, oidc: Oidc | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The app; ``oidc`` and ``transport`` (how the services are reached) for tests."""
    from . import routes  # the routes read the app's state

    services = Services(
        settings.service_urls(),
        timeout=settings.service_timeout_seconds,
        verify=tls.client_verify(settings),  # type: ignore[arg-type]
        transport=transport,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log.info("workspace ready", services=settings.service_urls())
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(title="Trisam workspace", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.services = services
    app.state.oidc = oidc or (Oidc(settings) if settings.oidc_configured else None)
    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    routes.add_exception_handlers(app)

    @app.middleware("http")
    async def logged_and_secured(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        correlation_id = (request.headers.get("x-correlation-id") or str(uuid.uuid4()))[:128]
        request.state.correlation_id = correlation_id
        started = time.monotonic()
        with bound_contextvars(correlation_id=correlation_id):
            response = await call_next(request)
            route = request.scope.get("route")
            log.info(  # the route's pattern, never the query or the form (they may hold personal data)
                "request",
                method=request.method,
                route=getattr(route, "path", "?"),
                status=response.status_code,
                ms=round((time.monotonic() - started) * 1000, 1),
            )
        response.headers.update(SECURITY_HEADERS)
        response.headers["X-Correlation-Id"] = correlation_id
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"  # pages may hold personal data
        return response

    # outermost first: the body limit before anything reads a body
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.workspace_session_key.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=settings.workspace_session_seconds,
        same_site="strict",
        https_only=not settings.dev,
    )
    app.add_middleware(BoundedBody, max_bytes=settings.http_max_body_bytes)
    return app


def serve() -> None:
    settings = WorkspaceSettings()
    configure_logging("workspace", settings.log_level)
    uvicorn.run(
        build_app(settings),
        host=settings.http_host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        **tls.server_options(settings),  # type: ignore[arg-type]
    )
