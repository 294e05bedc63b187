"""Run a scenario through `hazmon backtest` and judge its events against `expected.yaml`.

Shared by test_scenarios.py (assertions) and report.py (the lead-time table, REPORT.md). The format
of expected.yaml is described in tests/scenarios/README.md.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

LIB = Path(__file__).resolve().parent
ROOT = LIB.parents[1]
BACKTEST_TIMEOUT_S = 120


def scenario_names() -> list[str]:
    """Every folder of the library with an expected.yaml, in name order."""
    return sorted(p.parent.name for p in LIB.glob("*/expected.yaml"))


@functools.cache
def load_expected(name: str) -> dict[str, Any]:
    with open(LIB / name / "expected.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def ms(text: str) -> int:
    """ISO 8601 with offset -> epoch ms."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"time without offset: {text!r}")
    return round(dt.timestamp() * 1000)


@dataclass(frozen=True)
class Backtest:
    events: list[dict[str, Any]]
    stdout: str
    seconds: float
    calibration: dict[str, Any] | None = None  # `hazmon backtest --calibration` (alerts/calibration.py)


@functools.cache
def run_backtest(name: str) -> Backtest:
    """`python -m hazmon.cli backtest` on one scenario, once per process; raise with its output on failure."""
    import time

    exp = load_expected(name)
    folder = LIB / name
    out = Path(tempfile.mkdtemp(prefix=f"hazmon-scenario-{name}-")) / "events.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "hazmon.cli",
        "backtest",
        "--registry",
        str(folder / exp["registry"]),
        "--readings",
        str(folder / exp["readings"]),
        "--out",
        str(out),
        "--calibration",
        str(out.with_name("calibration.json")),
        "--quiet",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=BACKTEST_TIMEOUT_S, check=False
    )
    took = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"backtest of {name} failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
    events = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]
    for ev in events:
        ev["_ms"] = ms(ev["time"])
    events.sort(key=lambda e: e["_ms"])
    cal = out.with_name("calibration.json")
    return Backtest(events, proc.stdout, took, orjson.loads(cal.read_bytes()) if cal.exists() else None)


# ---- judging


def _as_list(v: Any) -> list | None:
    return None if v is None else (list(v) if isinstance(v, list | tuple) else [v])


def matches(ev: dict[str, Any], matcher: dict[str, Any], sensors: list[str] | None = None) -> bool:
    """An event matches {type, level?, sensors?}; `sensors` is the default when the matcher has none."""
    if ev.get("type") not in _as_list(matcher["type"]):
        return False
    levels = _as_list(matcher.get("level"))
    if levels is not None and ev.get("level") not in levels:
        return False
    allowed = _as_list(matcher.get("sensors")) or sensors
    return allowed is None or ev.get("sensor") in allowed


def describe(ev: dict[str, Any]) -> str:
    return f"{ev['time']} {ev.get('sensor')} {ev.get('type')}/{ev.get('level')} value={ev.get('value')}"


@dataclass
class IncidentResult:
    scenario: str
    id: str
    required: bool
    what: str
    happens_ms: int
    deadline_ms: int
    first: dict[str, Any] | None = None  # first acceptable event at or after `starts`
    first_ew: dict[str, Any] | None = None  # first early warning on the incident's sensors
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def margin_s(self) -> float | None:
        """happens - first acceptable event (positive: before it happened)."""
        return None if self.first is None else (self.happens_ms - self.first["_ms"]) / 1000

    @property
    def ew_lead_s(self) -> float | None:
        return None if self.first_ew is None else (self.happens_ms - self.first_ew["_ms"]) / 1000


def judge_incident(scenario: str, inc: dict[str, Any], events: list[dict[str, Any]]) -> IncidentResult:
    res = IncidentResult(
        scenario, inc["id"], inc.get("required", True), inc["what"], ms(inc["happens"]), ms(inc["deadline"])
    )
    starts = ms(inc.get("starts", inc["happens"]))
    sensors = inc["sensors"]
    mine = [e for e in events if e.get("site") == inc["site"] and e["_ms"] >= starts]
    res.first = next((e for e in mine if any(matches(e, m, sensors) for m in inc["accept"])), None)
    res.first_ew = next((e for e in mine if matches(e, {"type": "early_warning"}, sensors)), None)
    accepted = " or ".join(
        f"{m['type']}{'/' + ','.join(m['level']) if m.get('level') else ''}" for m in inc["accept"]
    )
    if res.first is None:
        res.problems.append(f"no {accepted} event on {sensors} at all after {inc.get('starts')}")
    elif res.first["_ms"] > res.deadline_ms:
        res.problems.append(
            f"first {accepted} event is late: {describe(res.first)}; deadline {inc['deadline']}"
        )
    cap = inc.get("at_most")
    if cap:
        hits = [e for e in mine if matches(e, {"type": cap["type"], "sensors": cap["sensors"]})]
        if len(hits) > cap["count"]:
            res.problems.append(
                f"{len(hits)} {'/'.join(_as_list(cap['type']))} events where at most "
                f"{cap['count']} are allowed: " + "; ".join(describe(e) for e in hits[:8])
            )
    return res


def judge_quiet(window: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events inside a quiet window that it does not allow (false alarms)."""
    lo, hi = ms(window["from"]), ms(window["to"])
    sensors = window.get("sensors")
    allow = window.get("allow") or []
    return [
        e
        for e in events
        if lo <= e["_ms"] < hi
        and e.get("site") == window["site"]
        and (sensors is None or e.get("sensor") in sensors)
        and not any(matches(e, m) for m in allow)
    ]


# ---- the table


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s >= 86400:
        return f"{sign}{s / 86400:.1f} d"
    if s >= 3600:
        return f"{sign}{s / 3600:.1f} h"
    if s >= 60:
        return f"{sign}{s / 60:.1f} min"
    return f"{sign}{s:.0f} s"


def _short(ev: dict[str, Any] | None) -> str:
    if ev is None:
        return "none"
    return f"{ev.get('type')}/{ev.get('level')} {ev.get('sensor')}"


def _clock(ev: dict[str, Any] | None) -> str:
    return "–" if ev is None else ev["time"].replace("+08:00", "")


def false_event_summary(events: list[dict[str, Any]]) -> str:
    """`8: early_warning/H 3, fault/spike 5` (returns to normal left out of the breakdown), or `0`."""
    raised = [e for e in events if e.get("type") != "return_to_normal"]
    kinds = Counter(f"{e.get('type')}/{e.get('level')}" for e in raised)
    if not kinds:
        return str(len(events))
    return f"{len(events)}: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))


def lead_time_table(results: list[IncidentResult], quiet: dict[str, int | str]) -> str:
    """Markdown: one row per incident (first acceptable event, margin, early-warning lead, verdict)."""
    rows = [
        "| scenario | incident | first acceptable event | at | margin before happening | "
        "first early warning | EW lead | EW eta − happens | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        eta = r.first_ew.get("eta") if r.first_ew else None
        eta_err = _dur((ms(eta) - r.happens_ms) / 1000) if eta else "–"
        verdict = "ok" if r.ok else ("FAIL" if r.required else "missed (optional)")
        rows.append(
            f"| {r.scenario} | {r.id} | {_short(r.first)} | {_clock(r.first)} | {_dur(r.margin_s)} | "
            f"{_clock(r.first_ew)} | {_dur(r.ew_lead_s)} | {eta_err} | {verdict} |"
        )
    rows += ["", "| scenario | false events in quiet stretches |", "|---|---|"]
    rows += [f"| {name} | {n} |" for name, n in quiet.items()]
    return "\n".join(rows) + "\n"


def judge_all(names: list[str] | None = None) -> tuple[list[IncidentResult], dict[str, list[dict[str, Any]]]]:
    """Run and judge scenarios; return incident results and, per scenario, the false events."""
    results: list[IncidentResult] = []
    false_events: dict[str, list[dict[str, Any]]] = {}
    for name in names or scenario_names():
        exp = load_expected(name)
        events = run_backtest(name).events
        results += [judge_incident(name, inc, events) for inc in exp.get("incidents") or []]
        seen: dict[int, dict[str, Any]] = {}
        for w in exp.get("quiet") or []:
            for e in judge_quiet(w, events):
                seen[id(e)] = e
        false_events[name] = sorted(seen.values(), key=lambda e: e["_ms"])
    return results, false_events


def run_all(names: list[str] | None = None) -> None:
    """Run the backtests of several scenarios in parallel (each is its own process)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    names = names or scenario_names()
    with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
        list(pool.map(run_backtest, names))
