"""Response models of the control-room read side (api/routers/sites.py); conversion lives here too."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from alerts.engine.conditions import Priority
from alerts.engine.lifecycle import Alarm, local_iso
from api.schemas import PriorityName
from sensors.model import Limits, Sensor, Site

RiskColour = Literal["blue", "yellow", "orange", "red"]


def priority_name(p: int) -> PriorityName | None:
    return None if p <= 0 else Priority(p).name.lower()  # type: ignore[return-value]


class LocationPublic(BaseModel):
    lat: float
    lon: float


class AlarmCountsPublic(BaseModel):
    """Alarms of the site by state; the first three are the operator's list."""

    unack: int
    ack: int
    rtn_unack: int
    shelved: int
    suppressed: int
    out_of_service: int


class SitePublic(BaseModel):
    id: str
    name: str
    kind: str
    grade: int
    city: str | None
    district: str | None
    timezone: str
    location: LocationPublic | None
    sensor_count: int
    alarm_counts: AlarmCountsPublic
    worst_priority: PriorityName | None  # highest priority on the operator's list, None if empty
    risk_colour: RiskColour
    data_age_s: float | None  # seconds since the site's newest reading; None if never heard

    @staticmethod
    def base(site: Site) -> dict:
        loc = site.location
        return {
            "id": site.id,
            "name": site.name,
            "kind": site.kind,
            "grade": site.grade,
            "city": site.city,
            "district": site.district,
            "timezone": site.timezone,
            "location": None if loc is None else LocationPublic(lat=loc.lat, lon=loc.lon),
        }


class SitesPublic(BaseModel):
    data: list[SitePublic]
    count: int
    time_ms: int  # when the overview was computed (data ages are relative to it)


class LimitsPublic(BaseModel):
    ll: float | None
    l: float | None  # noqa: E741 - ISA-18.2 calls it L
    h: float | None
    hh: float | None

    @classmethod
    def from_limits(cls, lim: Limits) -> LimitsPublic:
        return cls(ll=lim.ll, l=lim.l, h=lim.h, hh=lim.hh)


class SensorAlarmPublic(BaseModel):
    """An alarm of the sensor (or its device or vote group) that is not NORMAL."""

    alarm_id: str
    scope: str
    kind: str
    level: str
    state: str
    priority: PriorityName
    active: bool
    acked: bool

    @classmethod
    def from_alarm(cls, a: Alarm) -> SensorAlarmPublic:
        return cls(
            alarm_id=a.alarm_id,
            scope=a.scope,
            kind=a.key[3],
            level=a.level,
            state=a.state.value,
            priority=a.priority.name.lower(),  # type: ignore[arg-type]
            active=a.active,
            acked=a.acked,
        )


class SensorPublic(BaseModel):
    id: str
    name: str
    kind: str
    unit: str
    range: tuple[float, float]
    limits: LimitsPublic
    device: str | None
    group: str | None
    forecast: bool
    value: float | None  # latest accepted value; None if never heard (or not a number)
    time_ms: int | None
    time: str | None  # local ISO 8601 in the site's time zone
    data_age_s: float | None
    alarms: list[SensorAlarmPublic]
    states: list[str] | None = None  # a discrete signal's state names (codes 0, 1, ...), else null

    @classmethod
    def from_sensor(
        cls,
        s: Sensor,
        tz: str,
        value: float | None,
        time_ms: int | None,
        now_ms: int,
        alarms: list[SensorAlarmPublic],
    ) -> SensorPublic:
        return cls(
            id=s.id,
            name=s.name,
            kind=s.kind,
            unit=s.unit,
            range=s.range,
            limits=LimitsPublic.from_limits(s.limits),
            device=s.device,
            group=s.group,
            forecast=s.forecast,
            value=value,
            time_ms=time_ms,
            time=None if time_ms is None else local_iso(time_ms, tz),
            data_age_s=None if time_ms is None else max(0.0, (now_ms - time_ms) / 1000.0),
            alarms=alarms,
            states=list(s.states) if s.states else None,
        )


class SiteDetailPublic(SitePublic):
    sensors: list[SensorPublic]


class HistoryColumns(BaseModel):
    """Points as columns (cheap for charts); raw: value and quality, 1m: min, mean, max and count."""

    t_ms: list[int]
    value: list[float | None] | None = None
    quality: list[int | None] | None = None
    min: list[float | None] | None = None
    mean: list[float | None] | None = None
    max: list[float | None] | None = None
    count: list[int | None] | None = None


class AlarmMarkerPublic(BaseModel):
    """A journaled raise, return to normal or clear of one of the sensor's alarms, for a chart."""

    time_ms: int
    time: str
    type: str
    alarm_id: str
    kind: str
    level: str | None
    priority: PriorityName | None
    value: float | None
    limit: float | None


class SensorHistoryPublic(BaseModel):
    site: str
    sensor: str
    unit: str
    start_ms: int
    end_ms: int
    start: str
    end: str
    resolution: Literal["raw", "1m"]
    points: int
    truncated: bool  # the point limit was reached: the series ends before `end`
    series: HistoryColumns
    limits: LimitsPublic
    alarms: list[AlarmMarkerPublic]
    states: list[str] | None = None  # a discrete signal's state names (codes 0, 1, ...), else null


class ComplianceDayPublic(BaseModel):
    day: str  # the site's local date, YYYY-MM-DD
    highest: float  # the highest value of the day (of the 1-minute maxima)
    compliant: bool  # highest <= limit
    minutes: int  # minutes of the day with a value


class CompliancePublic(BaseModel):
    """An exposure sensor's daily compliance (sensors/exposure.py): each local day, did it stay
    at or under its limit?"""

    site: str
    sensor: str
    detector: str  # the toxic-gas detector it is computed from
    unit: str
    limit: float
    timezone: str
    start_ms: int
    end_ms: int
    days: list[ComplianceDayPublic]


class ForecastPublic(BaseModel):
    """The active early warning of a sensor, as the engine raised it; `active: false` if none."""

    active: bool
    forecast_enabled: bool  # the registry asks for forecasts on this sensor
    alarm_id: str | None = None
    state: str | None = None
    level: str | None = None  # the limit forecast to be crossed (H, HH, ...) or FAILURE
    priority: PriorityName | None = None
    message: str | None = None
    value: float | None = None
    limit: float | None = None
    eta_ms: int | None = None
    eta_low_ms: int | None = None
    eta_high_ms: int | None = None
    eta: str | None = None
    eta_low: str | None = None
    eta_high: str | None = None
    raised_ms: int | None = None
    updated_ms: int | None = None
    # the active warning's evidence (docs/contracts.md §3 `forecast`)
    probability: float | None = None  # chance of reaching `limit` within `horizon_s` when raised/updated
    horizon_s: float | None = None
    model: str | None = None  # trend | reverting | creep
    trend_per_h: float | None = None
    # what the forecaster knows now, warning or not
    current_probability: float | None = None  # the chance at the sensor's last judgement
    threshold: float | None = None  # the chance at which its kind warns (after persistence)
    learned: str | None = None  # none | learning | mature: the sensor's learned behaviour
    learned_at: str | None = None
    normal_lo: float | None = None  # the sensor's normal range at this time of day and week
    normal_hi: float | None = None


Colour = Literal["BLUE", "YELLOW", "ORANGE", "RED"]


class WarningPointPublic(BaseModel):
    """One monitored point of an item: its colour now (null: none) and its latest value."""

    sensor: str
    level: Colour | None
    value: float | None
    heard: bool  # it has reported since hazmon started


class WarningItemPublic(BaseModel):
    """A monitored item (points of one type): its colour, from its points and the count rule."""

    id: str
    name: str
    level: Colour | None
    points: list[WarningPointPublic]


class WarningLevelsPublic(BaseModel):
    """A tailings pond's warning levels now (GB 39496-2020 5.5.4): the pond, its items, their points,
    and the pond's alarm (one incident whatever its colour) if it is on the list."""

    site: str
    level: Colour | None
    ready: bool  # every point has reported since start (or its stale time passed): the colour is whole
    items: list[WarningItemPublic]
    alarm_id: str | None = None
    state: str | None = None
    message: str | None = None
