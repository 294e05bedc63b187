"""Duty roster core: who is on duty across shift changes, rotas, holidays, overrides, jurisdiction, DST."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alerts.notify.roster import (
    Jurisdiction,
    Override,
    Person,
    Role,
    Roster,
    RosterValueError,
    Rota,
    Shift,
    duty_for_site,
    duty_lookup,
    find_duty,
    next_change,
    on_duty,
    on_duty_all,
    rotation_cycle,
)
from tests.support.profile import examples

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = Shift("day", time(8), time(20))
NIGHT = Shift("night", time(20), time(8))
MIN = timedelta(minutes=1)


# ---- helpers


def person(pid: str, *roles: Role) -> Person:
    n = sum(map(ord, pid)) % 1000
    return Person(pid, f"值班{pid}", f"+8613800138{n:03d}", roles=frozenset(roles))


def rota(
    teams: dict[str, list[str]],
    cycle: tuple[tuple[str, ...], ...],
    shifts: tuple[Shift, ...] = (DAY, NIGHT),
    anchor: date = date(2026, 11, 2),
    handover: timedelta = timedelta(minutes=15),
    **kw,
) -> Rota:
    return Rota(
        shifts=shifts,
        teams=MappingProxyType({k: tuple(v) for k, v in teams.items()}),
        cycle=cycle,
        anchor=anchor,
        handover=handover,
        **kw,
    )


def roster(rotas: dict[Role, Rota], tz: str = "Asia/Shanghai", rid: str = "r", **kw) -> Roster:
    ids = {p for r in rotas.values() for m in r.teams.values() for p in m}
    ids |= {o.person for r in rotas.values() for o in r.overrides}
    return Roster(
        rid, MappingProxyType({p: person(p) for p in sorted(ids)}), MappingProxyType(rotas), tz, **kw
    )


def local(tz: str, *args: int) -> datetime:
    """A local wall time in `tz` as a UTC instant."""
    return datetime(*args, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def cst(*args: int) -> datetime:
    return local("Asia/Shanghai", *args)


def ids(people: list[Person]) -> list[str]:
    return [p.id for p in people]


FOUR = {"A": ["a"], "B": ["b"], "C": ["c"], "D": ["d"]}
FOUR_TEAM = rota(FOUR, rotation_cycle("ABCD", days=2, n_shifts=2))  # 四班两倒 from Monday 2 Nov 2026


# ---- model


def test_person_phone_must_be_e164() -> None:
    assert person("a").phone.startswith("+86138")
    with pytest.raises(RosterValueError, match=r"E\.164"):
        Person("x", "张三", "13800138000")
    with pytest.raises(RosterValueError, match="language"):
        Person("x", "张三", "+8613800138000", language="fr")


def test_roles_carry_the_chinese_titles() -> None:
    assert Role.PRINCIPAL.title_zh == "主要负责人"
    assert Role.TECHNICAL_LEAD.title_zh == "技术负责人"
    assert Role.OPERATOR.title_zh == "操作负责人"
    assert Role("regulator_duty") is Role.REGULATOR_DUTY
    assert Role.OPERATOR.title("en") == "operations lead"
    assert Role.REGULATOR_DUTY.title() == "监管部门值班人员"


def test_rotation_cycle_is_four_team_two_day_two_night() -> None:
    cycle = rotation_cycle("ABCD", days=2, n_shifts=2)
    works = ["D" if day[0] == "A" else "N" if day[1] == "A" else "-" for day in cycle]
    assert "".join(works) == "DDNN----"


def test_rota_refuses_unknown_team_and_roster_refuses_wrong_role() -> None:
    with pytest.raises(RosterValueError, match="team 'Z'"):
        rota(FOUR, (("A", "Z"),))
    with pytest.raises(RosterValueError, match="one team per shift"):
        rota(FOUR, (("A",),))
    tech = Person("t", "技术员", "+8613800138001", roles=frozenset({Role.TECHNICAL_LEAD}))
    with pytest.raises(RosterValueError, match="does not hold role operator"):
        Roster("r", {"t": tech}, {Role.OPERATOR: rota({"T": ["t"]}, (("T", "T"),))})


# ---- shift change and handover


def test_shift_change_before_during_and_after_handover() -> None:
    r = roster({Role.OPERATOR: FOUR_TEAM})
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 19, 59))) == ["a"]
    # night team D takes over at 20:00; A stays 15 min for the handover (newest shift listed first)
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 20, 0))) == ["d", "a"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 20, 14, 59))) == ["d", "a"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 20, 15))) == ["d"]
    # the night shift belongs to the day it starts on: still D at 07:59, then A again with D handing over
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 3, 7, 59))) == ["d"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 3, 8, 5))) == ["a", "d"]
    # third day: block 2, B on days, A moves to nights
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 4, 12))) == ["b"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 4, 23))) == ["a"]


def test_next_change_reports_shift_start_and_handover_end() -> None:
    r = roster({Role.OPERATOR: FOUR_TEAM})
    assert next_change(r, Role.OPERATOR, cst(2026, 11, 2, 12)) == cst(2026, 11, 2, 20)
    assert next_change(r, Role.OPERATOR, cst(2026, 11, 2, 20)) == cst(2026, 11, 2, 20, 15)
    # D works both nights of the block: its 08:00 handover start is a change, the next night start is not
    assert next_change(r, Role.OPERATOR, cst(2026, 11, 3, 20, 15)) == cst(2026, 11, 4, 8)


def test_queries_refuse_naive_datetimes() -> None:
    r = roster({Role.OPERATOR: FOUR_TEAM})
    with pytest.raises(ValueError, match="timezone-aware"):
        on_duty(r, Role.OPERATOR, datetime(2026, 11, 2, 12))


def test_role_without_rota_has_nobody_and_no_change() -> None:
    r = roster({Role.OPERATOR: FOUR_TEAM})
    assert on_duty(r, Role.PRINCIPAL, cst(2026, 11, 2, 12)) == []
    assert next_change(r, Role.PRINCIPAL, cst(2026, 11, 2, 12)) is None
    assert list(on_duty_all(r, cst(2026, 11, 2, 12))) == [Role.OPERATOR]


def test_constant_duty_never_changes() -> None:
    always = rota({"P": ["p"]}, (("P",),), shifts=(Shift("all", time(0), time(0)),))
    r = roster({Role.PRINCIPAL: always})
    assert ids(on_duty(r, Role.PRINCIPAL, cst(2026, 1, 1, 3))) == ["p"]
    assert next_change(r, Role.PRINCIPAL, cst(2026, 1, 1, 3)) is None


# ---- weekly rota, holidays, overrides


def test_weekly_rota_wraps_around_and_works_before_the_anchor() -> None:
    weekly = rota(
        {"L": ["li"], "W": ["wang"], "Z": ["zhao"]},
        rotation_cycle("LWZ", days=7, n_shifts=1),
        shifts=(Shift("week", time(8, 30), time(8, 30)),),
    )
    r = roster({Role.REGULATOR_DUTY: weekly})
    at = [cst(2026, 11, d, 12) for d in (2, 8, 9, 16, 23)]
    assert [ids(on_duty(r, Role.REGULATOR_DUTY, t)) for t in at] == [
        ["li"],
        ["li"],
        ["wang"],
        ["zhao"],
        ["li"],
    ]
    # Monday 08:30 of week 4 wraps back to li, with zhao handing over until 08:45
    assert ids(on_duty(r, Role.REGULATOR_DUTY, cst(2026, 11, 23, 8, 40))) == ["li", "zhao"]
    assert ids(on_duty(r, Role.REGULATOR_DUTY, cst(2026, 10, 26, 12))) == [
        "zhao"
    ]  # the week before the anchor
    assert next_change(r, Role.REGULATOR_DUTY, cst(2026, 11, 2, 12)) == cst(2026, 11, 9, 8, 30)


def test_holiday_teams_replace_the_cycle_for_the_shifts_starting_that_day() -> None:
    teams = {**FOUR, "H": ["h1", "h2"]}
    holidays = MappingProxyType({date(2026, 11, 3): ("H", "H")})
    r = roster({Role.OPERATOR: rota(teams, rotation_cycle("ABCD", 2, 2), holidays=holidays)})
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 3, 8, 5))) == ["h1", "h2", "d"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 3, 12))) == ["h1", "h2"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 4, 7))) == ["h1", "h2"]  # the holiday's night shift
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 4, 8, 10))) == ["b", "h1", "h2"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 4, 9))) == ["b"]


def test_override_replaces_a_person_only_while_it_lasts() -> None:
    swap = Override("x", cst(2026, 11, 2, 10), cst(2026, 11, 2, 14), replaces="a", reason="病假")
    r = roster({Role.OPERATOR: rota({**FOUR, "X": ["x"]}, rotation_cycle("ABCD", 2, 2), overrides=(swap,))})
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 9, 59))) == ["a"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 10))) == ["x"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 14))) == ["a"]
    assert next_change(r, Role.OPERATOR, cst(2026, 11, 2, 9)) == cst(2026, 11, 2, 10)
    assert next_change(r, Role.OPERATOR, cst(2026, 11, 2, 10)) == cst(2026, 11, 2, 14)
    # A is not on duty on the third day, so the same swap then changes nothing
    late = Override("x", cst(2026, 11, 4, 10), cst(2026, 11, 4, 14), replaces="a")
    r2 = roster({Role.OPERATOR: rota({**FOUR, "X": ["x"]}, rotation_cycle("ABCD", 2, 2), overrides=(late,))})
    assert ids(on_duty(r2, Role.OPERATOR, cst(2026, 11, 4, 11))) == ["b"]


def test_override_can_add_a_person() -> None:
    extra = Override("x", cst(2026, 11, 2, 19), cst(2026, 11, 2, 21), reason="typhoon watch")
    r = roster({Role.OPERATOR: rota({**FOUR, "X": ["x"]}, rotation_cycle("ABCD", 2, 2), overrides=(extra,))})
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 20, 5))) == ["d", "a", "x"]
    assert ids(on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 21))) == ["d"]


def test_override_needs_aware_ordered_times() -> None:
    with pytest.raises(RosterValueError, match="end after"):
        Override("x", cst(2026, 1, 1), cst(2026, 1, 1))
    with pytest.raises(RosterValueError, match="aware"):
        Override("x", datetime(2026, 1, 1), datetime(2026, 1, 2))


# ---- jurisdiction


@dataclass(frozen=True)
class FakeSite:
    roster: str | None
    district: str | None
    city: str | None


def test_regulator_duty_is_found_by_district_then_city() -> None:
    office_hours = (Shift("office", time(8, 30), time(17, 30)),)
    district = roster(
        {Role.REGULATOR_DUTY: rota({"Q": ["qian"]}, (("Q",),), shifts=office_hours)},
        rid="regulator:huizhou/dayawan",
        jurisdiction=Jurisdiction("惠州市", "大亚湾区"),
    )
    city = roster(
        {Role.REGULATOR_DUTY: rota({"S": ["sun"]}, (("S",),), shifts=(Shift("all", time(8), time(8)),))},
        rid="regulator:huizhou",
        jurisdiction=Jurisdiction("惠州市"),
    )
    site_roster = roster({Role.OPERATOR: FOUR_TEAM}, rid="dayawan-duty")
    rosters = {r.id: r for r in (district, city, site_roster)}
    dayawan = FakeSite("dayawan-duty", "大亚湾区", "惠州市")
    huidong = FakeSite(None, "惠东县", "惠州市")
    noon, night = cst(2026, 11, 2, 12), cst(2026, 11, 2, 22)
    assert ids(duty_for_site(dayawan, rosters, Role.REGULATOR_DUTY, noon)) == ["qian"]
    found = find_duty(dayawan, rosters, Role.REGULATOR_DUTY, night)  # district office closed: the city's
    assert found is not None and found[0].id == "regulator:huizhou" and ids(found[1]) == ["sun"]
    assert ids(duty_for_site(huidong, rosters, Role.REGULATOR_DUTY, noon)) == ["sun"]
    assert ids(duty_for_site(dayawan, rosters, Role.OPERATOR, noon)) == ["a"]
    assert duty_for_site(huidong, rosters, Role.OPERATOR, noon) == []
    assert duty_for_site(FakeSite(None, "金湾区", "珠海市"), rosters, Role.REGULATOR_DUTY, noon) == []


def test_duty_lookup_answers_by_site_id_role_name_and_utc_ms() -> None:
    site_roster = roster({Role.OPERATOR: FOUR_TEAM}, rid="dayawan-duty")
    lookup = duty_lookup(
        {"dayawan-srs-01": FakeSite("dayawan-duty", "大亚湾区", "惠州市")}, {"dayawan-duty": site_roster}
    )
    noon_ms = int(cst(2026, 11, 2, 12).timestamp() * 1000)
    assert ids(lookup("dayawan-srs-01", "operator", noon_ms)) == ["a"]
    assert lookup("unknown-site", "operator", noon_ms) == []
    with pytest.raises(ValueError, match="'cook'"):
        lookup("dayawan-srs-01", "cook", noon_ms)


# ---- DST (a Chinese zone has none; sites abroad or tests in other zones must still be right)


@pytest.mark.parametrize(
    ("tz", "night_start_local", "night_start_utc", "next_day_utc", "hours"),
    [
        ("Europe/Berlin", (2026, 3, 28), datetime(2026, 3, 28, 19, tzinfo=UTC), datetime(2026, 3, 29, 6), 11),
        (
            "Europe/Berlin",
            (2026, 10, 24),
            datetime(2026, 10, 24, 18, tzinfo=UTC),
            datetime(2026, 10, 25, 7),
            13,
        ),
        ("America/New_York", (2026, 3, 7), datetime(2026, 3, 8, 1, tzinfo=UTC), datetime(2026, 3, 8, 12), 11),
        (
            "America/New_York",
            (2026, 10, 31),
            datetime(2026, 11, 1, 0, tzinfo=UTC),
            datetime(2026, 11, 1, 13),
            13,
        ),
    ],
)
def test_night_shift_on_a_dst_night_is_11_or_13_hours(
    tz: str,
    night_start_local: tuple[int, int, int],
    night_start_utc: datetime,
    next_day_utc: datetime,
    hours: int,
) -> None:
    y, m, d = night_start_local
    morning = next_day_utc.replace(tzinfo=UTC)
    assert morning - night_start_utc == timedelta(hours=hours)
    two = rota({"A": ["a"], "B": ["b"]}, (("A", "B"),), anchor=date(y, m, d))
    r = roster({Role.OPERATOR: two}, tz=tz)
    assert local(tz, y, m, d, 20) == night_start_utc
    assert ids(on_duty(r, Role.OPERATOR, night_start_utc - MIN)) == ["a"]
    assert ids(on_duty(r, Role.OPERATOR, night_start_utc + timedelta(minutes=20))) == ["b"]
    assert next_change(r, Role.OPERATOR, night_start_utc + timedelta(minutes=20)) == morning
    assert ids(on_duty(r, Role.OPERATOR, morning - MIN)) == ["b"]
    assert ids(on_duty(r, Role.OPERATOR, morning)) == ["a", "b"]
    assert ids(on_duty(r, Role.OPERATOR, morning + timedelta(minutes=15))) == ["a"]


@pytest.mark.parametrize("night", [date(2026, 3, 28), date(2026, 10, 24)])
def test_boundary_inside_the_dst_hour_leaves_no_gap_and_no_double(night: date) -> None:
    # shifts change at 02:30, a wall time that is skipped (March) or repeated (October) in Berlin
    shifts = (Shift("late", time(14, 30), time(2, 30)), Shift("early", time(2, 30), time(14, 30)))
    r = roster(
        {Role.OPERATOR: rota({"A": ["a"], "B": ["b"]}, (("A", "B"),), shifts, handover=timedelta(0))},
        "Europe/Berlin",
    )
    t = local("Europe/Berlin", night.year, night.month, night.day, 12)
    seen: list[str] = []
    while t < local("Europe/Berlin", night.year, night.month, night.day + 1, 16):
        duty = ids(on_duty(r, Role.OPERATOR, t))
        assert len(duty) == 1, t
        if not seen or seen[-1] != duty[0]:
            seen.append(duty[0])
        t += MIN
    assert seen == ["b", "a", "b", "a"]  # each handover happens once


# ---- properties


ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@st.composite
def covering_rosters(draw: st.DrawFn) -> Roster:
    """A roster whose every rota tiles the day, with random teams, holidays and overrides."""
    n_shifts = draw(st.integers(1, 3))
    starts = sorted(draw(st.sets(st.integers(0, 24 * 4 - 1), min_size=n_shifts, max_size=n_shifts)))
    times = [time(q // 4, q % 4 * 15) for q in starts]
    shifts = tuple(Shift(f"s{i}", times[i], times[(i + 1) % n_shifts]) for i in range(n_shifts))
    n_teams = draw(st.integers(1, 4))
    names = "ABCD"[:n_teams]
    teams = {t: [t.lower()] for t in names} | {"H": ["h"]}
    cycle = rotation_cycle(names, draw(st.integers(1, 7)), n_shifts)
    anchor = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 364)))
    holidays = {anchor + timedelta(days=draw(st.integers(0, 30))): ("H",) * n_shifts}
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 400 * 24 * 60)))
    length = timedelta(minutes=draw(st.integers(1, 3 * 24 * 60)))
    swap = Override("x", start, start + length, replaces=draw(st.sampled_from(["a", "h", None])))
    handover = timedelta(minutes=draw(st.sampled_from([0, 15, 30, 90])))
    rt = rota(
        {**teams, "X": ["x"]},
        cycle,
        shifts,
        anchor,
        handover,
        holidays=MappingProxyType(holidays),
        overrides=(swap,),
    )
    return roster({Role.OPERATOR: rt, Role.REGULATOR_DUTY: rt}, tz=draw(st.sampled_from(ZONES)))


instants = st.integers(0, 366 * 24 * 3600).map(
    lambda s: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s)
)


@settings(max_examples=examples(120), deadline=None)
@given(covering_rosters(), instants)
def test_a_rota_covering_24h_always_has_someone_on_duty(r: Roster, at: datetime) -> None:
    for role, people in on_duty_all(r, at).items():
        assert r.rotas[role].covers_day
        assert people, (role, at)


@settings(max_examples=examples(80), deadline=None)
@given(covering_rosters(), instants, st.lists(st.floats(0, 1, exclude_max=True), min_size=5, max_size=5))
def test_duty_changes_only_at_the_instants_next_change_reports(
    r: Roster, at: datetime, fractions: list[float]
) -> None:
    before = ids(on_duty(r, Role.OPERATOR, at))
    change = next_change(r, Role.OPERATOR, at)
    if change is None:  # only possible for a single team with no holiday or override ahead
        later = [at + timedelta(days=d) for d in (1, 7, 40)]
        assert all(ids(on_duty(r, Role.OPERATOR, t)) == before for t in later)
        return
    assert change > at
    gap = change - at
    for f in fractions:
        t = min(at + gap * f, change - timedelta(microseconds=1))  # float products round to the microsecond
        assert ids(on_duty(r, Role.OPERATOR, t)) == before, (at, t, change)
    assert ids(on_duty(r, Role.OPERATOR, change - timedelta(microseconds=1))) == before
    assert ids(on_duty(r, Role.OPERATOR, change)) != before


DST_NIGHTS = [
    ("Europe/Berlin", datetime(2026, 3, 29, 1, tzinfo=UTC)),
    ("Europe/Berlin", datetime(2026, 10, 25, 1, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, tzinfo=UTC)),  # a 30-minute DST step
]


@settings(max_examples=examples(80), deadline=None)
@given(
    st.sets(st.integers(6, 14) | st.integers(0, 24 * 4 - 1), min_size=2, max_size=4),  # 01:30-03:30 often
    st.sampled_from(DST_NIGHTS),
    st.integers(-3 * 3600, 3 * 3600),
)
@example({6, 9, 12}, DST_NIGHTS[0], 0)  # 01:30, 02:15 (skipped), 03:00: the 02:15 shift is empty
def test_near_a_dst_change_exactly_one_shift_is_on_at_any_instant(
    quarters: set[int], night: tuple[str, datetime], offset_s: int
) -> None:
    # boundaries every quarter hour, often inside the skipped or repeated hour; one team per shift
    starts = sorted(quarters)
    times = [time(q // 4, q % 4 * 15) for q in starts]
    shifts = tuple(Shift(f"s{i}", times[i], times[(i + 1) % len(times)]) for i in range(len(times)))
    names = [f"T{i}" for i in range(len(shifts))]
    tz, transition = night
    r = roster(
        {
            Role.OPERATOR: rota(
                {n: [n.lower()] for n in names}, (tuple(names),), shifts, handover=timedelta(0)
            )
        },
        tz,
    )
    at = transition + timedelta(seconds=offset_s)
    assert len(on_duty(r, Role.OPERATOR, at)) == 1, at
