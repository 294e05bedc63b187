"""The early warnings' calibration for REPORT.md: the scenario library and, where present, the ewbench traces.

Each backtest writes its calibration (`hazmon backtest --calibration`, alerts/calibration.py): a
reliability table (sampled forecasts binned by probability against how often the limit was reached
within the horizon) and band coverage (crossings within the horizon inside the 10-90 % band). This
module adds them up over many backtests and renders the tables. The ewbench traces are public
recordings kept outside the repository (../shared/data/nab, scored by ../shared/tools/ewbench); they
are read where they are, never copied.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
EWBENCH = ROOT.parent / "shared" / "tools" / "ewbench"
COUNTS = ("band_known", "band_inside", "warnings", "warnings_reached", "warnings_inside", "judged", "known")


def ewbench_cases(ewbench: Path = EWBENCH) -> list[tuple[str, str, str, str]]:
    """(trace, kind, unit, interval_s) of every trace run_all.sh lists; [] if the bench is not here."""
    script = ewbench / "run_all.sh"
    if not script.exists():
        return []
    text = script.read_text(encoding="utf-8")
    block = text.split("<<'LIST'\n", 1)[1].split("\nLIST", 1)[0]
    return [tuple(line.split()) for line in block.splitlines() if line.strip()]  # type: ignore[misc]


def _ewbench_one(case: tuple[str, str, str, str], ewbench: Path) -> tuple[str, dict[str, Any]]:
    name, kind, unit, interval = case
    d = Path(tempfile.mkdtemp(prefix="hazmon-ewbench-"))
    py = sys.executable
    case_cmd = [py, str(ewbench / "nab_case.py"), name, str(d), "--kind", kind, "--unit", unit]
    subprocess.run([*case_cmd, "--interval-s", interval], check=True, capture_output=True)
    subprocess.run(
        [py, "-m", "hazmon.cli", "backtest", "--quiet", "--registry", str(d / "registry.yaml"),
         "--readings", str(d / "readings.csv"), "--out", str(d / "events.jsonl"),
         "--calibration", str(d / "calibration.json")],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    return Path(name).stem, orjson.loads((d / "calibration.json").read_bytes())


def ewbench_calibrations(ewbench: Path = EWBENCH) -> dict[str, dict[str, Any]]:
    """Backtest every ewbench trace (in parallel) and return its calibration by trace name."""
    cases = ewbench_cases(ewbench)
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return dict(pool.map(lambda c: _ewbench_one(c, ewbench), cases))


def aggregate(cals: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the counts and pool the reliability bins (weighted by their sizes) of several calibrations."""
    out: dict[str, Any] = {k: sum(int(c.get(k) or 0) for c in cals) for k in COUNTS}
    bins: dict[tuple[float, float], list[float]] = {}
    for c in cals:
        for b in c.get("reliability") or []:
            if b["n"]:
                acc = bins.setdefault((b["lo"], b["hi"]), [0, 0.0, 0.0])
                acc[0] += b["n"]
                acc[1] += b["predicted"] * b["n"]
                acc[2] += b["observed"] * b["n"]
    out["reliability"] = [
        {"lo": lo, "hi": hi, "n": n, "predicted": p / n, "observed": o / n}
        for (lo, hi), (n, p, o) in sorted(bins.items())
    ]
    return out


def _pct(num: int, den: int) -> str:
    return f"{num}/{den} ({100 * num / den:.0f} %)" if den else "–"


def coverage_rows(named: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows: per backtest with any warning or band, then nothing else (totals are separate)."""
    rows = []
    for name, c in named.items():
        if c.get("warnings") or c.get("band_known"):
            rows.append(
                f"| {name} | {c['warnings']} | {c['warnings_reached']} | "
                f"{_pct(c['warnings_inside'], c['warnings_reached'])} | "
                f"{_pct(c['band_inside'], c['band_known'])} |"
            )
    return rows


def calibration_section(groups: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """REPORT.md lines: band coverage per backtest and per group, and the pooled reliability tables."""
    out = [
        "## Early-warning calibration",
        "",
        "From each backtest's calibration (`hazmon backtest --calibration`, alerts/calibration.py).",
        "*Band*: the 10 % and 90 % points of the crossing time given a crossing within the horizon",
        "(nominal coverage 80 %); scored for the warnings raised whose limit was then reached within",
        "their horizon, and for the sampled judgements holding a warning that were. *Reliability*:",
        "judgements sampled at most hourly per sensor (a quarter horizon for short horizons), binned by",
        "their probability, against how often the limit was reached within the horizon.",
        "",
        "| backtest | warnings raised | reached within horizon | inside band | judgements inside band |",
        "|---|---|---|---|---|",
    ]
    for named in groups.values():
        out += coverage_rows(named)
    totals = {label: aggregate(list(named.values())) for label, named in groups.items() if named}
    if len(totals) > 1:
        totals["all"] = aggregate([c for named in groups.values() for c in named.values()])
    for label, t in totals.items():
        out.append(
            f"| **{label}** | {t['warnings']} | {t['warnings_reached']} | "
            f"{_pct(t['warnings_inside'], t['warnings_reached'])} | "
            f"{_pct(t['band_inside'], t['band_known'])} |"
        )
    for label, t in totals.items():
        out += [
            "",
            f"Reliability, {label} ({t['known']} judgements with a known outcome of {t['judged']}):",
            "",
            "| predicted probability | n | mean predicted | observed frequency |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {b['lo']:.2f}–{b['hi']:.2f} | {b['n']} | {b['predicted']:.2f} | {b['observed']:.2f} |"
            for b in t["reliability"]
        ]
    return out
