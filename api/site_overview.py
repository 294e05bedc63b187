"""Per-site status for the control-room map: sensor counts, alarm counts, data age and a risk colour.

Pure: numpy arrays and Alarm objects in, arrays out; no I/O, no service. The slot -> site map is
built once (`SiteSlots`); each call makes one pass over the alarm list and a few array reductions,
so 2 000 sites with 100 000 sensors and 5 000 alarms take milliseconds.

Risk colour (DOMAIN.md §5: 红/橙/黄/蓝 = 重大/较大/一般/低 risk; GB 39496 5.5.4 orders them
blue < yellow < orange < red). A site takes the worst colour of the alarms on its operator list,
i.e. in UNACK, ACK or RTN_UNACK (a returned alarm still waiting for acknowledgement counts until
it is acknowledged). Per alarm:

    red     a CRITICAL-priority alarm (HH/LL of gas and oxygen detectors, and whatever else the
            engine rates critical), or an early warning of level FAILURE (inverse-velocity dam
            failure forecast), whatever its priority
    orange  a HIGH-priority process alarm (LL, L, H, HH, rate of change, vote, a discrete signal's
            state, a pond's warning level: orange is HIGH, red CRITICAL)
    yellow  a MEDIUM or LOW process alarm, any other early warning (a forecast, not a crossing),
            an instrument FAULT or STALE data (sensor or device) below CRITICAL
    blue    nothing on the list: normal

Alarms hidden by an overlay (SHELVED, SUPPRESSED, OUT_OF_SERVICE) are counted but do not colour the
site: hiding them is a deliberate operator or design decision recorded in the journal. Stale data
colours a site through the engine's STALE alarms (per-sensor `stale_after_s`), not through
`data_age_s`, which is shown as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from alerts.engine.conditions import ConditionKind, Priority
from alerts.engine.early_warning import FAILURE_LEVEL
from alerts.engine.lifecycle import Alarm, AlarmState

BLUE, YELLOW, ORANGE, RED = 0, 1, 2, 3
COLOUR_NAMES = ("blue", "yellow", "orange", "red")

#: the counted states, in column order of `SiteOverview.counts`
COUNTED_STATES: tuple[AlarmState, ...] = (
    AlarmState.UNACK,
    AlarmState.ACK,
    AlarmState.RTN_UNACK,
    AlarmState.SHELVED,
    AlarmState.SUPPRESSED,
    AlarmState.OUT_OF_SERVICE,
)
_STATE_COL = {s: i for i, s in enumerate(COUNTED_STATES)}
#: states on the operator's list: the only ones that colour a site
LISTED_STATES = frozenset({AlarmState.UNACK, AlarmState.ACK, AlarmState.RTN_UNACK})
_K = ConditionKind
_PROCESS_ALARM_KINDS = frozenset(
    {_K.LL, _K.L, _K.H, _K.HH, _K.ROC, _K.VOTE, _K.WARNING_LEVEL, _K.STATE, _K.MISMATCH}
)


def alarm_colour(a: Alarm) -> int:
    """The colour (BLUE..RED) one alarm on the operator list gives its site; see the module docstring."""
    kind = a.kind
    if a.priority >= Priority.CRITICAL:
        return RED
    if kind is ConditionKind.EARLY_WARNING:
        return RED if a.level == FAILURE_LEVEL else YELLOW
    if kind in _PROCESS_ALARM_KINDS:
        return ORANGE if a.priority >= Priority.HIGH else YELLOW
    return YELLOW  # FAULT, STALE


@dataclass(frozen=True, slots=True)
class SiteSlots:
    """The slot -> site map, built once per registry (SensorIndex.site_of_slot and site_ids)."""

    site_ids: tuple[str, ...]
    site_of_slot: np.ndarray  # (n_sensors,) int: index into site_ids
    sensor_count: np.ndarray  # (n_sites,) int64
    site_pos: dict[str, int]

    @classmethod
    def build(cls, site_ids: Sequence[str], site_of_slot: np.ndarray) -> SiteSlots:
        site_of_slot = np.asarray(site_of_slot, dtype=np.intp)
        n = len(site_ids)
        return cls(
            site_ids=tuple(site_ids),
            site_of_slot=site_of_slot,
            sensor_count=np.bincount(site_of_slot, minlength=n).astype(np.int64),
            site_pos={s: i for i, s in enumerate(site_ids)},
        )


@dataclass(frozen=True, slots=True)
class SiteOverview:
    """Columns, one row per site in `SiteSlots.site_ids` order."""

    sensor_count: np.ndarray  # (n_sites,) int64
    counts: np.ndarray  # (n_sites, len(COUNTED_STATES)) int64
    worst_priority: np.ndarray  # (n_sites,) int8: 0 = none on the list, else Priority value
    colour: np.ndarray  # (n_sites,) int8: BLUE..RED
    newest_ms: np.ndarray  # (n_sites,) int64: newest reading time, -1 if never

    def data_age_s(self, i: int, now_ms: int) -> float | None:
        t = int(self.newest_ms[i])
        return None if t < 0 else max(0.0, (now_ms - t) / 1000.0)


def site_overview(slots: SiteSlots, last_t: np.ndarray, alarms: Iterable[Alarm]) -> SiteOverview:
    """Aggregate per site: newest reading time from `last_t` (-1 = never), alarm counts and colour.

    `alarms` is the book's current list (any states; NORMAL ones and alarms of unknown sites are
    ignored). One pass over the alarms, then bincount / maximum.at over compact arrays.
    """
    n = len(slots.site_ids)
    newest = np.full(n, -1, dtype=np.int64)
    if len(last_t):
        np.maximum.at(newest, slots.site_of_slot, np.asarray(last_t, dtype=np.int64))
    site_idx: list[int] = []
    state_col: list[int] = []
    listed_site: list[int] = []
    listed_prio: list[int] = []
    listed_colour: list[int] = []
    pos = slots.site_pos
    for a in alarms:
        i = pos.get(a.key[0])
        state = a.state
        col = _STATE_COL.get(state)
        if i is None or col is None:
            continue
        site_idx.append(i)
        state_col.append(col)
        if state in LISTED_STATES:
            listed_site.append(i)
            listed_prio.append(int(a.priority))
            listed_colour.append(alarm_colour(a))
    k = len(COUNTED_STATES)
    flat = np.asarray(site_idx, dtype=np.intp) * k + np.asarray(state_col, dtype=np.intp)
    counts = np.bincount(flat, minlength=n * k).reshape(n, k).astype(np.int64)
    worst = np.zeros(n, dtype=np.int8)
    colour = np.zeros(n, dtype=np.int8)
    if listed_site:
        at = np.asarray(listed_site, dtype=np.intp)
        np.maximum.at(worst, at, np.asarray(listed_prio, dtype=np.int8))
        np.maximum.at(colour, at, np.asarray(listed_colour, dtype=np.int8))
    return SiteOverview(slots.sensor_count, counts, worst, colour, newest)
