"""Who may do what, and on which sites (issue 5, item 2): roles, scopes, users and the permission table.

Pure: no I/O, no FastAPI. The store persists these types; the API dependencies check them.

Roles are ordered viewer < operator < supervisor < admin and each role holds every permission of the
roles below it. The permission table (PERMISSIONS) is the one place that says which role may do what:

    action           viewer  operator  supervisor  admin
    view               x        x          x         x
    acknowledge                 x          x         x
    comment                     x          x         x
    dispose                     x          x         x     (an alarm's cause, action and person)
    shelve                      x          x         x     (up to OPERATOR_SHELVE_MAX_MIN minutes)
    shelve_long                            x         x     (longer, up to the API's own maximum)
    out_of_service                         x         x
    edit_roster                            x         x
    manage_users                                     x

Why: an operator in the control room must be able to acknowledge and briefly shelve a chattering
alarm at 3 a.m. without calling anyone, but hiding an alarm for hours, taking a sensor out of
service or changing who gets woken up are decisions a supervisor answers for (ISA-18.2 treats
shelving and out-of-service as managed suppressions). Users and their scopes are the admin's alone.

Scopes: a user sees sites by an explicit list of site ids, or by jurisdiction (a city, or one
district of a city, spelled as the registry spells `Site.city` / `Site.district`), or all sites.
"All sites" must be given explicitly; admins are not implicitly global. A site with no city is
outside every jurisdiction scope (only an explicit site list or all-sites sees it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, TypeVar

from api.auth.errors import InvalidUserData


class Role(StrEnum):
    """A user's role; later members outrank earlier ones."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_ORDER.index(self)

    def at_least(self, other: Role) -> bool:
        """Return True if this role is `other` or outranks it."""
        return self.rank >= Role(other).rank


_ROLE_ORDER: tuple[Role, ...] = (Role.VIEWER, Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)


class Action(StrEnum):
    """Something a user may be allowed to do."""

    VIEW = "view"
    ACKNOWLEDGE = "acknowledge"
    COMMENT = "comment"
    DISPOSE = "dispose"
    SHELVE = "shelve"
    SHELVE_LONG = "shelve_long"
    OUT_OF_SERVICE = "out_of_service"
    EDIT_ROSTER = "edit_roster"
    MANAGE_USERS = "manage_users"


#: the lowest role allowed each action (see the module docstring for the table and the reasons)
PERMISSIONS: dict[Action, Role] = {
    Action.VIEW: Role.VIEWER,
    Action.ACKNOWLEDGE: Role.OPERATOR,
    Action.COMMENT: Role.OPERATOR,
    Action.DISPOSE: Role.OPERATOR,
    Action.SHELVE: Role.OPERATOR,
    Action.SHELVE_LONG: Role.SUPERVISOR,
    Action.OUT_OF_SERVICE: Role.SUPERVISOR,
    Action.EDIT_ROSTER: Role.SUPERVISOR,
    Action.MANAGE_USERS: Role.ADMIN,
}
assert set(PERMISSIONS) == set(Action)

#: the longest shelve an operator may set; longer needs Action.SHELVE_LONG
OPERATOR_SHELVE_MAX_MIN = 60.0


def allowed(role: Role, action: Action | str) -> bool:
    """Return True if `role` may perform `action`."""
    return Role(role).at_least(PERMISSIONS[Action(action)])


def shelve_action(minutes: float) -> Action:
    """The action a shelve of this length needs: SHELVE up to OPERATOR_SHELVE_MAX_MIN, else SHELVE_LONG."""
    return Action.SHELVE if minutes <= OPERATOR_SHELVE_MAX_MIN else Action.SHELVE_LONG


class ScopeError(InvalidUserData):
    """A scope is malformed (empty site list, district without a city, blank names)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """The sites a user may see: all, an explicit set of site ids, a jurisdiction (a province, a city,
    or one district of a city, as the registry spells them), or a chemical park (a named set of sites).

    Build with `Scope.everything()`, `Scope.of_sites(...)`, `Scope.jurisdiction(city, district,
    province=...)` or `Scope.of_park(name)`.
    """

    kind: Literal["all", "sites", "jurisdiction", "park"]
    sites: frozenset[str] = frozenset()
    city: str | None = None
    district: str | None = None
    province: str | None = None
    park: str | None = None

    def __post_init__(self) -> None:
        places = (self.city, self.district, self.province, self.park)
        if self.kind == "all":
            if self.sites or any(places):
                raise ScopeError("an all-sites scope takes no sites, province, city, district or park")
        elif self.kind == "sites":
            if not self.sites or any(not s.strip() for s in self.sites):
                raise ScopeError("a site scope needs at least one non-blank site id")
            if any(places):
                raise ScopeError("a site scope takes no province, city, district or park")
        elif self.kind == "jurisdiction":
            if not (self.city and self.city.strip()) and not (self.province and self.province.strip()):
                raise ScopeError("a jurisdiction scope needs a province or a city")
            for name in (self.city, self.district, self.province):
                if name is not None and not name.strip():
                    raise ScopeError("a province, city or district must not be blank")
            if self.district is not None and not self.city:
                raise ScopeError("a district needs its city")
            if self.sites or self.park:
                raise ScopeError("a jurisdiction scope takes no site ids or park")
        elif self.kind == "park":
            if not self.park or not self.park.strip():
                raise ScopeError("a park scope needs the park's name")
            if self.sites or self.city or self.district or self.province:
                raise ScopeError("a park scope takes no site ids, province, city or district")
        else:
            raise ScopeError(f"unknown scope kind {self.kind!r}")

    @classmethod
    def everything(cls) -> Scope:
        return cls("all")

    @classmethod
    def of_sites(cls, sites: Iterable[str]) -> Scope:
        return cls("sites", sites=frozenset(sites))

    @classmethod
    def jurisdiction(
        cls, city: str | None, district: str | None = None, province: str | None = None
    ) -> Scope:
        return cls("jurisdiction", city=city, district=district, province=province)

    @classmethod
    def of_park(cls, park: str) -> Scope:
        return cls("park", park=park)

    def covers(self, site: SiteLike) -> bool:
        """Return True if the site lies inside this scope (a site without the place named is outside)."""
        if self.kind == "all":
            return True
        if self.kind == "sites":
            return site.id in self.sites
        if self.kind == "park":
            return getattr(site, "park", None) == self.park
        if self.province is not None and getattr(site, "province", None) != self.province:
            return False
        if self.city is not None and site.city != self.city:
            return False
        return self.district is None or site.district == self.district

    def describe(self) -> str:
        """A short human-readable form, for the audit log and `hazmon user list`."""
        if self.kind == "all":
            return "all sites"
        if self.kind == "sites":
            return "sites " + ",".join(sorted(self.sites))
        if self.kind == "park":
            return f"park {self.park}"
        if self.city is None:
            return f"{self.province} (whole province)"
        place = f"{self.province or ''}{self.city}"
        return f"{place}{self.district}" if self.district else f"{place} (whole city)"

    def to_dict(self) -> dict[str, object]:
        if self.kind == "all":
            return {"kind": "all"}
        if self.kind == "sites":
            return {"kind": "sites", "sites": sorted(self.sites)}
        if self.kind == "park":
            return {"kind": "park", "park": self.park}
        out: dict[str, object] = {"kind": "jurisdiction", "city": self.city, "district": self.district}
        if self.province is not None:
            out["province"] = self.province
        return out

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Scope:
        kind = d.get("kind")
        if kind == "all":
            return cls.everything()
        if kind == "sites":
            sites = d.get("sites")
            if not isinstance(sites, list | tuple) or not all(isinstance(s, str) for s in sites):
                raise ScopeError("sites must be a list of site ids")
            return cls.of_sites(sites)
        if kind == "jurisdiction":
            city, district, province = d.get("city"), d.get("district"), d.get("province")
            if not all(v is None or isinstance(v, str) for v in (city, district, province)):
                raise ScopeError("province, city and district must be text")
            return cls.jurisdiction(city, district, province)  # type: ignore[arg-type]
        if kind == "park":
            park = d.get("park")
            if not isinstance(park, str):
                raise ScopeError("park must be text")
            return cls.of_park(park)
        raise ScopeError(f"unknown scope kind {kind!r}")


class SiteLike(Protocol):
    """What scope checks need of a site (sensors.model.Site has it)."""

    @property
    def id(self) -> str: ...
    @property
    def city(self) -> str | None: ...
    @property
    def district(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class User:
    """An account as the API sees it (never its password hash)."""

    username: str
    role: Role
    scope: Scope
    display_name: str = ""
    disabled: bool = False

    @property
    def id(self) -> str:
        return self.username

    def may(self, action: Action | str) -> bool:
        """Return True if the user is enabled and the role allows `action`."""
        return not self.disabled and allowed(self.role, action)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the user plus how they came in (and, for a session, its CSRF value)."""

    user: User
    via: Literal["session", "token"]
    credential_id: str  # the session's or the token's id (never the secret itself)
    csrf: str | None = None  # a session's double-submit token; None for API tokens

    @property
    def username(self) -> str:
        return self.user.username


def can_see(user: User, site: SiteLike) -> bool:
    """Return True if the (enabled) user's scope covers the site."""
    return not user.disabled and user.scope.covers(site)


def scope_within(inner: Scope, outer: Scope) -> bool:
    """Return True if every site `inner` covers is surely covered by `outer` (without the registry).

    Conservative: a site list is within a jurisdiction only if the outer scope is all sites, since
    telling where each listed site lies needs the registry. Used so an admin scoped to one city
    cannot grant more than that city.
    """
    if outer.kind == "all":
        return True
    if inner.kind == "sites":
        return outer.kind == "sites" and inner.sites <= outer.sites
    if inner.kind == "jurisdiction" and outer.kind == "jurisdiction":
        return inner.city == outer.city and (outer.district is None or inner.district == outer.district)
    return False


S = TypeVar("S", bound=SiteLike)


def visible_sites(user: User, sites: Iterable[S]) -> list[S]:
    """The sites the user may see, in the given order."""
    return [s for s in sites if can_see(user, s)]
