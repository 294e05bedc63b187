"""What InfluxDB's memory and CPU go to at a province's load: hazmon's 1-minute rollup query or not.

`make bench-influx`: a fresh InfluxDB (Debian's 1.6, as the tests and the soak start it) takes
250 000 series at 25 000 points/s (every series every 10 s) straight from this process, for a few
minutes, once with hazmon's schema (`InfluxClient.ensure_schema`: retention policies and the
`cq_readings_1m` continuous query) and once with the same schema without the continuous query. It
prints InfluxDB's largest RSS and its CPU in each run, and their ratio: the soak's 12 GB of InfluxDB
(README "Sizing a box") is the rollup's query over every series, not the writes or the series index.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import _cpu_seconds  # noqa: E402
from bench.soak import rss_kb  # noqa: E402
from hazmon.devservers import InfluxServer, ensure_installed  # noqa: E402
from ingest.influx import CQ_NAME, InfluxClient  # noqa: E402

WRITE_CHUNK = 25_000


def _mb(pid: int, field: str = "VmRSS") -> int:
    return (rss_kb(pid, field) or 0) // 1024


def _body(keys: list[str], lo: int, hi: int, k: int, ms: int) -> bytes:
    return "\n".join(f"{keys[i]}{(i + k) % 97 * 0.1:.1f} {ms}" for i in range(lo, hi)).encode()


def run(with_rollup: bool, minutes: float, series: int, interval_s: float, index: str) -> dict:
    """Write every series every `interval_s` for `minutes`; InfluxDB's RSS and CPU meanwhile."""
    work = Path(tempfile.mkdtemp(prefix="hazmon-bench-influx-"))
    server = InfluxServer(work / "influxdb", index_version=index)
    server.start()
    try:
        client = InfluxClient(server.url, "hazmon", timeout_s=600)
        client.ensure_schema(rollup_every="1m")  # what the service does at start
        if not with_rollup:
            client.execute(f'DROP CONTINUOUS QUERY "{CQ_NAME}" ON "hazmon"')
        pid = server.proc.pid
        keys = [f"readings,site=site-{i // 100:05d},sensor=S{i % 100:03d} value=" for i in range(series)]
        cpu0, rss, behind = _cpu_seconds(pid), [], 0.0
        end = time.monotonic() + minutes * 60
        k = 0
        while time.monotonic() < end:
            started = time.monotonic()
            ms = int(time.time() * 1000)
            for lo in range(0, series, WRITE_CHUNK):
                client.write_lines(_body(keys, lo, min(series, lo + WRITE_CHUNK), k, ms))
            k += 1
            rss.append(_mb(pid))
            spare = interval_s - (time.monotonic() - started)
            behind = max(behind, -spare)
            time.sleep(max(0.0, spare))
        cpu = _cpu_seconds(pid) - cpu0
        client.close()
        return {
            "rollup_query": with_rollup,
            "rounds": k,
            "points_per_s": round(series / interval_s),
            "writer_max_behind_s": round(behind, 2),
            "rss_max_mb": max(_mb(pid, "VmHWM"), max(rss, default=0)),
            "rss_end_mb": rss[-1] if rss else None,
            "cpu_cores": round(cpu / (minutes * 60), 2),
        }
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0, help="how long each run writes")
    ap.add_argument("--series", type=int, default=250_000)
    ap.add_argument("--interval-s", type=float, default=10.0)
    ap.add_argument("--index", choices=("inmem", "tsi1"), default="inmem", help="InfluxDB's series index")
    args = ap.parse_args()
    ensure_installed()
    with_q, without = (
        run(flag, args.minutes, args.series, args.interval_s, args.index) for flag in (True, False)
    )
    ratio = round(with_q["rss_max_mb"] / max(without["rss_max_mb"], 1), 2)
    print(
        f"[bench-influx] {args.series:,} series at {args.series / args.interval_s:,.0f} points/s for "
        f"{args.minutes:g} min ({args.index} index): with the rollup query RSS {with_q['rss_max_mb']} MB, "
        f"{with_q['cpu_cores']} cores; without it {without['rss_max_mb']} MB, {without['cpu_cores']} cores: "
        f"{ratio}x the memory"
    )
    figures = {"series": args.series, "minutes": args.minutes, "index": args.index}
    print(json.dumps({**figures, "runs": [with_q, without], "rss_ratio": ratio}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
