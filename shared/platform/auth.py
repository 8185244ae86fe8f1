"""Bearer-token authentication and role checks for the services' HTTP APIs.

A token is a JWT with an asymmetric signature (EdDSA, or RS256 from an identity provider) and a
``kid`` header naming the key that verifies it, one of the public keys the service holds
(``shared.platform.keys``: a JWKS from ``TRISAM_JWKS_FILE`` or ``TRISAM_JWKS_URL``). The algorithm
is the key's own: a token whose ``alg`` is another (HS256, none) is refused. Claims:

- ``sub``: the user's id (string)
- ``party``: the user's agency, one of AF, FK, KOMMUN, REGION (``shared.contracts.vocabulary.Party``);
  absent for the board and the analysts (the coordination association's own staff)
- ``role``: what the user may do, a ``Role``:
  ``officer`` (handläggare: submits referrals, records consent), ``member`` (team member),
  ``coordinator`` (rehab coordinator of a team), ``admin`` (manages teams),
  ``auditor`` (may read access logs), ``board`` and ``analyst`` (read the exact figures of the
  whole county; only the metrics service accepts them)
- ``teams``: ids of the teams the user works in, the user's team scope (may be empty)
- ``iss`` (always ``trisam``), ``aud`` (the services it is for), ``iat``, ``exp`` (at most
  ``MAX_LIFETIME_SECONDS`` after ``iat``; ``LEEWAY_SECONDS`` of clock skew are tolerated)

All are required. A verified token becomes a ``Principal``. Routes take it from the dependency
that ``authenticate(settings)`` returns and check roles with ``require_roles``; team scope is
checked by the route itself with ``Principal.in_team``. Error messages never contain the token.

Tokens come from the organisation's identity provider. Development tokens, signed with the
development key (``signing_key``): ``python -m shared.platform.auth mint --sub U --party AF --role officer --team T``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.contracts.vocabulary import Party
from shared.platform.config import Settings
from shared.platform.keys import ALGORITHMS, SIGNING_ALGORITHM, KeySet, KeySource, KeysUnavailable, load_signing_key

log = logging.getLogger(__name__)

ISSUER = "trisam"
# The services a token may be presented to (its ``aud`` claim); each service accepts only tokens
# that name it. A token for every service is the default of ``mint_token``.
AUDIENCES = ("referral", "meeting", "followup", "metrics")
LEEWAY_SECONDS = 30  # tolerated clock skew between the minting and the verifying host
# The longest a token may live (exp - iat): a working day. A longer one is refused even with a
# good signature, so that a token that leaks is not good for ever.
MAX_LIFETIME_SECONDS = 12 * 3600


class Role(StrEnum):
    OFFICER = "officer"  # handläggare: submits referrals, records consent
    MEMBER = "member"  # team member
    COORDINATOR = "coordinator"  # rehab coordinator of a team
    ADMIN = "admin"  # manages teams
    AUDITOR = "auditor"  # may read access logs
    BOARD = "board"  # the association's board: exact figures of the whole county
    ANALYST = "analyst"  # the association's analysts: exact figures of the whole county, export


# Roles that need no party (the coordination association's own staff), and that only the
# metrics service accepts.
PARTYLESS_ROLES = frozenset({Role.BOARD, Role.ANALYST})
CASE_ROLES = frozenset(Role) - PARTYLESS_ROLES
# The cookie a browser may carry the token in (the metrics dashboard and report pages).
SESSION_COOKIE = "trisam_session"
BEARER_DESCRIPTION = "JWT signed by the identity provider (EdDSA or RS256, with a kid); see shared/platform/auth.py"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    party: Party | None  # None only for PARTYLESS_ROLES
    role: Role
    teams: frozenset[str]

    def in_team(self, team_id: str) -> bool:
        return team_id in self.teams


class AuthError(Exception):
    """A token was missing or not acceptable. ``code`` is one of ``token_missing``,
    ``token_invalid``, ``key_unknown``, ``token_expired``, ``claims_invalid``, ``wrong_audience``,
    ``token_lifetime_too_long``; ``keys_unavailable`` when the key set cannot be read."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def signing_key(settings: Settings) -> jwt.PyJWK:
    """The private key that mints development tokens: ``TRISAM_SIGNING_KEY_FILE`` or the
    development key. Refused outside development: there the identity provider mints them."""
    if settings.env != "dev":
        raise RuntimeError(f"tokens are minted by the identity provider when TRISAM_ENV={settings.env}")
    return load_signing_key(settings.signing_key_file)


def mint_token(
    key: jwt.PyJWK,
    *,
    user_id: str,
    party: Party | str | None,
    role: Role | str,
    teams: Iterable[str] = (),
    ttl_seconds: int = 3600,
    now: float | None = None,
    audience: Iterable[str] = AUDIENCES,
) -> str:
    """A token signed with ``key`` (a private key with its kid, see ``signing_key``) for the
    services in ``audience``; ``now`` (Unix seconds) defaults to the current time."""
    team_list = list(teams)
    if not user_id:
        raise ValueError("user_id must not be empty")
    if not all(isinstance(t, str) and t for t in team_list):
        raise ValueError("teams must be non-empty strings")
    if not 0 < ttl_seconds <= MAX_LIFETIME_SECONDS:
        raise ValueError(f"ttl_seconds must be between 1 and {MAX_LIFETIME_SECONDS}")
    issued = int(time.time() if now is None else now)
    if party is None and Role(role) not in PARTYLESS_ROLES:
        raise ValueError(f"role {role} needs a party")
    claims = {
        "sub": user_id,
        "party": Party(party).value if party else None,
        "role": Role(role).value,
        "teams": team_list,
        "iss": ISSUER,
        "aud": list(audience),
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(claims, key.key, algorithm=SIGNING_ALGORITHM, headers={"kid": key.key_id})


def signed_with(token: str) -> str:
    """The kid of the key a token names in its header (not verified), or AuthError."""
    if not token:
        raise AuthError("token_missing", "no bearer token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise AuthError("token_invalid", "the token is malformed or its signature does not verify") from None
    if header.get("alg") not in ALGORITHMS:
        raise AuthError("token_invalid", f"algorithm {header.get('alg')!r} is not accepted ({', '.join(ALGORITHMS)})")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthError("key_unknown", "the token names no key (kid)")
    return kid


def verify_token(keys: KeySet, token: str, audience: str | None = None) -> Principal:
    """The token's Principal, or AuthError. ``keys``: the public keys that may have signed it.
    ``audience``: the service it is presented to, which its ``aud`` claim must name (None: not
    checked, for tools)."""
    return verify_with(keys.get(signed_with(token)), token, audience)


def verify_with(key: jwt.PyJWK | None, token: str, audience: str | None = None) -> Principal:
    """``verify_token`` with the key the token names (None: not in the key set)."""
    if key is None:
        raise AuthError("key_unknown", "the token is signed with a key that is not in the key set")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],  # the key's own: never HS256 or none
            issuer=ISSUER,
            audience=audience,
            leeway=LEEWAY_SECONDS,
            options={
                "require": ["exp", "iat", "iss", "sub", *(["aud"] if audience else [])],
                "verify_aud": audience is not None,
            },
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token_expired", "the token has expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError("wrong_audience", f"the token is not for the {audience} service") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError("claims_invalid", f"claim {exc.claim!r} is missing") from None
    except (jwt.DecodeError, jwt.InvalidAlgorithmError):  # DecodeError: also bad signatures
        raise AuthError("token_invalid", "the token is malformed or its signature does not verify") from None
    except jwt.InvalidTokenError:  # signature good, but iss, sub, iat, nbf, aud or jti is not
        raise AuthError("claims_invalid", "a registered claim (iss, sub, iat, nbf, aud, jti) is invalid") from None
    if not isinstance(claims["iat"], int | float) or claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
        raise AuthError("token_lifetime_too_long", f"a token may live at most {MAX_LIFETIME_SECONDS // 3600} hours")
    return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    sub, teams = claims["sub"], claims.get("teams")
    if not sub:
        raise AuthError("claims_invalid", "claim 'sub' is empty")
    try:
        role = Role(claims.get("role", ""))  # missing: a ValueError, as for an unknown role
    except ValueError:
        raise AuthError("claims_invalid", "claim 'role' is not one of " + ", ".join(Role)) from None
    party: Party | None = None
    if role not in PARTYLESS_ROLES or claims.get("party") is not None:
        try:
            party = Party(claims.get("party", ""))
        except ValueError:
            raise AuthError("claims_invalid", "claim 'party' is not one of " + ", ".join(Party)) from None
    if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
        raise AuthError("claims_invalid", "claim 'teams' must be a list of strings")
    return Principal(user_id=sub, party=party, role=role, teams=frozenset(teams))


def authenticate(
    settings: Settings, *, accept: frozenset[Role] = CASE_ROLES, optional: bool = False, cookie: bool = False
) -> Callable[..., Awaitable[Principal | None]]:
    """A FastAPI dependency giving the caller's Principal, or answering 401 (no or a bad
    token) or 403 (a role this service does not serve: ``accept``).

    ``optional``: no token gives None instead of 401 (a page that shows the public figures
    to anyone). ``cookie``: a browser may send the token in the ``SESSION_COOKIE`` cookie.
    Use as ``principal: Principal = Depends(authenticate(settings))``.
    """
    own_keys = KeySource.of(settings)  # for an app without a runtime (the runtime holds its own)
    bearer = HTTPBearer(auto_error=False, bearerFormat="JWT", description=BEARER_DESCRIPTION)

    async def principal(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
    ) -> Principal | None:
        token = credentials.credentials if credentials else ""
        from_cookie = not token and cookie
        if from_cookie:
            token = request.cookies.get(SESSION_COOKIE, "")
        if not token and optional:
            return None
        runtime = getattr(request.app.state, "runtime", None)
        keys: KeySource = runtime.keys if runtime else own_keys
        try:
            found = verify_with(await keys.key(signed_with(token)), token, runtime.spec.name if runtime else None)
        except KeysUnavailable as exc:
            log.error("bearer token not checked: %s", exc)
            raise HTTPException(
                503, detail={"code": "keys_unavailable", "message": "the keys that verify tokens cannot be read"}
            ) from None
        except AuthError as exc:
            if from_cookie and optional:
                return None  # an expired session: the page as for anyone
            raise HTTPException(
                401, detail={"code": exc.code, "message": exc.message}, headers={"WWW-Authenticate": "Bearer"}
            ) from None
        if found.role not in accept:
            raise HTTPException(
                403, detail={"code": "role_not_allowed", "message": f"role {found.role} is not served here"}
            )
        return found

    return principal


# The bearer scheme, declared once for the OpenAPI documents of the routes that use ``caller``.
BEARER = HTTPBearer(auto_error=False, bearerFormat="JWT", description=BEARER_DESCRIPTION)


async def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
) -> Principal:
    """FastAPI dependency for a case route: the signed-in caller, checked with the running
    service's settings (routers are module-level, built before any runtime): 401 without a
    valid token, 403 for a role no case route serves. Use as ``who: Caller``."""
    principal = await authenticate(request.app.state.runtime.settings)(request, credentials)
    assert principal is not None  # not optional: no token is answered 401
    return principal


Caller = Annotated[Principal, Depends(caller)]


def require_roles(principal: Principal, *roles: Role) -> None:
    """403 unless the principal has one of ``roles``."""
    if principal.role not in roles:
        allowed = ", ".join(roles) or "none"
        raise HTTPException(
            403,
            detail={
                "code": "role_not_allowed",
                "message": f"role {principal.role} may not do this (allowed: {allowed})",
            },
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.platform.auth",
        description="Trisam development bearer tokens (key: TRISAM_SIGNING_KEY_FILE, else the development key)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", help="print a signed token")
    mint.add_argument("--sub", required=True, help="user id")
    mint.add_argument("--party", choices=[p.value for p in Party], help="the user's agency (not for board and analyst)")
    mint.add_argument("--role", required=True, choices=[r.value for r in Role])
    mint.add_argument("--team", action="append", default=[], dest="teams", help="team id; repeat for several")
    mint.add_argument("--ttl", type=int, default=3600, help=f"lifetime in seconds (at most {MAX_LIFETIME_SECONDS})")
    args = parser.parse_args(argv)
    if not 0 < args.ttl <= MAX_LIFETIME_SECONDS:
        parser.error(f"--ttl must be between 1 and {MAX_LIFETIME_SECONDS}")
    settings = Settings()
    if settings.env != "dev":  # in production the identity provider issues tokens, not this command
        parser.error(f"minting tokens is for development only (TRISAM_ENV={settings.env})")
    key = signing_key(settings)
    print(mint_token(key, user_id=args.sub, party=args.party, role=args.role, teams=args.teams, ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
