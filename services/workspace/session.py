"""Who is signed in: the session (a signed, HttpOnly, SameSite=strict cookie; Secure outside
development) holds the person's bearer token, who they are (user, role, party, teams, from
the identity provider's claims), when it ends, the form token (CSRF) and the language.

Sign-in: OpenID Connect (authorization code with PKCE, authlib) against the organisation's
identity provider; in development only, a development sign-in that mints a token with the
development key for a chosen role, party and team."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData

from shared.contracts.vocabulary import Party
from shared.platform.auth import MAX_LIFETIME_SECONDS, mint_token
from shared.platform.keys import load_signing_key

from .settings import WorkspaceSettings

# The roles the workspace has pages for; a token of another role is not signed in here.
ROLES = ("officer", "member", "coordinator", "auditor")
TEAM_ROLES = ("member", "coordinator")


class SignInRefused(Exception):
    """A sign-in that cannot be accepted; ``code`` is a catalogue key (i18n)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Person:
    user_id: str
    role: str
    party: str | None
    teams: tuple[str, ...]
    token: str
    expires_at: float

    @property
    def team(self) -> str | None:
        """The team the pages are about (the first of the person's teams)."""
        return self.teams[0] if self.teams else None


def person_from_claims(claims: dict[str, Any], token: str, expires_at: float, settings: WorkspaceSettings) -> Person:
    """The person from the identity provider's claims, named by the settings (which claim holds
    the role, the party, the teams); SignInRefused if they are not a workspace role."""
    user = claims.get(settings.oidc_user_claim)
    role = claims.get(settings.oidc_role_claim)
    party = claims.get(settings.oidc_party_claim)
    teams = claims.get(settings.oidc_teams_claim) or []
    if isinstance(teams, str):
        teams = teams.split()
    if not isinstance(user, str) or not user:
        raise SignInRefused("session_expired")
    if role not in ROLES:
        raise SignInRefused("role_not_allowed")
    if party not in {p.value for p in Party}:
        raise SignInRefused("party_missing")
    if not isinstance(teams, list) or not all(isinstance(t, str) and t for t in teams):
        raise SignInRefused("team_missing")
    if role in TEAM_ROLES and not teams:
        raise SignInRefused("team_missing")
    return Person(user, role, party, tuple(teams), token, expires_at)


def dev_person(settings: WorkspaceSettings, *, user_id: str, role: str, party: str, team: str | None) -> Person:
    """Development only: a token minted with the development key for the chosen role, party
    and team (what the identity provider would issue)."""
    if not settings.dev:
        raise SignInRefused("dev_only")
    if role in TEAM_ROLES and not team:
        raise SignInRefused("team_missing")
    ttl = min(settings.workspace_session_seconds, MAX_LIFETIME_SECONDS)
    teams = [team] if team else []
    key = load_signing_key(settings.signing_key_file)
    token = mint_token(key, user_id=user_id, party=party, role=role, teams=teams, ttl_seconds=ttl)
    return Person(user_id, role, party, tuple(teams), token, time.time() + ttl)


# --------------------------------------------------------------------------- the session cookie


def start(request: Request, person: Person) -> None:
    """A new session for the person: the old one (and its form token) is dropped first."""
    lang = request.session.get("lang")
    request.session.clear()
    request.session.update(
        {
            "person": {
                "user_id": person.user_id,
                "role": person.role,
                "party": person.party,
                "teams": list(person.teams),
                "token": person.token,
                "expires_at": person.expires_at,
            },
            "csrf": secrets.token_urlsafe(32),
            **({"lang": lang} if lang else {}),
        }
    )


def end(request: Request) -> None:
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang


def signed_in(request: Request) -> Person | None:
    """The person of this session, or None (none, or it has expired)."""
    found = request.session.get("person")
    if not isinstance(found, dict):
        return None
    if float(found.get("expires_at", 0)) <= time.time():
        return None
    return Person(
        found["user_id"], found["role"], found.get("party"), tuple(found.get("teams", ())), found["token"],
        float(found["expires_at"]),
    )  # fmt: skip


def lang_of(request: Request) -> str:
    return "en" if request.session.get("lang") == "en" else "sv"


def csrf_token(request: Request) -> str:
    """The session's form token (made on first use: the sign-in form has one too)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, form: FormData) -> bool:
    sent, kept = form.get("csrf"), request.session.get("csrf")
    return isinstance(sent, str) and isinstance(kept, str) and secrets.compare_digest(sent, kept)


def local_path(target: str | None) -> str:
    """Where to go back to: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
