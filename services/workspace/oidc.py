"""OpenID Connect sign-in against the organisation's identity provider (authlib): the
authorization-code flow with PKCE (S256), state and nonce kept in the session; the ID token is
verified against the provider's JWKS (its signature, issuer, audience, nonce, expiry). Its claims
say who signed in; the access token is what the workspace passes on to the services."""

from __future__ import annotations

import time
import warnings
from typing import Any

import authlib.deprecate  # noqa: F401  (first: it sets its warnings filter on import)
import httpx

with warnings.catch_warnings():  # authlib 1.9 prefers the httpx2 package; httpx (pinned here) still works
    warnings.simplefilter("ignore")
    from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import Request
from starlette.responses import Response

from .session import Person, SignInRefused, person_from_claims
from .settings import WorkspaceSettings


class Oidc:
    def __init__(self, settings: WorkspaceSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """``transport``: how to reach the provider (tests: an in-process provider)."""
        assert settings.oidc_issuer and settings.oidc_client_id
        self.settings = settings
        client_kwargs: dict[str, Any] = {"scope": settings.oidc_scope, "code_challenge_method": "S256"}
        if transport is not None:
            client_kwargs["transport"] = transport
        self.oauth = OAuth()
        self.oauth.register(
            "idp",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None,
            server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
        )

    def redirect_url(self, request: Request) -> str:
        return self.settings.oidc_redirect_url or str(request.url_for("oidc_callback"))

    async def begin(self, request: Request) -> Response:
        """Off to the provider's sign-in page (state, nonce and the PKCE verifier in the session)."""
        response: Response = await self.oauth.idp.authorize_redirect(request, self.redirect_url(request))
        return response

    async def finish(self, request: Request) -> Person:
        """The provider sent the person back with a code: exchange it (with the PKCE verifier),
        verify the ID token, and make the person from its claims. SignInRefused otherwise."""
        try:
            token = await self.oauth.idp.authorize_access_token(request)
        except (OAuthError, httpx.HTTPError, ValueError, KeyError):
            raise SignInRefused("session_expired") from None
        claims = token.get("userinfo") or {}
        access = token.get("access_token")
        if not access:
            raise SignInRefused("session_expired")
        expires_at = float(token.get("expires_at") or time.time() + self.settings.workspace_session_seconds)
        expires_at = min(expires_at, time.time() + self.settings.workspace_session_seconds)
        return person_from_claims(dict(claims), access, expires_at, self.settings)
