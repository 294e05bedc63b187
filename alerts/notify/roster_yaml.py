"""Load duty rosters from a YAML file or a folder of them into the pure roster model.

Like the registry loader (sensors/registry.py), every mistake is collected and named by file,
roster and key (e.g. `rotas.operator.cycle[3].night`), and duplicate YAML keys are errors, so
whoever edits the duty plan sees every problem in one run, not one per restart.

Format (one document: a mapping with a `rosters` list):

    rosters:
      - id: jianghai-duty                 # what a site's `roster:` names (docs/contracts.md §2)
        name: 江海区某化工储罐区值班表
        timezone: Asia/Shanghai           # optional, IANA
        city: 江门市                      # regulator rosters only: the jurisdiction, spelled as the
        district: 江海区                  # registry spells a site's city/district (district optional)
        people:
          - {id: chen-wei, name: 陈伟, phone: "+8613800138001", language: zh, roles: [operator]}
        rotas:
          operator:                       # operator | technical_lead | principal | regulator_duty
            shifts: {day: "08:00-20:00", night: "20:00-08:00"}   # "08:00-08:00" is 24 h
            handover_min: 15              # default 15
            anchor: 2026-11-02            # the cycle's first day (local date)
            teams: {A: [chen-wei], B: [li-hua]}                   # optional; a person id is a team too
            rotate: {teams: [A, B, C, D], days: 2}                # or an explicit cycle:
            cycle: [{day: A, night: C}, B]                        # per day: team per shift, or one team
            holidays:
              - {dates: [2026-10-01], team: A}                    # or shifts: {day: A, night: B}
            overrides:
              - {person: wang-qiang, replaces: chen-wei, from: "2026-11-05 08:00", to: "2026-11-05 20:00",
                 reason: 病假}                                    # no `replaces`: an extra person
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from alerts.notify.roster import (
    DEFAULT_HANDOVER,
    DEFAULT_TIMEZONE,
    LANGUAGES,
    Jurisdiction,
    Override,
    Person,
    Role,
    Roster,
    RosterValueError,
    Rota,
    Shift,
    rotation_cycle,
)
from sensors.registry import _UniqueKeyLoader  # one duplicate-key policy for every YAML we read

ROSTER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_:/.-]{0,127}$")  # regulator:huizhou/dayawan
PERSON_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
TEAM_ID_RE = re.compile(r"^\S{1,64}$")  # 甲班, A, night-crew
SHIFT_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")

ROSTER_KEYS = frozenset({"id", "name", "timezone", "city", "district", "people", "rotas"})
PERSON_KEYS = frozenset({"id", "name", "phone", "language", "roles"})
ROTA_KEYS = frozenset(
    {"shifts", "handover_min", "anchor", "teams", "rotate", "cycle", "holidays", "overrides"}
)
HOLIDAY_KEYS = frozenset({"dates", "team", "shifts"})
OVERRIDE_KEYS = frozenset({"person", "replaces", "from", "to", "reason"})
ROLE_NAMES = ", ".join(r.value for r in Role)


@dataclass(frozen=True, slots=True)
class RosterIssue:
    """One problem in a roster file, located as precisely as we can."""

    file: str
    roster: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.roster is not None:
            where.append(f"roster {self.roster}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        return f"{': '.join(where)}: {self.message}"


class RosterError(ValueError):
    """The roster file(s) have one or more problems; `issues` lists them all."""

    def __init__(self, issues: list[RosterIssue]):
        self.issues = issues
        super().__init__("invalid rosters:\n  " + "\n  ".join(str(i) for i in issues))


class _Issues:
    """Issues of one roster in one file; `bad(message, key)` records one."""

    def __init__(self, file: str, roster: str | None, out: list[RosterIssue]):
        self.file, self.roster, self.out = file, roster, out
        self.count = 0

    def bad(self, message: str, key: str | None = None) -> None:
        self.out.append(RosterIssue(self.file, self.roster, key, message))
        self.count += 1


def roster_files(path: str | Path) -> list[Path]:
    """Rosters are one YAML file or a folder of them (read in name order)."""
    p = Path(path)
    if p.is_dir():
        files = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
        if not files:
            raise RosterError([RosterIssue(str(p), None, None, "no *.yaml files in folder")])
        return files
    if not p.exists():
        raise RosterError([RosterIssue(str(p), None, None, "file not found")])
    return [p]


def load_rosters(path: str | Path) -> dict[str, Roster]:
    """Load every roster of a file or folder by id; raise RosterError naming every problem."""
    rosters: dict[str, Roster] = {}
    origin: dict[str, str] = {}
    issues: list[RosterIssue] = []
    for f in roster_files(path):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            issues.append(RosterIssue(str(f), None, None, f"cannot read: {e}"))
            continue
        found, file_issues = parse_rosters_text(text, str(f))
        issues.extend(file_issues)
        for r in found:
            if r.id in origin:
                issues.append(
                    RosterIssue(str(f), r.id, "id", f"duplicate roster id (also in {origin[r.id]})")
                )
            else:
                rosters[r.id], origin[r.id] = r, str(f)
    if issues:
        raise RosterError(issues)
    return rosters


def parse_rosters_text(text: str, file: str = "<string>") -> tuple[list[Roster], list[RosterIssue]]:
    """Parse one roster document; return the valid rosters and every issue found."""
    issues: list[RosterIssue] = []
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        return [], [RosterIssue(file, None, None, f"not valid YAML: {e}")]
    if not isinstance(doc, Mapping) or not isinstance(doc.get("rosters"), list):
        return [], [
            RosterIssue(file, None, "rosters", "the document must be a mapping with a 'rosters' list")
        ]
    issues += [RosterIssue(file, None, str(k), "unknown key") for k in doc if k != "rosters"]
    rosters: list[Roster] = []
    seen: set[str] = set()
    for raw in doc["rosters"]:
        r = _parse_roster(raw, file, issues)
        if r is None:
            continue
        if r.id in seen:
            issues.append(RosterIssue(file, r.id, "id", "duplicate roster id"))
            continue
        seen.add(r.id)
        rosters.append(r)
    return rosters, issues


# ---- one roster


def _parse_roster(raw: Any, file: str, out: list[RosterIssue]) -> Roster | None:
    if not isinstance(raw, Mapping):
        out.append(RosterIssue(file, None, None, "each roster must be a mapping"))
        return None
    rid = raw.get("id")
    c = _Issues(file, str(rid) if rid is not None else "<no id>", out)
    for k in raw:
        if k not in ROSTER_KEYS:
            c.bad("unknown key", str(k))
    if not isinstance(rid, str) or not ROSTER_ID_RE.match(rid):
        c.bad("roster id must match [a-z0-9][a-z0-9_:/.-]{0,127}", "id")
    name = raw.get("name", "")
    if not isinstance(name, str):
        c.bad("name must be a string", "name")
    tz = raw.get("timezone", DEFAULT_TIMEZONE)
    zone = None
    try:
        zone = ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        c.bad(f"unknown time zone {tz!r}", "timezone")
    jurisdiction = _parse_jurisdiction(raw, c)
    people = _parse_people(raw.get("people"), c)
    rotas: dict[Role, Rota] = {}
    raw_rotas = raw.get("rotas")
    if not isinstance(raw_rotas, Mapping) or not raw_rotas:
        c.bad(f"rotas must be a non-empty mapping of role to rota (roles: {ROLE_NAMES})", "rotas")
    else:
        for role_name, raw_rota in raw_rotas.items():
            key = f"rotas.{role_name}"
            try:
                role = Role(role_name)
            except ValueError:
                c.bad(f"unknown role (one of {ROLE_NAMES})", key)
                continue
            rota = _parse_rota(raw_rota, key, role, people, zone, c)
            if rota is not None:
                rotas[role] = rota
    if c.count:
        return None
    try:
        return Roster(
            id=rid,
            people=MappingProxyType(people),
            rotas=MappingProxyType(rotas),
            timezone=str(tz),
            name=name,
            jurisdiction=jurisdiction,
        )
    except RosterValueError as e:  # a rule the checks above missed: still report it, located
        c.bad(str(e))
        return None


def _parse_jurisdiction(raw: Mapping[str, Any], c: _Issues) -> Jurisdiction | None:
    city, district = raw.get("city"), raw.get("district")
    for key, value in (("city", city), ("district", district)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            c.bad("must be a non-empty string", key)
    if district is not None and city is None:
        c.bad("a district needs its city (district names repeat across cities)", "district")
    if isinstance(city, str) and city.strip() and (district is None or isinstance(district, str)):
        return Jurisdiction(city, district)
    return None


def _parse_people(raw: Any, c: _Issues) -> dict[str, Person]:
    people: dict[str, Person] = {}
    seen: set[str] = set()
    if not isinstance(raw, list) or not raw:
        c.bad("people must be a non-empty list", "people")
        return people
    for i, rp in enumerate(raw):
        key = f"people[{i}]"
        if not isinstance(rp, Mapping):
            c.bad("each person must be a mapping", key)
            continue
        pid = rp.get("id")
        if isinstance(pid, str):
            key = f"people.{pid}"
        before = c.count
        for k in rp:
            if k not in PERSON_KEYS:
                c.bad("unknown key", f"{key}.{k}")
        if not isinstance(pid, str) or not PERSON_ID_RE.match(pid):
            c.bad("person id must match [a-z0-9][a-z0-9_.-]{0,63}", f"{key}.id")
        elif pid in seen:
            c.bad("duplicate person id", f"{key}.id")
        else:
            seen.add(pid)
        name = rp.get("name")
        if not isinstance(name, str) or not name.strip():
            c.bad("name is required", f"{key}.name")
        phone = rp.get("phone")
        if not isinstance(phone, str):
            c.bad('phone must be a quoted E.164 string like "+8613800138000"', f"{key}.phone")
        else:
            phone = phone.replace(" ", "").replace("-", "")  # people write +86 138 0013 8000
        language = rp.get("language", "zh")
        if language not in LANGUAGES:
            c.bad(f"language must be one of {', '.join(LANGUAGES)}", f"{key}.language")
        roles = _parse_roles(rp.get("roles"), f"{key}.roles", c)
        if c.count > before:
            continue
        try:
            people[pid] = Person(pid, name, phone, language, roles)
        except RosterValueError as e:
            c.bad(str(e), f"{key}.phone")
    return people


def _parse_roles(raw: Any, key: str, c: _Issues) -> frozenset[Role]:
    if not isinstance(raw, list) or not raw:
        c.bad(f"roles must be a non-empty list (of {ROLE_NAMES})", key)
        return frozenset()
    roles: set[Role] = set()
    for r in raw:
        try:
            roles.add(Role(r))
        except ValueError:
            c.bad(f"unknown role {r!r} (one of {ROLE_NAMES})", key)
    return frozenset(roles)


# ---- one rota


@dataclass(slots=True)
class _RotaScope:
    """What parsing one rota needs: its role, the roster's people, its teams (person refs add teams)."""

    role: Role
    people: Mapping[str, Person]
    teams: dict[str, tuple[str, ...]]
    c: _Issues

    def person_ok(self, pid: Any, key: str) -> bool:
        """True if `pid` is a person of the roster holding this rota's role (else an issue)."""
        person = self.people.get(pid) if isinstance(pid, str) else None
        if person is None:
            self.c.bad(f"unknown person {pid!r}", key)
            return False
        if self.role not in person.roles:
            self.c.bad(f"person {pid!r} does not hold role {self.role.value}", key)
            return False
        return True

    def team(self, ref: Any, key: str) -> str:
        """A team id, or a person id standing for a team of one; '' (and an issue) when invalid."""
        if isinstance(ref, str) and ref in self.teams:
            return ref
        if isinstance(ref, str) and ref in self.people:
            if not self.person_ok(ref, key):
                return ""
            self.teams[ref] = (ref,)
            return ref
        self.c.bad(f"unknown team or person {ref!r}", key)
        return ""

    def day(self, raw: Any, key: str, names: list[str]) -> tuple[str, ...]:
        """One day of teams: a mapping shift -> team covering every shift, or one team for all shifts."""
        if not isinstance(raw, Mapping):
            return (self.team(raw, key),) * len(names)
        for k in raw:
            if k not in names:
                self.c.bad(f"unknown shift (shifts: {', '.join(names)})", f"{key}.{k}")
        missing = [n for n in names if n not in raw]
        if missing:
            self.c.bad(f"no team for shift {', '.join(missing)}", key)
            return ()
        return tuple(self.team(raw[n], f"{key}.{n}") for n in names)


def _parse_rota(
    raw: Any, key: str, role: Role, people: Mapping[str, Person], zone: ZoneInfo | None, c: _Issues
) -> Rota | None:
    if not isinstance(raw, Mapping):
        c.bad("a rota must be a mapping", key)
        return None
    before = c.count
    for k in raw:
        if k not in ROTA_KEYS:
            c.bad("unknown key", f"{key}.{k}")
    shifts = _parse_shifts(raw.get("shifts"), f"{key}.shifts", c)
    handover = DEFAULT_HANDOVER
    h = raw.get("handover_min", DEFAULT_HANDOVER.total_seconds() / 60)
    if isinstance(h, bool) or not isinstance(h, int | float) or not 0 <= h <= 24 * 60:
        c.bad("handover_min must be a number of minutes in 0..1440", f"{key}.handover_min")
    else:
        handover = timedelta(minutes=h)
    anchor = _date(raw.get("anchor"))
    if anchor is None:
        c.bad("anchor must be a date (YYYY-MM-DD), the first day of the cycle", f"{key}.anchor")
    scope = _RotaScope(role, people, {}, c)
    _parse_teams(raw.get("teams", {}), f"{key}.teams", scope)
    names = [s.name for s in shifts]
    cycle: tuple[tuple[str, ...], ...] = ()
    if ("rotate" in raw) == ("cycle" in raw):
        c.bad("give exactly one of rotate or cycle", key)
    elif "rotate" in raw:
        cycle = _parse_rotate(raw["rotate"], f"{key}.rotate", len(shifts), scope)
    else:
        cycle = _parse_cycle(raw["cycle"], f"{key}.cycle", names, scope)
    holidays = _parse_holidays(raw.get("holidays", []), f"{key}.holidays", names, scope)
    overrides = _parse_overrides(raw.get("overrides", []), f"{key}.overrides", zone, scope)
    if c.count > before or anchor is None or not shifts:
        return None
    try:
        return Rota(
            shifts=shifts,
            teams=MappingProxyType(scope.teams),
            cycle=cycle,
            anchor=anchor,
            handover=handover,
            holidays=MappingProxyType(holidays),
            overrides=overrides,
        )
    except RosterValueError as e:
        c.bad(str(e), key)
        return None


def _parse_shifts(raw: Any, key: str, c: _Issues) -> tuple[Shift, ...]:
    if not isinstance(raw, Mapping) or not raw:
        c.bad('shifts must be a mapping of name to "HH:MM-HH:MM"', key)
        return ()
    shifts = []
    for name, span in raw.items():
        m = SHIFT_RE.match(span) if isinstance(span, str) else None
        if not isinstance(name, str) or m is None:
            c.bad('shift must be name: "HH:MM-HH:MM" (end <= start: ends the next day)', f"{key}.{name}")
            continue
        h1, m1, h2, m2 = map(int, m.groups())
        shifts.append(Shift(name, time(h1, m1), time(h2, m2)))
    return tuple(shifts)


def _parse_teams(raw: Any, key: str, scope: _RotaScope) -> None:
    if not isinstance(raw, Mapping):
        scope.c.bad("teams must be a mapping of team id to a list of person ids", key)
        return
    for tid, members in raw.items():
        tkey = f"{key}.{tid}"
        if not isinstance(tid, str) or not TEAM_ID_RE.match(tid):
            scope.c.bad("team id must be 1-64 characters without spaces", tkey)
            continue
        if not isinstance(members, list) or not members:
            scope.c.bad("a team must be a non-empty list of person ids", tkey)
            continue
        if len(set(map(str, members))) != len(members):
            scope.c.bad("a person is listed twice", tkey)
        if all([scope.person_ok(m, tkey) for m in members]):  # a list: report every bad member
            scope.teams[tid] = tuple(members)


def _parse_cycle(raw: Any, key: str, names: list[str], scope: _RotaScope) -> tuple[tuple[str, ...], ...]:
    if not isinstance(raw, list) or not raw:
        scope.c.bad("cycle must be a non-empty list of days", key)
        return ()
    return tuple(scope.day(d, f"{key}[{i}]", names) for i, d in enumerate(raw))


def _parse_rotate(raw: Any, key: str, n_shifts: int, scope: _RotaScope) -> tuple[tuple[str, ...], ...]:
    if not isinstance(raw, Mapping) or set(raw) - {"teams", "days"}:
        scope.c.bad("rotate must be {teams: [...], days: N}", key)
        return ()
    refs, days = raw.get("teams"), raw.get("days", 1)
    if not isinstance(refs, list) or not refs:
        scope.c.bad("rotate.teams must be a non-empty list of teams or persons", f"{key}.teams")
        return ()
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        scope.c.bad("days must be a positive integer", f"{key}.days")
        return ()
    order = [scope.team(r, f"{key}.teams[{i}]") for i, r in enumerate(refs)]
    return rotation_cycle(order, days, max(n_shifts, 1))


def _parse_holidays(raw: Any, key: str, names: list[str], scope: _RotaScope) -> dict[date, tuple[str, ...]]:
    holidays: dict[date, tuple[str, ...]] = {}
    c = scope.c
    if not isinstance(raw, list):
        c.bad("holidays must be a list", key)
        return holidays
    for i, rh in enumerate(raw):
        hkey = f"{key}[{i}]"
        if not isinstance(rh, Mapping) or set(rh) - HOLIDAY_KEYS or ("team" in rh) == ("shifts" in rh):
            c.bad("a holiday is {dates: [...], team: T} or {dates: [...], shifts: {shift: team}}", hkey)
            continue
        entry = scope.day(rh.get("team", rh.get("shifts")), hkey, names)
        dates = rh.get("dates")
        if not isinstance(dates, list) or not dates:
            c.bad("dates must be a non-empty list of dates", f"{hkey}.dates")
            continue
        for d in dates:
            day = _date(d)
            if day is None:
                c.bad(f"not a date: {d!r}", f"{hkey}.dates")
            elif day in holidays:
                c.bad(f"{day} is listed twice", f"{hkey}.dates")
            else:
                holidays[day] = entry
    return holidays


def _parse_overrides(raw: Any, key: str, zone: ZoneInfo | None, scope: _RotaScope) -> tuple[Override, ...]:
    overrides: list[Override] = []
    c = scope.c
    if not isinstance(raw, list):
        c.bad("overrides must be a list", key)
        return ()
    for i, ro in enumerate(raw):
        okey = f"{key}[{i}]"
        if not isinstance(ro, Mapping):
            c.bad("an override must be a mapping", okey)
            continue
        before = c.count
        for k in ro:
            if k not in OVERRIDE_KEYS:
                c.bad("unknown key", f"{okey}.{k}")
        scope.person_ok(ro.get("person"), f"{okey}.person")
        if ro.get("replaces") is not None:
            scope.person_ok(ro.get("replaces"), f"{okey}.replaces")
        start = _instant(ro.get("from"), zone)
        end = _instant(ro.get("to"), zone)
        if start is None:
            c.bad("from must be a date-time (local to the roster unless it has an offset)", f"{okey}.from")
        if end is None:
            c.bad("to must be a date-time (local to the roster unless it has an offset)", f"{okey}.to")
        elif start is not None and not start < end:
            c.bad("to must be after from", f"{okey}.to")
        reason = ro.get("reason", "")
        if not isinstance(reason, str):
            c.bad("reason must be a string", f"{okey}.reason")
        if c.count == before and start is not None and end is not None:
            overrides.append(Override(ro["person"], start, end, ro.get("replaces"), reason))
    return tuple(overrides)


def _date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _instant(value: Any, zone: ZoneInfo | None) -> datetime | None:
    """A YAML date-time as UTC; without an offset it is wall time in the roster's zone."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime) or zone is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)
