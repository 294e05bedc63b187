"""The auth router and dependencies on a tiny app (no servers): cookies, CSRF, tokens, roles, scopes."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from api.auth.deps import CSRF_HEADER, audit, find_site, require
from api.auth.login_gate import LoginGate
from api.auth.model import Action, Principal, Role, Scope
from api.auth.router import install
from api.auth.store import AuthStore
from tests.support.auth_copies import AuthUser, auth_store_copy

PW = "correct horse battery"


@dataclass(frozen=True)
class FakeSite:
    id: str
    city: str | None
    district: str | None


SITES = (
    FakeSite("jh-1", "江门市", "江海区"),
    FakeSite("pj-1", "江门市", "蓬江区"),
    FakeSite("gl-1", "珠海市", "金湾区"),
)


ViewerDep = Annotated[Principal, Depends(require(Action.VIEW))]
AckDep = Annotated[Principal, Depends(require(Action.ACKNOWLEDGE))]


@functools.cache
def _app() -> FastAPI:
    """One app for the module: FastAPI builds a route's validators on its first request, which costs
    more than most tests here; each test puts its own store on app.state (see build_app)."""
    app = FastAPI()
    install(app, None)

    @app.get("/api/v1/sites/{site_id}")
    def get_site(site_id: str, principal: ViewerDep) -> dict:
        return {"site": find_site(principal, SITES, site_id).id, "user": principal.username}

    @app.post("/api/v1/sites/{site_id}/ack")
    def ack(site_id: str, principal: AckDep, request: Request) -> dict:
        site = find_site(principal, SITES, site_id)
        audit(request, principal, "acknowledge", target=site.id)
        return {"acknowledged": site.id, "by": principal.username}

    return app


def build_app(store: AuthStore) -> FastAPI:
    """The auth router and two scoped routes over ``store``, as api.auth.router.install wires them."""
    app = _app()
    app.state.auth = store
    app.state.login_gate.close()
    app.state.login_gate = LoginGate(refusal_delay_s=0)  # its own per-address login budget, no tarpit
    return app


#: made once, copied for each test (tests/support/auth_copies.py)
USERS = (
    AuthUser("root", PW, Role.ADMIN, Scope.everything()),
    AuthUser("op", PW, Role.OPERATOR, Scope.jurisdiction("江门市", "江海区")),
    AuthUser("viewer", PW, Role.VIEWER, Scope.jurisdiction("江门市")),
)


@pytest.fixture
def store(tmp_path):
    s, _ = auth_store_copy(tmp_path, USERS)
    yield s
    s.close()


@pytest.fixture
def client(store):
    with TestClient(build_app(store)) as c:
        yield c


def login(client: TestClient, username: str) -> str:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PW})
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


def bearer(store: AuthStore, username: str) -> dict[str, str]:
    _, secret = store.create_token(username, "test", actor="test")
    return {"Authorization": f"Bearer {secret}"}


# ---- anonymous


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/sites/jh-1"),
        ("POST", "/api/v1/sites/jh-1/ack"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/tokens"),
        ("POST", "/api/v1/auth/tokens"),
        ("DELETE", "/api/v1/auth/tokens/abc"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("PATCH", "/api/v1/users/op"),
    ],
)
def test_anonymous_gets_401_json(client: TestClient, method: str, path: str):
    r = client.request(method, path, json={})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthenticated" and r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Basic cm9vdDpw", "Bearer", "Bearer hzm_forged", "Token x"])
def test_bad_authorization_header_is_401(client: TestClient, header: str):
    r = client.get("/api/v1/sites/jh-1", headers={"Authorization": header})
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"


def test_bad_authorization_wins_over_a_good_cookie(client: TestClient):
    login(client, "op")
    r = client.get("/api/v1/sites/jh-1", headers={"Authorization": "Bearer hzm_forged"})
    assert r.status_code == 401


def test_no_store_is_503_not_anonymous():
    app = FastAPI()

    @app.get("/x")
    def x(principal: ViewerDep) -> dict:
        return {}

    r = TestClient(app).get("/x")
    assert r.status_code == 503


# ---- login and cookies


def test_login_sets_cookies_and_returns_csrf(client: TestClient, store: AuthStore):
    r = client.post("/api/v1/auth/login", json={"username": "op", "password": PW})
    assert r.status_code == 200
    body = r.json()
    assert body["user"]["username"] == "op" and body["user"]["role"] == "operator"
    assert body["user"]["scope"] == {
        "kind": "jurisdiction",
        "sites": [],
        "province": None,
        "city": "江门市",
        "district": "江海区",
        "park": None,
    }
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("hazmon_session="))
    csrf = next(c for c in cookies if c.startswith("hazmon_csrf="))
    assert "HttpOnly" in session and "samesite=strict" in session.lower() and "Path=/" in session
    assert "HttpOnly" not in csrf and f"hazmon_csrf={body['csrf_token']}" in csrf
    assert "Secure" not in session  # plain http here
    assert client.get("/api/v1/sites/jh-1").json() == {"site": "jh-1", "user": "op"}
    assert [e.action for e in store.audit_log(limit=2)] == ["create_session", "login"]


def test_cookies_are_secure_over_https(store: AuthStore):
    with TestClient(build_app(store), base_url="https://testserver") as c:
        r = c.post("/api/v1/auth/login", json={"username": "op", "password": PW})
    assert all("Secure" in h for h in r.headers.get_list("set-cookie"))


def test_wrong_password_is_401_json(client: TestClient):
    r = client.post("/api/v1/auth/login", json={"username": "op", "password": "not the password"})
    assert r.status_code == 401
    assert r.json() == {"detail": "invalid username or password", "error": "invalid_credentials"}
    assert "hazmon_session" not in r.cookies


def test_lockout_is_429_with_retry_after(client: TestClient):
    for _ in range(5):
        client.post("/api/v1/auth/login", json={"username": "op", "password": "not the password"})
    r = client.post("/api/v1/auth/login", json={"username": "op", "password": PW})
    assert r.status_code == 429 and r.json()["error"] == "locked"
    assert int(r.headers["retry-after"]) > 0


def test_logins_beyond_twenty_a_minute_from_one_address_are_429_with_retry_after(client: TestClient):
    for _ in range(20):
        assert client.post("/api/v1/auth/login", json={"username": "op", "password": PW}).status_code == 200
    r = client.post("/api/v1/auth/login", json={"username": "op", "password": PW})
    assert r.status_code == 429 and r.json()["error"] == "too_many_logins"
    assert 1 <= int(r.headers["retry-after"]) <= 60


def test_a_disabled_account_answers_like_a_wrong_password(client: TestClient, store: AuthStore):
    store.disable("op", actor="test")
    disabled = client.post("/api/v1/auth/login", json={"username": "op", "password": PW})
    wrong = client.post("/api/v1/auth/login", json={"username": "viewer", "password": "not it at all"})
    assert disabled.status_code == wrong.status_code == 401 and disabled.json() == wrong.json()


@pytest.mark.parametrize(
    "body",
    [
        {"username": "op"},
        {"username": "x" * 65, "password": PW},
        {"username": "op", "password": "p" * 1025},
        {"username": "", "password": PW},
        {"username": "op", "password": PW, "extra": 1},
        {"username": 5, "password": PW},
        [],
    ],
)
def test_bad_login_bodies_are_422(client: TestClient, body):
    r = client.post("/api/v1/auth/login", json=body)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"


def test_malformed_json_is_422(client: TestClient):
    r = client.post("/api/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


# ---- CSRF


def test_cookie_post_needs_the_csrf_header(client: TestClient, store: AuthStore):
    csrf = login(client, "op")
    r = client.post("/api/v1/sites/jh-1/ack")
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
    r = client.post("/api/v1/sites/jh-1/ack", headers={CSRF_HEADER: "wrong"})
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
    r = client.post("/api/v1/sites/jh-1/ack", headers={CSRF_HEADER: csrf})
    assert r.status_code == 200 and r.json() == {"acknowledged": "jh-1", "by": "op"}
    entry = store.audit_log(limit=1)[0]
    assert (entry.actor, entry.action, entry.target, entry.remote) == (
        "op",
        "acknowledge",
        "jh-1",
        "testclient",
    )


def test_cookie_get_needs_no_csrf(client: TestClient):
    login(client, "op")
    assert client.get("/api/v1/auth/me").status_code == 200


def test_bearer_token_needs_no_csrf(store: AuthStore):
    with TestClient(build_app(store)) as c:  # fresh client: no cookies at all
        r = c.post("/api/v1/sites/jh-1/ack", headers=bearer(store, "op"))
    assert r.status_code == 200 and r.json()["by"] == "op"


# ---- roles and scopes


def test_viewer_cannot_do_an_operator_action(client: TestClient):
    csrf = login(client, "viewer")
    assert client.get("/api/v1/sites/jh-1").status_code == 200
    r = client.post("/api/v1/sites/jh-1/ack", headers={CSRF_HEADER: csrf})
    assert r.status_code == 403
    assert r.json() == {"detail": "role viewer may not acknowledge", "error": "forbidden"}


@pytest.mark.parametrize(
    ("username", "site", "status"),
    [
        ("op", "jh-1", 200),  # own district
        ("op", "pj-1", 404),  # same city, other district
        ("op", "gl-1", 404),  # other city
        ("op", "nope", 404),  # does not exist: the same answer
        ("viewer", "pj-1", 200),  # whole city
        ("viewer", "gl-1", 404),
        ("root", "gl-1", 200),
    ],
)
def test_scope_decides_which_sites_exist(store: AuthStore, username: str, site: str, status: int):
    with TestClient(build_app(store)) as c:
        r = c.get(f"/api/v1/sites/{site}", headers=bearer(store, username))
    assert r.status_code == status
    if status == 404:
        assert r.json() == {"detail": "no such site", "error": "not_found"}


def test_out_of_scope_write_is_404(store: AuthStore):
    with TestClient(build_app(store)) as c:
        r = c.post("/api/v1/sites/pj-1/ack", headers=bearer(store, "op"))
    assert r.status_code == 404


# ---- logout and me


def test_logout_ends_the_session(client: TestClient, store: AuthStore):
    csrf = login(client, "op")
    cookie = client.cookies.get("hazmon_session")
    assert client.post("/api/v1/auth/logout").status_code == 403  # CSRF applies to logout too
    r = client.post("/api/v1/auth/logout", headers={CSRF_HEADER: csrf})
    assert r.status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401
    client.cookies.set("hazmon_session", cookie)  # a copied cookie is dead as well
    assert client.get("/api/v1/auth/me").status_code == 401
    assert store.resolve_session(cookie) is None


def test_logout_with_a_token_is_400(store: AuthStore):
    with TestClient(build_app(store)) as c:
        r = c.post("/api/v1/auth/logout", headers=bearer(store, "op"))
    assert r.status_code == 400 and r.json()["error"] == "not_a_session"


def test_me_lists_permissions(client: TestClient):
    login(client, "op")
    body = client.get("/api/v1/auth/me").json()
    assert body["via"] == "session"
    assert body["permissions"] == ["view", "acknowledge", "comment", "dispose", "shelve"]


# ---- API tokens


def test_token_lifecycle_through_the_api(client: TestClient, store: AuthStore):
    csrf = login(client, "op")
    h = {CSRF_HEADER: csrf}
    r = client.post("/api/v1/auth/tokens", json={"name": "scada", "expires_in_days": 30}, headers=h)
    assert r.status_code == 201
    created = r.json()
    assert created["token"].startswith("hzm_") and created["expires_at"]
    listed = client.get("/api/v1/auth/tokens").json()
    assert listed["count"] == 1 and "token" not in listed["data"][0]
    with TestClient(build_app(store)) as machine:
        auth = {"Authorization": f"Bearer {created['token']}"}
        assert machine.get("/api/v1/auth/me", headers=auth).json()["via"] == "token"
        # a token cannot mint more tokens
        r = machine.post("/api/v1/auth/tokens", json={"name": "more"}, headers=auth)
        assert r.status_code == 403
        assert client.delete(f"/api/v1/auth/tokens/{created['id']}", headers=h).status_code == 204
        assert machine.get("/api/v1/auth/me", headers=auth).status_code == 401
    assert client.delete(f"/api/v1/auth/tokens/{created['id']}", headers=h).status_code == 404


def test_cannot_revoke_someone_elses_token(client: TestClient, store: AuthStore):
    token, _ = store.create_token("root", "ops", actor="test")
    csrf = login(client, "op")
    r = client.delete(f"/api/v1/auth/tokens/{token.id}", headers={CSRF_HEADER: csrf})
    assert r.status_code == 404


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"name": "x" * 65}, {"name": "a", "expires_in_days": 0}, {"nom": "a"}]
)
def test_bad_token_requests_are_422(client: TestClient, body):
    csrf = login(client, "op")
    assert client.post("/api/v1/auth/tokens", json=body, headers={CSRF_HEADER: csrf}).status_code == 422


# ---- user management


def test_only_admins_manage_users(store: AuthStore):
    with TestClient(build_app(store)) as c:
        for who in ("viewer", "op"):
            h = bearer(store, who)
            assert c.get("/api/v1/users", headers=h).status_code == 403
            r = c.post(
                "/api/v1/users",
                json={"username": "new", "password": PW, "role": "viewer", "scope": {"kind": "all"}},
                headers=h,
            )
            assert r.status_code == 403
            assert c.patch("/api/v1/users/op", json={"role": "admin"}, headers=h).status_code == 403


def test_admin_creates_lists_and_updates_users(store: AuthStore):
    with TestClient(build_app(store)) as c:
        h = bearer(store, "root")
        r = c.post(
            "/api/v1/users",
            json={
                "username": "Zhang.San",
                "password": PW,
                "role": "supervisor",
                "scope": {"kind": "sites", "sites": ["jh-1", "pj-1"]},
                "display_name": "张三",
            },
            headers=h,
        )
        assert r.status_code == 201 and r.json()["username"] == "zhang.san"
        assert c.get("/api/v1/users", headers=h).json()["count"] == 4
        r = c.patch("/api/v1/users/zhang.san", json={"disabled": True}, headers=h)
        assert r.status_code == 200 and r.json()["disabled"] is True
        r = c.post(
            "/api/v1/users",
            json={"username": "zhang.san", "password": PW, "role": "viewer", "scope": {"kind": "all"}},
            headers=h,
        )
        assert r.status_code == 409 and r.json()["error"] == "conflict"
        assert c.patch("/api/v1/users/ghost", json={"disabled": True}, headers=h).status_code == 404
    entry = store.audit_log(limit=1, target="zhang.san")[0]
    assert (entry.actor, entry.action) == ("root", "update_user")


def test_admin_cannot_change_own_rights(store: AuthStore):
    with TestClient(build_app(store)) as c:
        r = c.patch("/api/v1/users/root", json={"role": "viewer"}, headers=bearer(store, "root"))
    assert r.status_code == 403


def test_city_admin_stays_inside_the_city(store: AuthStore):
    store.create_user("jm-admin", PW, Role.ADMIN, Scope.jurisdiction("江门市"), actor="test")
    with TestClient(build_app(store)) as c:
        h = bearer(store, "jm-admin")
        names = {u["username"] for u in c.get("/api/v1/users", headers=h).json()["data"]}
        assert names == {"op", "viewer", "jm-admin"}  # not root (all sites)
        new = {"username": "n", "password": PW, "role": "viewer"}
        r = c.post("/api/v1/users", json={**new, "scope": {"kind": "all"}}, headers=h)
        assert r.status_code == 403
        r = c.post(
            "/api/v1/users", json={**new, "scope": {"kind": "jurisdiction", "city": "珠海市"}}, headers=h
        )
        assert r.status_code == 403
        scope = {"kind": "jurisdiction", "city": "江门市", "district": "蓬江区"}
        assert c.post("/api/v1/users", json={**new, "scope": scope}, headers=h).status_code == 201
        assert c.patch("/api/v1/users/root", json={"disabled": True}, headers=h).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"username": "n", "password": PW, "role": "boss", "scope": {"kind": "all"}},
        {"username": "n", "password": PW, "role": "viewer", "scope": {"kind": "sites"}},
        {"username": "n", "password": PW, "role": "viewer", "scope": {"kind": "jurisdiction"}},
        {"username": "n", "password": PW, "role": "viewer", "scope": {"kind": "planet"}},
        {"username": "n", "password": "short", "role": "viewer", "scope": {"kind": "all"}},
        {"username": "n n", "password": PW, "role": "viewer", "scope": {"kind": "all"}},
        {
            "username": "n",
            "password": PW,
            "role": "viewer",
            "scope": {"kind": "all"},
            "display_name": "x" * 101,
        },
        {"username": "n", "password": PW, "role": "viewer", "scope": {"kind": "sites", "sites": ["a" * 65]}},
    ],
)
def test_bad_user_bodies_are_422_json(store: AuthStore, body):
    with TestClient(build_app(store)) as c:
        r = c.post("/api/v1/users", json=body, headers=bearer(store, "root"))
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_login_refuses_non_json_bodies(client: TestClient, content_type: str):
    # a cross-site HTML form can send these without a CORS preflight; JSON it cannot
    body = b'{"username": "op", "password": "correct horse battery"}'
    r = client.post("/api/v1/auth/login", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 422
    assert "hazmon_session" not in r.cookies


def test_login_audit_has_the_remote_address(client: TestClient, store: AuthStore):
    login(client, "op")
    entry = next(e for e in store.audit_log() if e.action == "login")
    assert (entry.actor, entry.outcome, entry.remote) == ("op", "ok", "testclient")


def test_cookies_are_secure_behind_a_trusted_tls_offloading_proxy(store: AuthStore):
    """hazmon runs uvicorn with proxy_headers and HAZMON_TRUSTED_PROXIES (hazmon/cli.py); this is that
    middleware, trusting the test client as the proxy: X-Forwarded-Proto https makes the cookies Secure."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app = ProxyHeadersMiddleware(build_app(store), trusted_hosts="*")
    with TestClient(app) as c:
        r = c.post(
            "/api/v1/auth/login",
            json={"username": "op", "password": PW},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.20"},
        )
    assert r.status_code == 200
    assert all("Secure" in h for h in r.headers.get_list("set-cookie"))
    assert store.audit_log(limit=1)[0].remote == "203.0.113.20"  # the real client, not the proxy


def test_a_user_changes_their_own_password_proving_the_current_one(client: TestClient, store: AuthStore):
    csrf = login(client, "op")
    h = {CSRF_HEADER: csrf}
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it", "new_password": "Tank-Farm-2026!"},
        headers=h,
    )
    assert wrong.status_code == 403 and wrong.json()["error"] == "wrong_password"
    weak = client.post(
        "/api/v1/auth/password", json={"current_password": PW, "new_password": "1234567890"}, headers=h
    )
    assert weak.status_code == 422 and "common" in weak.json()["detail"]
    ok = client.post(
        "/api/v1/auth/password", json={"current_password": PW, "new_password": "Tank-Farm-2026!"}, headers=h
    )
    assert ok.status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401  # every session ended: log in again
    r = client.post("/api/v1/auth/login", json={"username": "op", "password": "Tank-Farm-2026!"})
    assert r.status_code == 200
    assert ("set_password", "op") in [(e.action, e.actor) for e in store.audit_log(limit=5)]
