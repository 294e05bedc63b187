"""The alarm rules of alerts/engine/alarm_engine.py written plainly: one Python object per sensor.

This is the reference `make bench-engine` compares the array engine with. It is what a competent
engineer writes first: a class with attributes, an `update(t_ms, x)` method per reading, a loop
over the readings of a tick, then the group votes, then the clock-driven checks (delays that
expire in silence, stale sensors rolled up by device). Same rules and thresholds as the engine
and its kernels, so on the same readings it raises the same condition changes (the benchmark
checks that); nothing in it is slowed down on purpose.

Early warnings (sensors with `forecast: true`, when alerts/engine/forecast.py exists) follow that
module's arithmetic one sensor at a time: the exponentially weighted least-squares trend with
its ten sums, the projection to the next limit in the direction of travel with its band, and for
displacement the inverse-velocity (Fukuzono) failure time. The daily-cycle model of the module
(temperature and pressure kinds) is not reproduced: no forecast sensor of a generated fleet has it.

With `cadence=True` the forecasts do the work alerts/engine/early_warning.py does: one trend per channel of
the sensor's kind (pond level watches two timescales), samples of a faulty instrument skipped, and
each sensor judged on its own time once per `eval_every_s` instead of every batch. Its warning
rules (hysteresis, regrading) are not reproduced: the bench then compares only the engine's own
conditions, and the forecast part is there for its cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from sensors.kinds import KINDS
from sensors.model import Sensor

try:
    from alerts.engine import forecast as _fc
except ImportError:  # no forecast module yet: no early warnings
    _fc = None
try:
    from alerts.engine.early_warning import EarlyWarningConfig
except ImportError:
    EarlyWarningConfig = None

K = ConditionKind
# plain ints on the hot path (an IntEnum member lookup costs ~0.2 µs in CPython 3.11)
LL, L, H, HH, ROC, FAULT, STALE = (int(k) for k in (K.LL, K.L, K.H, K.HH, K.ROC, K.FAULT, K.STALE))
DELAYED = (LL, L, H, HH, ROC)
CRITICAL_KINDS = frozenset(k.name for k in KINDS.values() if k.critical)  # the facts, not the engine's code
FLATLINE_KINDS = frozenset(k.name for k in KINDS.values() if k.may_flatline)
FAULT_NAMES = {1: "out_of_range", 2: "stuck", 3: "spike", 4: "bad_quality"}

SPIKE_K = 10.0  # a jump must exceed SPIKE_K * MAD ...
SPIKE_HOLD_MAX_S = 30.0  # ... and is held only where the hold is short or the jump is short of HH/LL
SPIKE_SPAN_FRACTION = 0.05  # ... and this share of the span ...
SPIKE_WARMUP = 20  # ... once the sensor has this many samples
MAD_ALPHA = 0.05
RANGE_TOLERANCE = 0.01
STUCK_QUICK_SAMPLES, STUCK_SLOW_SAMPLES, STUCK_SLOW_MS = 6, 60, 30 * 60_000


class Trend:
    """Streaming EW least-squares line of one sensor: forecast.py's arithmetic, sample by sample.

    Ten sums (w, t, x, t², t·x, x², t³, w², w²·t, w²·t²) kept relative to the last sample (t_ref, x_ref);
    each sample moves the origin to itself with the binomial shift, decays by exp(-d/tau), adds weight 1.
    """

    __slots__ = (
        "q0",
        "q1",
        "q2",
        "st",
        "stt",
        "sttt",
        "stx",
        "sw",
        "sx",
        "sxx",
        "t_first",
        "t_ref",
        "tau_s",
        "x_last",
        "x_ref",
    )

    def __init__(self, tau_s: float):
        self.tau_s = tau_s
        self.t_ref = self.x_ref = self.x_last = self.t_first = math.nan
        self.sw = self.st = self.sx = self.stt = self.stx = self.sxx = self.sttt = 0.0
        self.q0 = self.q1 = self.q2 = 0.0

    def update(self, t: float, x: float) -> None:
        if not math.isfinite(x) or not math.isfinite(t):
            return
        if self.t_ref != self.t_ref:  # the first sample
            self.sw = self.q0 = 1.0
            self.t_ref = self.t_first = t
            self.x_ref = self.x_last = x
            return
        d = t - self.t_ref
        if d < 0:  # out of order
            return
        e = x - self.x_ref
        a = math.exp(-d / self.tau_s)
        a2 = a * a
        w, st, sx, stt = self.sw, self.st, self.sx, self.stt
        dw, ew = d * w, e * w
        self.sw = a * w + 1.0
        self.st = a * (st - dw)
        self.sx = a * (sx - ew)
        self.stt = a * (stt - d * (2.0 * st - dw))
        self.stx = a * (self.stx - e * st - d * (sx - ew))
        self.sxx = a * (self.sxx - e * (2.0 * sx - ew))
        self.sttt = a * (self.sttt - d * (3.0 * stt - d * (3.0 * st - dw)))
        q0, q1 = self.q0, self.q1
        self.q0 = a2 * q0 + 1.0
        self.q1 = a2 * (q1 - d * q0)
        self.q2 = a2 * (self.q2 - d * (2.0 * q1 - d * q0))
        self.t_ref = t
        self.x_ref = self.x_last = x

    def stats(self) -> tuple[float, float, float, float, float, float, float, float, float] | None:
        """(slope, intercept, resid_sd, n_eff, slope_se, t_mean, level_mean, span, t_rate); None if empty."""
        w = self.sw
        if w <= 0:
            return None
        nan = math.nan
        inv_w = 1.0 / w
        mt = self.st * inv_w
        mx = self.sx * inv_w
        ctt = self.stt * inv_w - mt * mt
        if not ctt > 0:
            ctt = nan
        ctx = self.stx * inv_w - mt * mx
        cxx = self.sxx * inv_w - mx * mx
        b = ctx / ctt
        n_eff = w * w / self.q0
        s2 = max(cxx - b * ctx, 0.0) * n_eff / (n_eff - 2.0) if n_eff > 2.0 else nan
        v2 = max(self.q2 - mt * (2.0 * self.q1 - mt * self.q0), 0.0)
        se = math.sqrt(s2 * v2) / (w * ctt)
        mu3 = self.sttt * inv_w - mt * ctt * 3.0 - mt * mt * mt  # third central moment of t
        t_mean = self.t_ref + mt
        return (
            b,
            self.x_ref + mx - b * mt,
            math.sqrt(s2),
            n_eff,
            se,
            t_mean,
            self.x_ref + mx,
            math.sqrt(12.0 * ctt),
            t_mean + mu3 / ctt * 0.5,
        )


def band_roots(b: float, dist: float, se: float, sigma0: float, z: float) -> tuple[float, float, float]:
    """Central, early and late times (from t̄) at which the line and its band reach the limit."""
    inf = math.inf
    central = dist / b if b > 0 else inf
    a = b * b - (z * se) ** 2
    c = dist * dist - (z * sigma0) ** 2
    q = (se * dist) ** 2 + sigma0 * sigma0 * a
    root = z * math.sqrt(max(q, 0.0))
    late = (b * dist + root) / a if a > 0 else inf
    den = b * dist + root
    early = c / den if q >= 0 and den > 0 else (-inf if c <= 0 else inf)
    return central, early, late


class Forecast:
    """Trend, next-limit crossing and (displacement) inverse-velocity failure time of one sensor."""

    def __init__(self, sensor: Sensor, cadence: bool = False):
        k = sensor.kind
        channels = (
            (
                _fc.TREND_WINDOW_S.get(k, _fc.DEFAULT_TREND_WINDOW_S),
                _fc.HORIZON_S.get(k, _fc.DEFAULT_HORIZON_S),
            ),
        )
        self.eval_every_s = 0.0  # judged every batch
        self.next_eval_s = -math.inf
        if cadence:
            cfg = EarlyWarningConfig()
            channels = cfg.channels.get(k) or (
                (
                    cfg.windows_s.get(k, _fc.DEFAULT_TREND_WINDOW_S),
                    cfg.horizons_s.get(k, _fc.DEFAULT_HORIZON_S),
                ),
            )
            tau = min(c[0] for c in channels)
            self.eval_every_s = min(cfg.max_eval_every_s, tau * cfg.eval_every_tau_frac)
        self.channels = [(Trend(tau), horizon) for tau, horizon in channels]
        self.trend, self.horizon_s = self.channels[0]
        lim = sensor.limits
        self.upper = [(v, kind) for v, kind in ((lim.h, K.H), (lim.hh, K.HH)) if v is not None]
        self.lower = [(v, kind) for v, kind in ((lim.l, K.L), (lim.ll, K.LL)) if v is not None]
        self.warn = False
        self.eta = math.inf
        # inverse velocity (Fukuzono) of displacement: a short trend of x, a long trend of 1/|v|
        self.creep = sensor.kind == "displacement"
        if self.creep:
            self.velocity = Trend(6 * 3600.0)
            self.inverse = Trend(2 * 86400.0)
            self.step_s = 3 * 3600.0
            self.t_fed = math.nan
            self.fail_warn = False

    def update(self, t: float, x: float) -> None:
        for trend, _ in self.channels:
            trend.update(t, x)
        if self.creep:
            self.velocity.update(t, x)
            st = self.velocity.stats()
            if st is None:
                return
            slope, _, _, n_eff, se, _, _, span, t_rate = st
            v = abs(slope)
            last = self.inverse.t_ref
            due = last != last or t_rate - last >= self.step_s
            if v > 3.0 * se and n_eff >= 8.0 and span >= 0.5 * self.velocity.tau_s and due:
                self.inverse.update(t_rate, 1.0 / v)
                self.t_fed = t

    def crossing(self, now: float) -> bool:
        """Whether an early warning stands on any channel; eta: the earliest warned, else channel 0's."""
        warned = False
        eta = math.inf
        for c, (trend, horizon) in enumerate(self.channels):
            if self._crossing(trend, horizon, now):
                eta = self.eta if not warned else min(eta, self.eta)
                warned = True
            elif c == 0:
                eta = self.eta
        self.eta = eta
        self.trend, self.horizon_s = self.channels[0]
        return warned

    def _crossing(self, trend: Trend, horizon_s: float, now: float) -> bool:
        """A significant trend whose late band crosses within the horizon (sets self.eta)."""
        self.trend, self.horizon_s = trend, horizon_s
        st = self.trend.stats()
        if st is None:
            self.eta = math.inf
            return False
        slope, intercept, resid_sd, n_eff, se, t_mean, level_mean, span, _ = st
        rising = slope > 0
        direction = 1.0 if rising else -1.0
        level_now = intercept + slope * (now - self.trend.t_ref)
        limit = math.nan
        for v, _kind in self.upper if rising else self.lower:  # H before HH, L before LL
            if direction * (v - level_now) > 0 and not direction * (v - limit) >= 0:
                limit = v
        if limit != limit:
            self.eta = math.inf
            return False
        central, _, late = band_roots(
            abs(slope), direction * (limit - level_mean), se, resid_sd * math.sqrt(1.0 + 1.0 / n_eff), 2.0
        )
        self.eta = t_mean + central if central == central else math.inf
        eta_high = t_mean + late if late == late else math.inf
        significant = abs(slope) > 3.0 * se and n_eff >= 10.0 and span >= 0.5 * self.trend.tau_s
        return (
            significant and eta_high - now <= self.horizon_s and direction * (self.trend.x_last - limit) < 0
        )

    def failure(self, now: float) -> bool:
        """Whether a failure-time warning stands: 1/v falls significantly to 0 within a day."""
        st = self.inverse.stats()
        if st is None:
            return False
        slope, _, resid_sd, n_eff, se, t_mean, level_mean, span, _ = st
        speed = -slope
        if not speed > 0:
            return False
        _, _, late = band_roots(speed, level_mean, se, resid_sd / math.sqrt(n_eff), 2.0)
        tf_high = t_mean + late if late == late else math.inf
        return (
            speed > 3.0 * se
            and n_eff >= 6.0
            and span >= 0.25 * self.inverse.tau_s
            and now - self.t_fed <= 2.0 * self.step_s + self.velocity.tau_s
            and tf_high - now <= 86400.0
        )


class PlainSensor:
    """One sensor: its configuration and all of its alarm state, updated one reading at a time."""

    def __init__(
        self, sensor: Sensor, stale_after_ms: int, start_ms: int, trend: bool, cadence: bool = False
    ):
        self.sensor = sensor
        lim = sensor.limits
        self.limits = (lim.ll, lim.l, lim.h, lim.hh)
        self.deadband = sensor.deadband
        self.on_delay_ms = int(sensor.on_delay_s * 1000)
        self.off_delay_ms = int(sensor.off_delay_s * 1000)
        self.lo, self.hi = sensor.range
        self.span = self.hi - self.lo
        self.roc_limit = sensor.roc_per_min or None
        self.roc_window_ms = int(sensor.roc_window_s * 1000)
        self.stale_after_ms = stale_after_ms
        self.may_flatline = sensor.kind in FLATLINE_KINDS
        self.device: PlainDevice | None = None
        self.group: PlainGroup | None = None
        # state
        self.last_x = math.nan
        self.last_t = -1
        self.seen_since = start_ms
        self.anchor_x = math.nan
        self.anchor_t = -1
        self.raw = [False] * 5  # undelayed LL, L, H, HH, ROC
        self.pending = [-1] * 5
        self.active = [False] * len(ConditionKind)
        self.fault = 0
        self.mad: float | None = None
        self.n_seen = 0
        self.n_changes = 0
        self.frozen_samples = 0
        self.last_change_t = -1
        self.rate_at_change = 0.0
        self.spike_pending = False
        self.spike_x = math.nan
        self.spike_t = -1
        self.stale = False  # scratch for the stale check
        self.forecast = Forecast(sensor, cadence) if trend and sensor.forecast and _fc is not None else None

    # ---- one reading

    def is_jump(self, x: float) -> bool:
        d = abs(x - self.last_x)  # NaN before the first sample: never a jump
        mad = self.mad
        return (
            self.n_seen >= SPIKE_WARMUP
            and mad is not None
            and d > SPIKE_K * mad
            and d > SPIKE_SPAN_FRACTION * self.span
        )

    def critical_now(self, x: float) -> bool:
        """A jump past HH or LL on a sensor slower than SPIKE_HOLD_MAX_S is not held (it alarms at once)."""
        if self.sensor.interval_s <= SPIKE_HOLD_MAX_S:
            return False
        hh, ll = self.sensor.limits.hh, self.sensor.limits.ll
        return (hh is not None and x >= hh) or (ll is not None and x <= ll)

    def update(self, t_ms: int, x: float, quality: int = 0, out: list[ConditionChange] | None = None) -> int:
        """Apply one reading, appending condition changes to `out`.

        Returns 1 when applied, 0 when held as a possible spike, -1 when late or a duplicate.
        """
        if t_ms <= self.last_t:
            return -1
        if out is None:
            out = []
        # spikes: a suspicious jump is held for one sample; a return proves it was a spike
        held = self.spike_pending
        if held:
            self.spike_pending = False
            if not self.is_jump(x):
                out.append(self._change(FAULT, True, self.spike_t, self.spike_x, fault=3))
                out.append(self._change(FAULT, False, t_ms, self.spike_x, fault=3))
        elif quality < 2 and self.is_jump(x) and not self.critical_now(x):
            self.spike_pending = True
            self.spike_x, self.spike_t = x, t_ms
            return 0

        # instrument health
        last_x, last_t = self.last_x, self.last_t
        has_prev = last_t >= 0
        changed = x != last_x or not has_prev
        if changed:
            if has_prev:
                dt = t_ms - last_t
                step = (x - last_x) / max(dt, 1) if dt > 0 else 0.0
                self.rate_at_change = 0.7 * self.rate_at_change + 0.3 * step
                self.n_changes += 1
            self.frozen_samples = 0
            self.last_change_t = t_ms
        else:
            self.frozen_samples += 1
        if has_prev:
            d = abs(x - last_x)
            mad = self.mad
            if mad is None or mad == 0:
                self.mad = d
            else:
                self.mad = (1 - MAD_ALPHA) * mad + MAD_ALPHA * min(d, 5 * mad)
        self.n_seen += 1
        frozen_ms = t_ms - self.last_change_t
        stuck = False
        if not self.may_flatline:
            noise = self.mad or 0.0
            quick = self.frozen_samples >= STUCK_QUICK_SAMPLES and abs(
                self.rate_at_change
            ) * frozen_ms > 5.0 * max(noise, 1e-12)
            slow = (
                self.frozen_samples >= STUCK_SLOW_SAMPLES
                and frozen_ms >= STUCK_SLOW_MS
                and self.n_changes >= 10
            )
            stuck = quick or slow
        margin = self.span * RANGE_TOLERANCE
        if quality >= 2:
            fault = 4
        elif x < self.lo - margin or x > self.hi + margin:
            fault = 1
        elif stuck:
            fault = 2
        else:
            fault = 0
        if fault != self.fault:
            if self.fault:
                out.append(self._change(FAULT, False, t_ms, x, fault=self.fault))
            if fault:
                out.append(self._change(FAULT, True, t_ms, x, fault=fault))
            self.fault = fault
            self.active[FAULT] = fault > 0

        # rate of change over about one window, anchored at an old sample
        if self.anchor_t < 0 or t_ms - self.anchor_t > self.roc_window_ms:
            if has_prev:
                self.anchor_x, self.anchor_t = last_x, last_t
            elif self.anchor_t < 0:
                self.anchor_x, self.anchor_t = x, t_ms
        dt_min = (t_ms - self.anchor_t) / 60_000.0
        roc = (x - self.anchor_x) / dt_min if dt_min > 0 else math.nan

        # limits with deadband hysteresis
        raw = self.raw
        db = self.deadband
        ll, l_, h, hh = self.limits
        raw[0] = ll is not None and (x < ll + db if raw[0] else x <= ll)
        raw[1] = l_ is not None and (x < l_ + db if raw[1] else x <= l_)
        raw[2] = h is not None and (x > h - db if raw[2] else x >= h)
        raw[3] = hh is not None and (x > hh - db if raw[3] else x >= hh)
        raw[4] = self.roc_limit is not None and abs(roc) > self.roc_limit
        self.last_x, self.last_t = x, t_ms
        self.settle(t_ms, x, out)
        if self.active[STALE]:  # fresh data ends staleness
            self.active[STALE] = False
            out.append(self._change(STALE, False, t_ms))
        f = self.forecast
        if f is not None and not (f.eval_every_s and self.fault):  # cadence: a faulty instrument has no trend
            t_s = t_ms / 1000.0
            f.update(t_s, x)
            if f.eval_every_s and t_s >= f.next_eval_s and x == x:  # judged on its own time
                f.next_eval_s = t_s + f.eval_every_s
                self.judge_forecast(t_ms, out)
        return 1

    def settle(self, t_ms: int, x: float, out: list[ConditionChange]) -> None:
        """On/off delays: a raw condition must persist for its delay before it takes effect."""
        active, pending, raw = self.active, self.pending, self.raw
        for c, kind in enumerate(DELAYED):
            r = raw[c]
            if r == active[kind]:
                pending[c] = -1
                continue
            since = pending[c] if pending[c] >= 0 else t_ms
            if t_ms - since >= (self.on_delay_ms if r else self.off_delay_ms):
                active[kind] = r
                pending[c] = -1
                out.append(self._change(kind, r, t_ms, x))
            else:
                pending[c] = since

    def judge_forecast(self, now_ms: int, out: list[ConditionChange]) -> None:
        """Early warnings that start or end at now_ms."""
        f = self.forecast
        now_s = now_ms / 1000.0
        warn = f.crossing(now_s)
        if warn != f.warn:
            f.warn = warn
            out.append(self.early_warning(warn, now_ms, "EARLY_WARNING", f.eta))
        if f.creep:
            warn = f.failure(now_s)
            if warn != f.fail_warn:
                f.fail_warn = warn
                out.append(self.early_warning(warn, now_ms, "FAILURE_TIME", math.inf))

    def has_pending(self) -> bool:
        return max(self.pending) >= 0

    def silent_since(self) -> int:
        return self.last_t if self.last_t >= 0 else self.seen_since

    # ---- rendering one change

    def _change(
        self, kind: int, on: bool, t_ms: int, value: float | None = None, fault: int = 0
    ) -> ConditionChange:
        kind = ConditionKind(kind)
        s = self.sensor
        limit = None
        critical = s.kind in CRITICAL_KINDS
        if kind in (K.LL, K.L, K.H, K.HH):
            level = kind.name
            limit = self.limits[kind]
            outer = kind in (K.LL, K.HH)
            if critical:
                prio = Priority.CRITICAL if outer else Priority.HIGH
            else:
                prio = Priority.HIGH if outer else Priority.MEDIUM
            msg = f"{s.name} {level} {'报警' if on else '报警恢复'} {value:.6g} {s.unit}"
        elif kind == K.ROC:
            level, limit, prio = "ROC", self.roc_limit, Priority.HIGH
            msg = f"{s.name}变化速率{'超限' if on else '恢复正常'}"
        elif kind == K.FAULT:
            level = FAULT_NAMES[fault]
            prio = Priority.HIGH if critical else Priority.MEDIUM
            msg = f"{s.name}仪表故障{'' if on else '恢复'}: {level}"
        else:
            level, prio = "STALE", Priority.MEDIUM
            msg = f"{s.name}{'无数据' if on else '数据恢复'}"
        if value is not None and math.isnan(value):
            value = None
        return ConditionChange(s.site, s.id, kind, on, int(t_ms), prio, level, value, limit, msg)

    def early_warning(self, on: bool, t_ms: int, level: str, eta_s: float) -> ConditionChange:
        s = self.sensor
        eta = int(eta_s * 1000) if on and math.isfinite(eta_s) else None
        return ConditionChange(
            s.site,
            s.id,
            K.EARLY_WARNING,
            on,
            t_ms,
            Priority.MEDIUM,
            level,
            message=f"{s.name}趋势预警{'' if on else '解除'}",
            eta_ms=eta,
        )


class PlainGroup:
    """k-out-of-n vote of a group of detectors (2oo3 by default), degrading with faulty voters."""

    def __init__(self, site: str, name: str, members: list[PlainSensor], k: int):
        self.site, self.name, self.members, self.k = site, name, members, k
        self.active = False
        self.degraded = False

    def vote(self, now_ms: int, out: list[ConditionChange]) -> None:
        votes = faulty = 0
        for m in self.members:
            if m.fault:
                faulty += 1
            elif m.active[H] or m.active[HH]:
                votes += 1
        on = votes >= max(self.k - faulty, 1)
        self.degraded = faulty > 0
        if on != self.active:
            self.active = on
            out.append(
                ConditionChange(
                    self.site,
                    self.name,
                    K.VOTE,
                    on,
                    now_ms,
                    Priority.CRITICAL if on else Priority.HIGH,
                    "VOTE",
                    value=float(votes),
                    limit=float(max(self.k - faulty, 1)),
                    scope="group",
                    message=f"探测器组 {self.name} 表决{'报警' if on else '恢复'}: {votes} 台报警",
                )
            )


class PlainDevice:
    """A gateway: silent when every one of its sensors is."""

    def __init__(self, site: str, name: str):
        self.site, self.name = site, name
        self.members: list[PlainSensor] = []
        self.active = False


class PlainFleet:
    """Every sensor as a PlainSensor; `tick` applies readings, votes, then the clock-driven checks."""

    def __init__(
        self,
        sensors: Sequence[Sensor],
        start_ms: int = 0,
        trend: bool = True,
        cadence: bool = False,
        stale_intervals: float = 3.0,
        stale_min_s: float = 30.0,
        stale_if_never_heard: bool = True,
        groups_k: dict[str, int] | None = None,
    ):
        self.stale_if_never_heard = stale_if_never_heard
        self.sensors: list[PlainSensor] = []
        devices: dict[tuple[str, str], PlainDevice] = {}
        members: dict[tuple[str, str], list[PlainSensor]] = {}
        for s in sensors:
            stale_ms = int(1000 * (s.stale_after_s or max(stale_intervals * s.interval_s, stale_min_s)))
            p = PlainSensor(s, stale_ms, start_ms, trend, cadence)
            if s.device:
                p.device = devices.setdefault((s.site, s.device), PlainDevice(s.site, s.device))
                p.device.members.append(p)
            if s.group:
                members.setdefault((s.site, s.group), []).append(p)
            self.sensors.append(p)
        self.devices = list(devices.values())
        self.forecasting = [] if cadence else [p for p in self.sensors if p.forecast is not None]
        self.groups = []
        for (site, name), ms in sorted(members.items()):
            g = PlainGroup(site, name, ms, (groups_k or {}).get(name, len(ms) // 2 + 1))
            for m in ms:
                m.group = g
            self.groups.append(g)
        self.late_or_duplicate = 0

    def process(self, readings: Iterable[tuple[int, int, float, int]]) -> list[ConditionChange]:
        """(slot, t_ms, value, quality) in arrival order; late and duplicate readings are dropped."""
        out: list[ConditionChange] = []
        sensors = self.sensors
        newest = -1
        for slot, t_ms, x, q in readings:
            done = sensors[slot].update(t_ms, x, q, out)
            if done > 0:
                if t_ms > newest:
                    newest = t_ms
            elif done < 0:
                self.late_or_duplicate += 1
        if newest >= 0:
            for g in self.groups:
                g.vote(newest, out)
            for s in self.forecasting:
                s.judge_forecast(newest, out)
        out.sort(key=lambda c: c.time_ms)
        return out

    def advance(self, now_ms: int) -> list[ConditionChange]:
        """Delays that expire in silence, and stale sensors (one change per silent device)."""
        out: list[ConditionChange] = []
        for s in self.sensors:
            if s.has_pending():
                s.settle(now_ms, s.last_x, out)
            s.stale = now_ms - s.silent_since() > s.stale_after_ms
            if not self.stale_if_never_heard and s.last_t < 0:
                s.stale = False
        for d in self.devices:
            judged = [m for m in d.members if self.stale_if_never_heard or m.last_t >= 0]
            silent = bool(judged) and all(m.stale for m in judged)
            if silent != d.active:
                if silent:
                    when = max(m.silent_since() + m.stale_after_ms for m in judged)
                else:
                    when = min(min((m.silent_since() for m in judged if not m.stale), default=now_ms), now_ms)
                out.append(
                    ConditionChange(
                        d.site,
                        d.name,
                        K.STALE,
                        silent,
                        when,
                        Priority.HIGH,
                        "STALE",
                        scope="device",
                        message=f"设备 {d.name} {'通信中断' if silent else '通信恢复'}",
                    )
                )
                d.active = silent
        judge_all = self.stale_if_never_heard
        for s in self.sensors:
            covered = s.device is not None and s.device.active and (judge_all or s.last_t >= 0)
            stale = s.stale and not covered
            if stale != s.active[STALE]:
                s.active[STALE] = stale
                since = s.silent_since()
                when = since + s.stale_after_ms if stale else min(since, now_ms)
                out.append(s._change(STALE, stale, when))
        out.sort(key=lambda c: c.time_ms)
        return out
