"""The duty roster: who is on duty for a role at an instant (pure core, no I/O).

Every major hazard source names three responsible persons (DOMAIN.md §5: 主要负责人, 技术负责人,
操作负责人), and regulators keep duty officers (值班人员). The notifier asks this module whom to
tell; it never guesses from wall-clock offsets.

Model: a Roster has people and, per Role, a Rota. A Rota has fixed daily Shifts (local wall-clock
times, e.g. day 08:00-20:00 and night 20:00-08:00), a cycle of days starting on an anchor date
(cycle[day][shift] names the team on that shift), holidays (a date whose shifts use other teams)
and one-off Overrides (X replaces Y, or X is added, from A to B). A shift belongs to the local date
it starts on; the outgoing team stays on duty for `handover` after its shift ends, so during the
handover both teams are on duty.

Times: queries take and return aware datetimes (UTC by convention). Shift bounds are local wall
times resolved in the roster's IANA zone with zoneinfo (a wall time repeated by DST means its first
occurrence, one skipped by DST means the jump). Adjacent shifts share the same boundary wall time
and so resolve to the same instant: a 20:00-08:00 night across a DST change is 11 or 13 hours long
and nobody gets a gap or a double.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Protocol
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"
#: Typical 交接班 overlap: the outgoing officer stays until the incoming one has taken over.
DEFAULT_HANDOVER = timedelta(minutes=15)
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
LANGUAGES = ("zh", "en")


class Role(StrEnum):
    """Who is told: the three responsible persons of a hazard source and the regulator's duty officer."""

    OPERATOR = "operator"
    TECHNICAL_LEAD = "technical_lead"
    PRINCIPAL = "principal"
    REGULATOR_DUTY = "regulator_duty"

    @property
    def title_zh(self) -> str:
        """The title used in Chinese messages and the console (DOMAIN.md §5)."""
        return _TITLES[self][0]

    def title(self, language: str = "zh") -> str:
        """The title in a person's language (zh or en), for messages addressed to them."""
        return _TITLES[self][1] if language == "en" else _TITLES[self][0]


_TITLES = {
    Role.OPERATOR: ("操作负责人", "operations lead"),
    Role.TECHNICAL_LEAD: ("技术负责人", "technical lead"),
    Role.PRINCIPAL: ("主要负责人", "principal responsible person"),
    Role.REGULATOR_DUTY: ("监管部门值班人员", "regulator duty officer"),
}


class RosterValueError(ValueError):
    """A roster object was built with an invalid value (the YAML loader reports these per key)."""


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who can be on duty; `phone` is E.164 (+8613800138000) so SMS gateways need no guessing."""

    id: str
    name: str
    phone: str
    language: str = "zh"
    roles: frozenset[Role] = frozenset()

    def __post_init__(self) -> None:
        if not E164_RE.match(self.phone):
            raise RosterValueError(f"phone {self.phone!r} is not E.164 (e.g. +8613800138000)")
        if self.language not in LANGUAGES:
            raise RosterValueError(f"language must be one of {', '.join(LANGUAGES)}")


@dataclass(frozen=True, slots=True)
class Shift:
    """A daily shift in local wall-clock time; end <= start means it ends the next day (equal: 24 h)."""

    name: str
    start: time
    end: time

    def bounds(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The UTC instants this shift starts and ends when it starts on local `day`."""
        end_day = day + timedelta(days=1) if self.end <= self.start else day
        return _utc(day, self.start, zone), _utc(end_day, self.end, zone)


@dataclass(frozen=True, slots=True)
class Override:
    """`person` replaces `replaces` (or, when None, joins the duty) during [start, end), UTC."""

    person: str
    start: datetime
    end: datetime
    replaces: str | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise RosterValueError("override start and end must be timezone-aware")
        if not self.start < self.end:
            raise RosterValueError("override must end after it starts")


@dataclass(frozen=True, slots=True)
class Rota:
    """The duty pattern of one role.

    cycle[i][k] is the team on shift k on local date anchor + i (modulo the cycle length); holidays
    map a local date to the teams (one per shift) that replace the cycle's entry for that date.
    """

    shifts: tuple[Shift, ...]
    teams: Mapping[str, tuple[str, ...]]
    cycle: tuple[tuple[str, ...], ...]
    anchor: date
    handover: timedelta = DEFAULT_HANDOVER
    holidays: Mapping[date, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    overrides: tuple[Override, ...] = ()

    def __post_init__(self) -> None:
        if not self.shifts:
            raise RosterValueError("a rota needs at least one shift")
        if not self.cycle:
            raise RosterValueError("a rota needs a cycle of at least one day")
        if self.handover < timedelta(0):
            raise RosterValueError("handover must not be negative")
        for entry in (*self.cycle, *self.holidays.values()):
            if len(entry) != len(self.shifts):
                raise RosterValueError("every cycle day and holiday must name one team per shift")
            for team in entry:
                if not self.teams.get(team):
                    raise RosterValueError(f"team {team!r} is not defined or has no members")

    @property
    def covers_day(self) -> bool:
        """True when the shifts tile the 24 h day with no gap (so someone is always on duty)."""
        return _covers_day(self.shifts)

    def team_on(self, day: date, shift_index: int) -> str:
        """The team on shift `shift_index` of local date `day` (holiday first, then the cycle)."""
        holiday = self.holidays.get(day)
        if holiday is not None:
            return holiday[shift_index]
        return self.cycle[(day - self.anchor).days % len(self.cycle)][shift_index]


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """The area a regulator roster answers for: a city, or one district of a city."""

    city: str
    district: str | None = None


@dataclass(frozen=True, slots=True)
class Roster:
    """The people and rotas of one site (or, with a jurisdiction, one regulator's office)."""

    id: str
    people: Mapping[str, Person]
    rotas: Mapping[Role, Rota]
    timezone: str = DEFAULT_TIMEZONE
    name: str = ""
    jurisdiction: Jurisdiction | None = None

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises for an unknown zone
        for role, rota in self.rotas.items():
            named = {p for members in rota.teams.values() for p in members}
            named |= {o.person for o in rota.overrides}
            named |= {o.replaces for o in rota.overrides if o.replaces is not None}
            for pid in sorted(named):
                person = self.people.get(pid)
                if person is None:
                    raise RosterValueError(f"rota {role.value} names unknown person {pid!r}")
                if person.roles and role not in person.roles:
                    raise RosterValueError(f"person {pid!r} does not hold role {role.value}")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SiteLike(Protocol):
    """What duty_for_site needs of a site (sensors.model.Site fits)."""

    @property
    def roster(self) -> str | None: ...
    @property
    def district(self) -> str | None: ...
    @property
    def city(self) -> str | None: ...


def rotation_cycle(teams: Sequence[str], days: int, n_shifts: int) -> tuple[tuple[str, ...], ...]:
    """A cycle where teams take turns in blocks of `days` days and move on to the next shift.

    Shift k of block b is worked by teams[(b - k) % n], the team that worked shift k-1 in the
    previous block: with 4 teams, 2 shifts and 2 days, team A works D D N N - - - - (四班两倒);
    with one 24 h shift and 7 days it is a plain weekly rota.
    """
    if not teams or days < 1 or n_shifts < 1:
        raise RosterValueError("a rotation needs at least one team, one day per block and one shift")
    n = len(teams)
    return tuple(tuple(teams[(b - k) % n] for k in range(n_shifts)) for b in range(n) for _ in range(days))


# ---- queries


@dataclass(frozen=True, slots=True)
class _Slot:
    start: datetime  # UTC, shift start
    end: datetime  # UTC, shift end plus handover
    team: str


@lru_cache(maxsize=8192)  # the notifier asks about the same few days over and over
def _utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant of a local wall time: the first one if DST repeats it, the jump if DST skips it.

    Both choices keep wall time -> instant non-decreasing, so no shift gets a negative length and
    two shifts never overlap (zoneinfo's fold=0 alone maps a skipped 02:30 after 03:00).
    """
    wall = datetime.combine(day, at)
    local = wall.replace(tzinfo=zone)
    utc = local.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc
    after = utc.astimezone(zone).utcoffset()
    before = local.utcoffset()
    assert after is not None and before is not None
    # the jump lies in (utc - gap, utc]; DST rules change on whole seconds: bisect on epoch seconds
    lo, hi = math.floor((utc - (after - before)).timestamp()), math.ceil(utc.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _check_aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("duty queries need a timezone-aware datetime (UTC)")
    return at.astimezone(UTC)


def _covers_day(shifts: tuple[Shift, ...]) -> bool:
    """Shifts tile the day when, sorted by start, each one ends where the next begins."""
    ordered = sorted(shifts, key=lambda s: s.start)
    return all(s.end == ordered[(i + 1) % len(ordered)].start for i, s in enumerate(ordered))


def _slots(rota: Rota, zone: ZoneInfo, first: date, last: date) -> Iterator[_Slot]:
    day = first
    while day <= last:
        for k, shift in enumerate(rota.shifts):
            start, end = shift.bounds(day, zone)
            yield _Slot(start, end + rota.handover, rota.team_on(day, k))
        day += timedelta(days=1)


def _base_duty(rota: Rota, zone: ZoneInfo, at: datetime) -> list[str]:
    """Person ids on duty by the rota alone: newest shift first, team order within a shift."""
    today = at.astimezone(zone).date()
    # a shift lasts at most 25 h (24 h across a DST fall-back) plus the handover
    back = 2 + rota.handover.days
    active = [s for s in _slots(rota, zone, today - timedelta(days=back), today) if s.start <= at < s.end]
    active.sort(key=lambda s: s.start, reverse=True)
    ids: list[str] = []
    for slot in active:
        ids.extend(p for p in rota.teams[slot.team] if p not in ids)
    return ids


def _duty_ids(rota: Rota, zone: ZoneInfo, at: datetime) -> list[str]:
    ids = _base_duty(rota, zone, at)
    for o in rota.overrides:
        if not o.start <= at < o.end:
            continue
        if o.replaces is None:
            if o.person not in ids:
                ids.append(o.person)
        elif o.replaces in ids:
            i = ids.index(o.replaces)
            ids[i : i + 1] = [] if o.person in ids else [o.person]
    return ids


def on_duty(roster: Roster, role: Role, at: datetime) -> list[Person]:
    """The people on duty for `role` at instant `at` (empty if the roster has no rota for it)."""
    rota = roster.rotas.get(role)
    if rota is None:
        return []
    return [roster.people[p] for p in _duty_ids(rota, roster.zone, _check_aware(at))]


def on_duty_all(roster: Roster, at: datetime) -> dict[Role, list[Person]]:
    """Everyone on duty at `at`, per role the roster has a rota for."""
    return {role: on_duty(roster, role, at) for role in roster.rotas}


def _boundaries(rota: Rota, zone: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """Every instant in (after, until] at which the duty set of `rota` may change."""
    first = after.astimezone(zone).date() - timedelta(days=2 + rota.handover.days)
    last = until.astimezone(zone).date() + timedelta(days=1)
    points = {t for s in _slots(rota, zone, first, last) for t in (s.start, s.end)}
    points |= {t for o in rota.overrides for t in (o.start, o.end)}
    return sorted(t for t in points if after < t <= until)


def next_change(roster: Roster, role: Role, after: datetime) -> datetime | None:
    """The first instant after `after` at which the people on duty for `role` differ; None if never."""
    rota = roster.rotas.get(role)
    if rota is None:
        return None
    zone = roster.zone
    after = _check_aware(after)
    current = _duty_ids(rota, zone, after)
    # After one whole cycle past the last holiday and override nothing new can happen.
    latest = max([after, *(o.end for o in rota.overrides)] + [_utc(d, time(), zone) for d in rota.holidays])
    horizon = latest + timedelta(days=len(rota.cycle) + 2 + rota.handover.days)
    step_start = after
    while step_start < horizon:  # in steps of a few weeks, so a short answer stays cheap
        step_end = min(horizon, step_start + timedelta(days=14))
        for t in _boundaries(rota, zone, step_start, step_end):
            if _duty_ids(rota, zone, t) != current:
                return t
        step_start = step_end
    return None


# ---- jurisdiction


def regulator_rosters(rosters: Iterable[Roster], city: str | None, district: str | None) -> list[Roster]:
    """The regulator rosters answering for (city, district): the district's first, then the city's."""
    if city is None:
        return []
    exact: list[Roster] = []
    whole_city: list[Roster] = []
    for r in rosters:
        j = r.jurisdiction
        if j is None or j.city != city:
            continue
        if j.district is None:
            whole_city.append(r)
        elif j.district == district:
            exact.append(r)
    return exact + whole_city


def find_duty(
    site: SiteLike, rosters: Mapping[str, Roster], role: Role, at: datetime
) -> tuple[Roster, list[Person]] | None:
    """Who answers for `site` in `role` at `at`, and from which roster (None: nobody anywhere).

    Candidates in order: the site's own roster, then the regulator roster of its district, then
    of its city; the first with someone on duty for `role` wins. Regulator rosters are matched by
    their jurisdiction (city and district as the registry spells them), not by parsing ids.
    """
    candidates: list[Roster] = []
    if site.roster is not None and site.roster in rosters:
        candidates.append(rosters[site.roster])
    candidates += regulator_rosters(rosters.values(), site.city, site.district)
    for roster in candidates:
        people = on_duty(roster, role, at)
        if people:
            return roster, people
    return None


def duty_for_site(site: SiteLike, rosters: Mapping[str, Roster], role: Role, at: datetime) -> list[Person]:
    """The people who answer for `site` in `role` at `at` (see find_duty for the search order)."""
    found = find_duty(site, rosters, role, at)
    return found[1] if found else []


def duty_lookup(
    sites: Mapping[str, SiteLike], rosters: Mapping[str, Roster]
) -> Callable[[str, str, int], list[Person]]:
    """Adapt duty_for_site to a (site id, role name, UTC ms) -> people callable.

    That is the shape the escalation planner asks for (alerts/notify/escalation.py DutyLookup on main).
    An unknown site has nobody; an unknown role name is a configuration error and raises ValueError.
    """

    def lookup(site_id: str, role: str, at_ms: int) -> list[Person]:
        site = sites.get(site_id)
        if site is None:
            return []
        return duty_for_site(site, rosters, Role(role), datetime.fromtimestamp(at_ms / 1000, UTC))

    return lookup
