"""Login, logout, the caller's identity, API tokens and (admins) user management.

`install(app, store)` is what the composition root calls: it puts the store on `app.state.auth`,
includes both routers and registers the JSON error handlers. Every write is audited in the store
with the principal's username and the remote address.

Rules beyond the permission table (api/auth/model.py):
- API tokens are created only from a browser session (or the CLI): a leaked token cannot mint
  fresh tokens that would outlive its own revocation.
- An admin manages only users whose scope lies within the admin's own, and grants no wider scope
  (`scope_within`); an admin cannot change their own role, scope or disabled flag over the API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    AuthHTTPException,
    AuthStoreDep,
    PrincipalDep,
    forbidden,
    remote_address,
    require,
)
from api.auth.errors import (
    AccountLocked,
    AuthError,
    InvalidCredentials,
    InvalidUserData,
    LastAdmin,
    UnknownToken,
    UnknownUser,
    UserExists,
)
from api.auth.login_gate import LoginGate, TooManyLogins
from api.auth.model import Action, Principal, Role, Scope, User, allowed, scope_within
from api.auth.passwords import MAX_LENGTH as PASSWORD_MAX
from api.auth.store import ApiToken, AuthStore, SessionInfo

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/v1/users", tags=["users"])

#: store errors -> (HTTP status, error code)
ERROR_STATUS: dict[type[AuthError], tuple[int, str]] = {
    InvalidCredentials: (401, "invalid_credentials"),
    AccountLocked: (429, "locked"),
    TooManyLogins: (429, "too_many_logins"),
    UnknownUser: (404, "not_found"),
    UnknownToken: (404, "not_found"),
    UserExists: (409, "conflict"),
    LastAdmin: (409, "conflict"),
    InvalidUserData: (422, "invalid"),
}

Text64 = Annotated[str, Field(min_length=1, max_length=64)]


# ---- schemas


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    username: Text64
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class PasswordChange(_Strict):
    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class ScopeIn(_Strict):
    kind: Literal["all", "sites", "jurisdiction", "park"]
    sites: list[Text64] = Field(default_factory=list, max_length=1000)
    province: str | None = Field(None, min_length=1, max_length=64)
    city: str | None = Field(None, min_length=1, max_length=64)
    district: str | None = Field(None, min_length=1, max_length=64)
    park: str | None = Field(None, min_length=1, max_length=64)

    def to_scope(self) -> Scope:
        return Scope(
            self.kind,
            sites=frozenset(self.sites),
            city=self.city,
            district=self.district,
            province=self.province,
            park=self.park,
        )


class ScopePublic(BaseModel):
    kind: Literal["all", "sites", "jurisdiction", "park"]
    sites: list[str] = Field(default_factory=list)
    province: str | None = None
    city: str | None = None
    district: str | None = None
    park: str | None = None

    @classmethod
    def from_scope(cls, s: Scope) -> ScopePublic:
        return cls(
            kind=s.kind,
            sites=sorted(s.sites),
            province=s.province,
            city=s.city,
            district=s.district,
            park=s.park,
        )


class UserPublic(BaseModel):
    username: str
    display_name: str
    role: Role
    scope: ScopePublic
    disabled: bool

    @classmethod
    def from_user(cls, u: User) -> UserPublic:
        return cls(
            username=u.username,
            display_name=u.display_name,
            role=u.role,
            scope=ScopePublic.from_scope(u.scope),
            disabled=u.disabled,
        )


class UsersPublic(BaseModel):
    data: list[UserPublic]
    count: int


class LoginPublic(BaseModel):
    user: UserPublic
    csrf_token: str
    expires_at: datetime


class MePublic(BaseModel):
    user: UserPublic
    via: Literal["session", "token"]
    permissions: list[Action]


class TokenCreate(_Strict):
    name: Text64
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class TokenPublic(BaseModel):
    id: str
    name: str
    username: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_token(cls, t: ApiToken) -> TokenPublic:
        return cls(
            id=t.id,
            name=t.name,
            username=t.username,
            created_at=_dt(t.created_ms),
            expires_at=_dt(t.expires_ms),
            last_used_at=_dt(t.last_used_ms),
            revoked_at=_dt(t.revoked_ms),
        )


class TokenCreated(TokenPublic):
    token: str = Field(description="the secret; shown only in this answer")


class TokensPublic(BaseModel):
    data: list[TokenPublic]
    count: int


class UserCreate(_Strict):
    username: Text64
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    role: Role
    scope: ScopeIn
    display_name: str = Field("", max_length=100)


class UserUpdate(_Strict):
    role: Role | None = None
    scope: ScopeIn | None = None
    disabled: bool | None = None
    display_name: str | None = Field(None, max_length=100)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


# ---- login, logout, me


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int, http_only: bool):
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=http_only,
        secure=request.url.scheme == "https",
        samesite="strict",
    )


@router.post("/login", response_model=LoginPublic)
async def login(body: LoginRequest, request: Request, response: Response, store: AuthStoreDep) -> LoginPublic:
    """Log in with username and password; sets the session cookie and returns the CSRF token.

    The check runs behind the login gate (api/auth/login_gate.py): a rate limit per address and
    a password-hashing pool of its own, never the threads the other routes share."""
    remote = remote_address(request)
    gate: LoginGate = request.app.state.login_gate

    def check() -> tuple[User, SessionInfo]:
        user = store.authenticate(body.username, body.password, remote=remote)
        return user, store.create_session(user, remote=remote)

    user, session = await gate.run(remote, check)
    max_age = store.session_absolute_ms // 1000
    _set_cookie(request, response, SESSION_COOKIE, session.token, max_age, http_only=True)
    _set_cookie(request, response, CSRF_COOKIE, session.csrf, max_age, http_only=False)
    return LoginPublic(
        user=UserPublic.from_user(user), csrf_token=session.csrf, expires_at=_dt(session.expires_ms)
    )


@router.post("/password", status_code=204, response_class=Response)
async def change_own_password(
    body: PasswordChange, principal: PrincipalDep, request: Request, store: AuthStoreDep
) -> Response:
    """Change one's own password, proving the current one; every session of the user ends (log in
    again). The check runs behind the login gate, and a wrong current password counts towards the
    lockout like a failed login."""
    remote = remote_address(request)
    gate: LoginGate = request.app.state.login_gate

    def change() -> None:
        try:
            store.authenticate(principal.username, body.current_password, remote=remote)
        except InvalidCredentials:
            raise AuthHTTPException(403, "wrong_password", "the current password is not right") from None
        store.set_password(principal.username, body.new_password, actor=principal.username, remote=remote)

    await gate.run(remote, change)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/logout", status_code=204, response_class=Response)
def logout(principal: PrincipalDep, request: Request, store: AuthStoreDep) -> Response:
    """End the current browser session and clear its cookies."""
    if principal.via != "session":
        raise AuthHTTPException(
            400,
            "not_a_session",
            "logout ends a browser session; revoke a token with DELETE /api/v1/auth/tokens/{id}",
        )
    store.revoke_session(principal.credential_id, actor=principal.username, remote=remote_address(request))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/me", response_model=MePublic)
def me(principal: PrincipalDep) -> MePublic:
    """Who the caller is, how they authenticated and what their role allows."""
    return MePublic(
        user=UserPublic.from_user(principal.user),
        via=principal.via,
        permissions=[a for a in Action if allowed(principal.user.role, a)],
    )


# ---- API tokens (for oneself)


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(
    body: TokenCreate, principal: PrincipalDep, request: Request, store: AuthStoreDep
) -> TokenCreated:
    """Create an API token for yourself; the secret is in this answer only."""
    if principal.via != "session":
        raise forbidden("API tokens are created from a browser session or with `hazmon user token`")
    expires_ms = None
    if body.expires_in_days is not None:
        expires_ms = store.now_ms() + body.expires_in_days * 86_400_000
    token, secret = store.create_token(
        principal.username,
        body.name,
        expires_ms=expires_ms,
        actor=principal.username,
        remote=remote_address(request),
    )
    return TokenCreated(**TokenPublic.from_token(token).model_dump(), token=secret)


@router.get("/tokens", response_model=TokensPublic)
def list_tokens(principal: PrincipalDep, store: AuthStoreDep) -> TokensPublic:
    """List your API tokens (never their secrets)."""
    data = [TokenPublic.from_token(t) for t in store.list_tokens(principal.username)]
    return TokensPublic(data=data, count=len(data))


@router.delete("/tokens/{token_id}", status_code=204, response_class=Response)
def revoke_token(
    principal: PrincipalDep,
    request: Request,
    store: AuthStoreDep,
    token_id: str = Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$"),
) -> Response:
    """Revoke one of your API tokens."""
    store.revoke_token(
        token_id, actor=principal.username, owner=principal.username, remote=remote_address(request)
    )
    return Response(status_code=204)


# ---- user management (admins)

AdminDep = Annotated[Principal, Depends(require(Action.MANAGE_USERS))]


def _manageable(admin: Principal, user: User) -> bool:
    return scope_within(user.scope, admin.user.scope)


@users_router.get("", response_model=UsersPublic)
def list_users(admin: AdminDep, store: AuthStoreDep) -> UsersPublic:
    """List the users whose scope lies within yours."""
    data = [UserPublic.from_user(u) for u in store.list_users() if _manageable(admin, u)]
    return UsersPublic(data=data, count=len(data))


@users_router.post("", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, admin: AdminDep, request: Request, store: AuthStoreDep) -> UserPublic:
    """Create a user with a role and a scope no wider than yours."""
    scope = body.scope.to_scope()
    if not scope_within(scope, admin.user.scope):
        raise forbidden("you may not grant a scope wider than your own")
    user = store.create_user(
        body.username,
        body.password,
        body.role,
        scope,
        display_name=body.display_name,
        actor=admin.username,
        remote=remote_address(request),
    )
    return UserPublic.from_user(user)


@users_router.patch("/{username}", response_model=UserPublic)
def update_user(
    body: UserUpdate,
    admin: AdminDep,
    request: Request,
    store: AuthStoreDep,
    username: str = Path(min_length=1, max_length=64),
) -> UserPublic:
    """Change a user's role, scope, disabled flag or display name (their sessions end)."""
    target = store.get_user(username)
    if not _manageable(admin, target):
        raise UnknownUser(f"no user {username!r}")  # outside the admin's scope: not revealed
    rights_change = body.role is not None or body.scope is not None or body.disabled is not None
    if target.username == admin.username and rights_change:
        raise forbidden("you may not change your own role, scope or disabled flag")
    scope = body.scope.to_scope() if body.scope is not None else None
    if scope is not None and not scope_within(scope, admin.user.scope):
        raise forbidden("you may not grant a scope wider than your own")
    user = store.update_user(
        target.username,
        role=body.role,
        scope=scope,
        disabled=body.disabled,
        display_name=body.display_name,
        actor=admin.username,
        remote=remote_address(request),
    )
    return UserPublic.from_user(user)


# ---- wiring


async def auth_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Render an AuthHTTPException as `{"detail", "error"}`."""
    assert isinstance(exc, AuthHTTPException)
    return JSONResponse(
        {"detail": exc.detail, "error": exc.error}, status_code=exc.status_code, headers=exc.headers
    )


async def auth_store_error(request: Request, exc: Exception) -> JSONResponse:
    """Render a store AuthError with its status (see ERROR_STATUS)."""
    status, code = next((v for cls, v in ERROR_STATUS.items() if isinstance(exc, cls)), (400, "bad_request"))
    retry_after = isinstance(exc, (AccountLocked, TooManyLogins))
    headers = {"Retry-After": str(exc.retry_after_s)} if retry_after else None
    if isinstance(exc, InvalidCredentials):
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"detail": str(exc), "error": code}, status_code=status, headers=headers)


def install(app: FastAPI, store: AuthStore, gate: LoginGate | None = None) -> None:
    """Wire authentication into an app: the store on app.state.auth, the login gate on
    app.state.login_gate, the routers, the error handlers."""
    app.state.auth = store
    app.state.login_gate = gate or LoginGate()
    app.include_router(router)
    app.include_router(users_router)
    app.add_exception_handler(AuthHTTPException, auth_http_error)
    app.add_exception_handler(AuthError, auth_store_error)
