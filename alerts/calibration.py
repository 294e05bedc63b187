"""Calibration of early warnings in a backtest: did what the forecasts said come true?

A warning says "the chance of reaching this limit within the horizon is p, between eta_low and eta_high"
(the 10 % and 90 % points of the crossing time). A backtest knows what happened next, so it can check:

- **reliability**: the forecasts' probabilities, binned, against how often the limit was really reached
  within the horizon. Sampled from every judgement with a target limit, at most once per
  ``min(1 h, horizon / 4)`` per sensor, so a long quiet stretch does not drown the table;
- **band coverage**: a band says when the crossing comes *if it comes within the horizon* (its 10 %
  and 90 % points given a crossing within the horizon: what the warning claims); for the warnings
  raised that were followed by a crossing within their horizon, and for every sampled judgement
  holding a warning that was, whether it fell inside (nominal 80 %). The first crossing after the
  forecast counts; one after the horizon is a warning that did not come true (reliability counts it).

Outcomes come from the readings themselves (the first reading at or beyond the limit); a forecast whose
horizon (or band) reaches past the end of the data without a crossing has no known outcome and is left
out. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from alerts.engine.conditions import ConditionKind

#: reliability bins (upper edges) of the predicted probability
BIN_EDGES = (0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0000001)
_UP = (int(ConditionKind.H), int(ConditionKind.HH))
_KIND_COL = {
    int(ConditionKind.LL): 0,
    int(ConditionKind.L): 1,
    int(ConditionKind.H): 2,
    int(ConditionKind.HH): 3,
}


@dataclass(slots=True)
class ForecastLog:
    """Judgements sampled during a replay (EarlyWarnings.on_judged), as columns."""

    slots: np.ndarray  # forecast row -> engine slot
    horizon_s: np.ndarray  # per forecast row
    limits: np.ndarray  # (n_slots, 4) LL, L, H, HH
    holds: np.ndarray  # per row: the chance at which a warning holds; bands are scored from there
    next_s: np.ndarray = field(init=False)  # per row: no sample before this time
    cols: dict[str, list] = field(init=False)

    def __post_init__(self) -> None:
        self.next_s = np.full(len(self.slots), -np.inf)
        self.cols = {k: [] for k in ("slot", "t", "prob", "limit", "up", "horizon", "low", "high", "warns")}

    def __call__(self, rows, now_s, prob, level, eta, low, high, horizon_s=None) -> None:
        """The on_judged hook: keep the judgements with a target limit that are due for a sample.
        ``horizon_s`` (per judgement): the horizon its chance is over (default the row's)."""
        lv = np.asarray(level, dtype=np.int64)
        col = np.array([_KIND_COL.get(int(k), -1) for k in lv.tolist()])
        due = (col >= 0) & (now_s >= self.next_s[rows])
        if not due.any():
            return
        r = rows[due]
        self.next_s[r] = now_s[due] + np.minimum(3600.0, self.horizon_s[r] / 4)
        slots = self.slots[r]
        c = self.cols
        c["slot"].append(slots)
        c["t"].append(now_s[due])
        c["prob"].append(np.asarray(prob)[due])
        c["limit"].append(self.limits[slots, col[due]])
        c["up"].append(np.isin(lv[due], _UP))
        c["horizon"].append(self.horizon_s[r] if horizon_s is None else np.asarray(horizon_s)[due])
        c["low"].append(np.asarray(low)[due])
        c["high"].append(np.asarray(high)[due])
        c["warns"].append(np.asarray(prob)[due] >= self.holds[r])

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in self.cols.items()}


class Outcomes:
    """First crossings of limits in the recorded readings, per sensor slot."""

    def __init__(self, slot: np.ndarray, ts_ms: np.ndarray, value: np.ndarray):
        order = np.lexsort((ts_ms, slot))
        self.slot, self.t, self.x = slot[order], ts_ms[order] / 1000.0, value[order]
        self.bounds = np.searchsorted(self.slot, np.arange(int(slot.max(initial=-1)) + 2))
        self.end_s = float(ts_ms.max()) / 1000.0 if len(ts_ms) else -np.inf

    def first_crossing(self, slot: int, after_s: float, limit: float, up: bool) -> float:
        """Time (s) of the sensor's first reading at or beyond `limit` after `after_s`; inf if none."""
        if slot + 1 >= len(self.bounds):
            return np.inf
        lo, hi = self.bounds[slot], self.bounds[slot + 1]
        start = lo + int(np.searchsorted(self.t[lo:hi], after_s, side="right"))
        x = self.x[start:hi]
        beyond = x >= limit if up else x <= limit
        i = int(np.argmax(beyond)) if len(x) else 0
        return float(self.t[start + i]) if len(x) and beyond[i] else np.inf


@dataclass(slots=True)
class Calibration:
    """What a backtest's forecasts said against what happened."""

    reliability: list[dict]  # per bin: lo, hi, n, predicted, observed
    judged: int  # sampled judgements with a target
    known: int  # ... whose outcome within the horizon is known
    band_known: int  # sampled judgements holding a warning followed by a crossing within the horizon
    band_inside: int
    warnings: int  # early warnings raised (with a target limit)
    warnings_reached: int  # ... followed by a crossing of their limit within their horizon
    warnings_inside: int  # ... inside the warning's band

    @property
    def band_coverage(self) -> float | None:
        return self.band_inside / self.band_known if self.band_known else None

    @property
    def warning_coverage(self) -> float | None:
        return self.warnings_inside / self.warnings_reached if self.warnings_reached else None

    def to_dict(self) -> dict:
        return {
            "reliability": self.reliability,
            "judged": self.judged,
            "known": self.known,
            "band_known": self.band_known,
            "band_inside": self.band_inside,
            "band_coverage": self.band_coverage,
            "warnings": self.warnings,
            "warnings_reached": self.warnings_reached,
            "warnings_inside": self.warnings_inside,
            "warning_coverage": self.warning_coverage,
        }


def _band_outcome(hit: float, low: float, high: float, until: float) -> bool | None:
    """Did the crossing fall inside the band [low, high] (high inf = open)? The band says when the
    crossing comes *if it comes* by ``until`` (the end of the horizon), so only those crossings are
    scored; None where there was none."""
    return bool(low <= hit <= high) if np.isfinite(hit) and hit <= until else None


def calibrate(log: ForecastLog, outcomes: Outcomes, warnings: list[dict]) -> Calibration:
    """Score sampled judgements and raised warnings (dicts: slot, t_s, limit, up, low_s, high_s,
    horizon_s)."""
    a = log.arrays()
    n = len(a["t"])
    reached = np.zeros(n, dtype=bool)
    known = np.zeros(n, dtype=bool)
    band_known = band_inside = 0
    for i in range(n):
        slot, t = int(a["slot"][i]), float(a["t"][i])
        hit = outcomes.first_crossing(slot, t, float(a["limit"][i]), bool(a["up"][i]))
        reached[i] = hit <= t + a["horizon"][i]
        known[i] = reached[i] or outcomes.end_s >= t + a["horizon"][i]
        if a["warns"][i] and np.isfinite(a["low"][i]):
            inside = _band_outcome(hit, float(a["low"][i]), float(a["high"][i]), t + a["horizon"][i])
            if inside is not None:
                band_known += 1
                band_inside += int(inside)
    rows = []
    lo = 0.0
    p = a["prob"]
    for hi in BIN_EDGES:
        sel = known & (p >= lo) & (p < hi)
        k = int(sel.sum())
        rows.append(
            {
                "lo": lo,
                "hi": min(hi, 1.0),
                "n": k,
                "predicted": float(p[sel].mean()) if k else None,
                "observed": float(reached[sel].mean()) if k else None,
            }
        )
        lo = hi
    w_reached = w_inside = 0
    for w in warnings:
        hit = outcomes.first_crossing(w["slot"], w["t_s"], w["limit"], w["up"])
        inside = _band_outcome(hit, w["low_s"], w["high_s"], w["t_s"] + w.get("horizon_s", np.inf))
        if inside is not None:
            w_reached += 1
            w_inside += int(inside)
    return Calibration(rows, n, int(known.sum()), band_known, band_inside, len(warnings), w_reached, w_inside)


def format_calibration(c: Calibration) -> list[str]:
    """Lines for the backtest summary."""
    out = [
        f"calibration: {c.judged} forecasts with a target (sampled per sensor at most hourly), "
        f"{c.known} with a known outcome"
    ]
    for b in c.reliability:
        if b["n"]:
            out.append(
                f"  P {b['lo']:.2f}-{b['hi']:.2f}: n {b['n']}, predicted {b['predicted']:.2f}, "
                f"reached {b['observed']:.2f}"
            )
    if c.band_known:
        out.append(
            f"  bands (10-90 % of the crossing time if it comes within the horizon) of judgements "
            f"holding a warning and "
            f"followed by a crossing within the horizon: {c.band_inside}/{c.band_known} inside "
            f"({100 * c.band_inside / c.band_known:.0f} %, nominal 80 %)"
        )
    if c.warnings:
        cov = f", inside the band {c.warnings_inside}/{c.warnings_reached}" if c.warnings_reached else ""
        out.append(
            f"  warnings: {c.warnings} raised, limit reached within the horizon after "
            f"{c.warnings_reached}{cov}"
        )
    return out
