"""Roles, scopes and the permission table (api/auth/model.py): pure, no store."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from api.auth.model import (
    OPERATOR_SHELVE_MAX_MIN,
    PERMISSIONS,
    Action,
    Principal,
    Role,
    Scope,
    ScopeError,
    User,
    allowed,
    can_see,
    scope_within,
    shelve_action,
    visible_sites,
)
from sensors.model import Site


@dataclass(frozen=True)
class S:
    id: str
    city: str | None
    district: str | None


JIANGHAI = S("jh-1", "江门市", "江海区")
PENGJIANG = S("pj-1", "江门市", "蓬江区")
ZHUHAI = S("gl-1", "珠海市", "金湾区")
NOWHERE = S("x-1", None, None)
SITES = [JIANGHAI, PENGJIANG, ZHUHAI, NOWHERE]


def user(role: Role = Role.VIEWER, scope: Scope | None = None, disabled: bool = False) -> User:
    return User("u", role, scope or Scope.everything(), disabled=disabled)


# ---- roles


def test_roles_are_ordered_viewer_operator_supervisor_admin():
    order = [Role.VIEWER, Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN]
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            assert a.at_least(b) is (i >= j), (a, b)


def test_at_least_accepts_the_role_name():
    assert Role.ADMIN.at_least("operator")
    assert not Role.VIEWER.at_least("operator")


# ---- permission table

TABLE = {
    #                  viewer operator supervisor admin
    Action.VIEW: (True, True, True, True),
    Action.ACKNOWLEDGE: (False, True, True, True),
    Action.COMMENT: (False, True, True, True),
    Action.DISPOSE: (False, True, True, True),
    Action.SHELVE: (False, True, True, True),
    Action.SHELVE_LONG: (False, False, True, True),
    Action.OUT_OF_SERVICE: (False, False, True, True),
    Action.EDIT_ROSTER: (False, False, True, True),
    Action.MANAGE_USERS: (False, False, False, True),
}


@pytest.mark.parametrize("action", list(Action), ids=str)
@pytest.mark.parametrize("role", list(Role), ids=str)
def test_permission_table(role: Role, action: Action):
    expected = TABLE[action][list(Role).index(role)]
    assert allowed(role, action) is expected
    assert user(role).may(action) is expected


def test_table_covers_every_action():
    assert set(TABLE) == set(PERMISSIONS) == set(Action)


def test_disabled_user_may_nothing():
    assert not user(Role.ADMIN, disabled=True).may(Action.VIEW)


def test_shelve_length_decides_the_action():
    assert shelve_action(OPERATOR_SHELVE_MAX_MIN) is Action.SHELVE
    assert shelve_action(OPERATOR_SHELVE_MAX_MIN + 1) is Action.SHELVE_LONG
    assert not allowed(Role.OPERATOR, shelve_action(8 * 60))
    assert allowed(Role.SUPERVISOR, shelve_action(8 * 60))


# ---- scopes

SCOPE_CASES = [
    ("all sites", Scope.everything(), {"jh-1", "pj-1", "gl-1", "x-1"}),
    ("site list", Scope.of_sites(["pj-1", "gl-1"]), {"pj-1", "gl-1"}),
    ("whole city", Scope.jurisdiction("江门市"), {"jh-1", "pj-1"}),
    ("one district", Scope.jurisdiction("江门市", "江海区"), {"jh-1"}),
    ("district of another city", Scope.jurisdiction("珠海市", "江海区"), set()),
    ("unknown city", Scope.jurisdiction("韶关市"), set()),
]


@pytest.mark.parametrize(("name", "scope", "seen"), SCOPE_CASES, ids=[c[0] for c in SCOPE_CASES])
def test_scope_rules(name: str, scope: Scope, seen: set[str]):
    u = user(Role.OPERATOR, scope)
    assert {s.id for s in SITES if can_see(u, s)} == seen
    assert [s.id for s in visible_sites(u, SITES)] == [s.id for s in SITES if s.id in seen]


def test_disabled_user_sees_nothing():
    assert visible_sites(user(Role.ADMIN, Scope.everything(), disabled=True), SITES) == []


def test_registry_site_works_with_scope():
    site = Site(id="jh", name="n", kind="chemical", grade=1, sensors=(), city="江门市", district="江海区")
    assert can_see(user(scope=Scope.jurisdiction("江门市", "江海区")), site)
    assert not can_see(user(scope=Scope.jurisdiction("江门市", "蓬江区")), site)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Scope("sites"),
        lambda: Scope.of_sites([" "]),
        lambda: Scope.jurisdiction(""),
        lambda: Scope.jurisdiction("江门市", " "),
        lambda: Scope("jurisdiction", district="江海区"),
        lambda: Scope("all", city="江门市"),
        lambda: Scope("planet"),  # type: ignore[arg-type]
    ],
)
def test_malformed_scopes_are_refused(build):
    with pytest.raises(ScopeError):
        build()


@pytest.mark.parametrize("scope", [c[1] for c in SCOPE_CASES])
def test_scope_round_trips_through_dict(scope: Scope):
    assert Scope.from_dict(scope.to_dict()) == scope


@pytest.mark.parametrize(
    ("inner", "outer", "within"),
    [
        (Scope.everything(), Scope.everything(), True),
        (Scope.everything(), Scope.jurisdiction("江门市"), False),
        (Scope.jurisdiction("江门市", "江海区"), Scope.jurisdiction("江门市"), True),
        (Scope.jurisdiction("江门市"), Scope.jurisdiction("江门市", "江海区"), False),
        (Scope.jurisdiction("江门市", "蓬江区"), Scope.jurisdiction("江门市", "江海区"), False),
        (Scope.of_sites(["a"]), Scope.of_sites(["a", "b"]), True),
        (Scope.of_sites(["a", "c"]), Scope.of_sites(["a", "b"]), False),
        (Scope.of_sites(["a"]), Scope.jurisdiction("江门市"), False),  # needs the registry: refused
    ],
)
def test_scope_within(inner: Scope, outer: Scope, within: bool):
    assert scope_within(inner, outer) is within


def test_principal_carries_the_user():
    p = Principal(user(), via="token", credential_id="t1")
    assert p.username == "u" and p.csrf is None
