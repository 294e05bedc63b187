"""FastAPI dependencies that authenticate the caller and check role and scope.

The AuthStore is found on `request.app.state.auth`; the composition root sets it (see
`api.auth.router.install`). Without it every protected route answers 503, never anonymously.

How a caller authenticates:
- machines: `Authorization: Bearer hzm_...` (an API token). No CSRF check: a browser never sends
  this header on its own, so a forged cross-site request cannot carry it.
- browsers: the `hazmon_session` cookie (HttpOnly, SameSite=Strict, Secure over https), set by
  POST /api/v1/auth/login. For unsafe methods (POST, PUT, PATCH, DELETE) the request must also
  carry `X-CSRF-Token` equal to the session's CSRF value (double submit: login returns it in the
  JSON body and in the readable `hazmon_csrf` cookie). SameSite=Strict already stops most
  cross-site requests; the header is the second line for older browsers and same-site subdomains.
An Authorization header, when present, decides alone: a bad token is 401 even with a good cookie.

Answers (JSON, `{"detail": <message>, "error": <code>}`):
401 unauthenticated (with `WWW-Authenticate: Bearer`), 403 csrf_failed, 403 forbidden (role),
404 not_found for a site outside the caller's scope (its existence is not revealed).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from api.auth.model import Action, Principal, SiteLike, can_see
from api.auth.store import AuthStore

SESSION_COOKIE = "hazmon_session"
CSRF_COOKIE = "hazmon_csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuthHTTPException(HTTPException):
    """An HTTPException with a machine-readable `error` code; rendered by `auth_http_error` as
    `{"detail", "error"}` (without that handler FastAPI still answers `{"detail"}` with the same status)."""

    def __init__(self, status_code: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.error = error


def unauthenticated(detail: str = "authentication required") -> AuthHTTPException:
    return AuthHTTPException(401, "unauthenticated", detail, {"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> AuthHTTPException:
    return AuthHTTPException(403, "forbidden", detail)


def not_found(detail: str = "not found") -> AuthHTTPException:
    return AuthHTTPException(404, "not_found", detail)


def get_auth_store(request: Request) -> AuthStore:
    store = getattr(request.app.state, "auth", None)
    if store is None:
        raise AuthHTTPException(503, "auth_unavailable", "authentication is not configured")
    return store


AuthStoreDep = Annotated[AuthStore, Depends(get_auth_store)]


def remote_address(request: Request) -> str:
    return request.client.host if request.client else ""


def current_principal(request: Request, store: AuthStoreDep) -> Principal:
    """The authenticated caller, from a bearer token or the session cookie (with CSRF on writes)."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise unauthenticated("Authorization must be 'Bearer <token>'")
        principal = store.resolve_token(secret.strip())
        if principal is None:
            raise unauthenticated("invalid, expired or revoked token")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise unauthenticated()
    principal = store.resolve_session(cookie)
    if principal is None:
        raise unauthenticated("session expired or ended; log in again")
    if request.method in UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not (sent and principal.csrf and secrets.compare_digest(sent.encode(), principal.csrf.encode())):
            raise AuthHTTPException(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(action: Action | str) -> Callable[..., Principal]:
    """A dependency that returns the caller if their role allows `action`, else answers 403."""
    action = Action(action)

    def dependency(principal: PrincipalDep) -> Principal:
        if not principal.user.may(action):
            raise forbidden(f"role {principal.user.role.value} may not {action.value.replace('_', ' ')}")
        return principal

    dependency.__name__ = f"require_{action.value}"
    return dependency


def check_site(principal: Principal, site: SiteLike | None) -> None:
    """Answer 404 unless the site exists and lies in the caller's scope (existence is not revealed)."""
    if site is None or not can_see(principal.user, site):
        raise not_found("no such site")


def find_site(principal: Principal, sites: Iterable[Any], site_id: str) -> Any:
    """The site with this id if the caller may see it; 404 otherwise."""
    site = next((s for s in sites if s.id == site_id), None)
    check_site(principal, site)
    return site


def audit(
    request: Request,
    principal: Principal,
    action: str,
    *,
    target: str = "",
    detail: str = "",
    outcome: str = "ok",
) -> None:
    """Record a write done by a protected route in the auth audit log (who, what, from where)."""
    get_auth_store(request).record(
        principal.username, action, outcome, target=target, detail=detail, remote=remote_address(request)
    )
