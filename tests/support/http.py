"""HTTP clients on a service's real ASGI app (its runtime started by the test), with tokens."""

from __future__ import annotations

import httpx

from shared.platform.auth import mint_token, signing_key
from shared.platform.runtime import build_app


def client_for(runtime) -> httpx.AsyncClient:
    app = build_app(runtime)  # the runtime is started by the test, not by the app's lifespan
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def token(settings, *, party: str | None, role: str, teams=(), user: str | None = None) -> dict:
    value = mint_token(
        signing_key(settings),
        user_id=user or f"{(party or 'staff').lower()}-{role}",
        party=party,
        role=role,
        teams=list(teams),
    )
    return {"Authorization": f"Bearer {value}"}
