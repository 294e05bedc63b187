"""The early-warning threshold to suggest per sensor kind, from a history of forecast probabilities.

The early warnings (alerts/engine/early_warning.py) raise a warning when a sensor's probability of reaching
a limit within its horizon has held at or above its kind's threshold for its kind's persistence.
Given that probability at each evaluation in *quiet* time (away from real excursions, so every
warning there is false), this picks the lowest threshold of a ladder whose warnings meet a target
rate: by default 1 per 100 quiet sensor-days, the goal of the early-warning bench
(../shared/tools/ewbench). The lowest such threshold is the most sensitive one that is still quiet
enough.

The probabilities come from the early warnings themselves (alerts/engine/early_warning.py gives one per
forecast sensor at each judgement): `hazmon tune` replays the same history through the service's
engine, early warnings and behaviour learner on event time (alerts/backtest.replay_probabilities),
records them (alerts/probability_log.ProbabilityRecorder, a `ProbabilityHistory`) and asks for a
threshold per kind, each kind with its own persistence (alerts/early_warning.WARN_PROFILES).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from alerts.metrics import DAY_MS

if TYPE_CHECKING:
    from alerts.tune import SensorTuning

THRESHOLD_LADDER: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
TARGET_PER_100_DAYS = 1.0  # false warnings per 100 quiet sensor-days (ewbench goal)
PERSISTENCE_S = 300.0  # the probability must hold this long before a warning, unless told per kind
LEAD_S = 86_400.0  # evaluations this long before a real excursion may rightly warn: not quiet (24 h horizon)
MIN_QUIET_DAYS = 3.0


@dataclass(frozen=True, slots=True)
class ProbabilitySeries:
    """One sensor's evaluations: the probability of reaching a limit within the horizon, at each time."""

    t_ms: np.ndarray  # (n,) int64, ascending
    p: np.ndarray  # (n,) float64 in 0..1; NaN = no verdict (counts as below any threshold)
    # evaluations before this time were made before the sensor had learned its behaviour (its warm-up:
    # the trend alone speaks, as a service that has run a while never does); None: no warm-up known
    learned_from_ms: int | None = None


class ProbabilityHistory(Protocol):
    """The early warnings' probabilities over the tuning window (alerts/probability_log.py records them)."""

    def probability_series(self, site: str, sensor: str) -> ProbabilitySeries | None:
        """The sensor's evaluations over the tuning window; None if it is not forecast."""
        ...


@dataclass(frozen=True, slots=True)
class ThresholdSuggestion:
    """The threshold for one group of sensors (one kind), with the evidence."""

    threshold: float | None  # None: too little quiet time, or no threshold of the ladder is quiet enough
    warnings: dict[float, int]  # threshold -> warnings it would have raised in the quiet time
    quiet_days: float  # sensor-days
    target_per_100_days: float
    reason: str
    persistence_s: float = PERSISTENCE_S  # how long a probability had to hold to count as a warning
    enough_quiet: bool = True  # False: too few quiet sensor-days to suggest anything


def count_warnings(
    series: Sequence[ProbabilitySeries], thresholds: Sequence[float], persistence_ms: int
) -> np.ndarray:
    """Warnings per threshold: runs of p >= threshold lasting `persistence_ms`, counted at their rising edge.

    A run is consecutive evaluations of one sensor at or above the threshold; it lasts from its first
    to its last evaluation. Returns (len(thresholds),) int64.
    """
    thr = np.asarray(thresholds, dtype=np.float64)
    if not series:
        return np.zeros(len(thr), dtype=np.int64)
    t = np.concatenate([s.t_ms for s in series]).astype(np.int64)  # (n,)
    p = np.concatenate([s.p for s in series]).astype(np.float64)
    first = np.zeros(len(t), dtype=bool)
    first[np.cumsum([0, *(len(s.t_ms) for s in series[:-1])])] = True
    last = np.r_[first[1:], True]
    with np.errstate(invalid="ignore"):
        above = p[:, None] >= thr[None, :]  # (n, L); NaN is never above
    rises = above & (first[:, None] | ~np.roll(above, 1, axis=0))
    falls = above & (last[:, None] | ~np.roll(above, -1, axis=0))
    # column-major nonzero: runs of one threshold in time order, starts and ends pair up
    rise_col, rise_row = np.nonzero(rises.T)
    _, fall_row = np.nonzero(falls.T)
    held = t[fall_row] - t[rise_row] >= persistence_ms
    return np.bincount(rise_col[held], minlength=len(thr)).astype(np.int64)


def suggest_warning_threshold(
    series: Sequence[ProbabilitySeries],
    quiet_days: float,
    *,
    ladder: Sequence[float] = THRESHOLD_LADDER,
    persistence_s: float = PERSISTENCE_S,
    target_per_100_days: float = TARGET_PER_100_DAYS,
    min_quiet_days: float = MIN_QUIET_DAYS,
) -> ThresholdSuggestion:
    """The lowest threshold of `ladder` whose warnings per 100 quiet sensor-days meet the target."""
    ladder = sorted(ladder)
    counts = count_warnings(series, ladder, int(persistence_s * 1000))
    warnings = dict(zip(ladder, counts.tolist(), strict=True))
    if quiet_days < min_quiet_days:
        return ThresholdSuggestion(
            None, warnings, quiet_days, target_per_100_days,
            f"{quiet_days:.1f} quiet sensor-days; at least {min_quiet_days:g} are needed", persistence_s,
            enough_quiet=False,
        )  # fmt: skip
    allowed = target_per_100_days * quiet_days / 100
    for thr, n in warnings.items():
        if n <= allowed:
            return ThresholdSuggestion(
                thr, warnings, quiet_days, target_per_100_days,
                f"{n} warnings in {quiet_days:.1f} quiet sensor-days at {thr:g}", persistence_s,
            )  # fmt: skip
    return ThresholdSuggestion(
        None, warnings, quiet_days, target_per_100_days,
        f"even {ladder[-1]:g} gives {warnings[ladder[-1]]} warnings in {quiet_days:.1f} quiet sensor-days",
        persistence_s,
    )  # fmt: skip


def _union_ms(spans: np.ndarray) -> np.ndarray:
    """Merge overlapping [start, end) rows of an (k, 2) int64 array."""
    if len(spans) == 0:
        return spans
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    reach = np.maximum.accumulate(spans[:, 1])
    new = np.r_[True, spans[1:, 0] > reach[:-1]]
    heads = np.flatnonzero(new)
    return np.column_stack([spans[heads, 0], reach[np.r_[heads[1:], len(spans)] - 1]])


def quiet_part(
    series: ProbabilitySeries,
    excursions_ms: Iterable[tuple[int, int]],
    observed_days: float,
    lead_s: float = LEAD_S,
) -> tuple[ProbabilitySeries, float]:
    """The series with evaluations near real excursions (from `lead_s` before each to its end) blanked
    (NaN, so no run spans them), and the quiet days left."""
    ex = np.asarray(list(excursions_ms), dtype=np.int64).reshape(-1, 2)
    busy = _union_ms(np.column_stack([ex[:, 0] - int(lead_s * 1000), ex[:, 1]]))
    if len(busy) == 0 or len(series.t_ms) == 0:
        return series, observed_days
    lo, hi = int(series.t_ms[0]), int(series.t_ms[-1])
    busy_ms = np.clip(busy[:, 1], lo, hi) - np.clip(busy[:, 0], lo, hi)
    at = np.searchsorted(busy[:, 0], series.t_ms, side="right") - 1
    inside = (at >= 0) & (series.t_ms < busy[np.maximum(at, 0), 1])
    quiet = ProbabilitySeries(series.t_ms, np.where(inside, np.nan, series.p))
    return quiet, max(observed_days - float(busy_ms.sum()) / DAY_MS, 0.0)


def warning_thresholds_by_kind(
    tunings: Iterable[SensorTuning], history: ProbabilityHistory, **kw
) -> dict[str, ThresholdSuggestion]:
    """One threshold per sensor kind, from the quiet part of each forecast sensor's probability history.

    `tunings` come from alerts.tune.tune over the same window (their real excursions and observed
    days); `kw` goes to suggest_warning_threshold, except that `persistence_s` may also be a mapping
    kind -> seconds (the early warnings' persistence differs per kind; a kind not in it gets
    PERSISTENCE_S).
    """
    lead_s = kw.pop("lead_s", LEAD_S)
    persistence = kw.pop("persistence_s", PERSISTENCE_S)

    def persistence_of(kind: str) -> float:
        return persistence.get(kind, PERSISTENCE_S) if isinstance(persistence, Mapping) else persistence

    groups: dict[str, tuple[list[ProbabilitySeries], list[float]]] = {}
    for tu in tunings:
        s = tu.sensor
        series = history.probability_series(s.site, s.id) if s.forecast else None
        if series is None:
            continue
        spans = list(tu.excursion_spans_ms)
        if series.learned_from_ms is not None and len(series.t_ms):
            # the warm-up is not quiet time: its trend-only warnings are not what the service will do
            spans.append((int(series.t_ms[0]), int(series.learned_from_ms)))
        quiet, days = quiet_part(series, spans, tu.observed_days, lead_s)
        got, day_list = groups.setdefault(s.kind, ([], []))
        got.append(quiet)
        day_list.append(days)
    return {
        kind: suggest_warning_threshold(got, sum(days), persistence_s=persistence_of(kind), **kw)
        for kind, (got, days) in groups.items()
    }
