"""`make soak` (issue 15 item 3, opt-in, not in CI): a province for half an hour, through real servers.

250 000 sensors over 2 500 generated sites report every 10 s (0.1 Hz, 25 000 readings/s) through
a real Mosquitto into `hazmon run`, which writes them to a real InfluxDB, runs its alarm engine and
early warnings, and texts the officers through a real Kannel (bearerbox + smsbox) to Kannel's
fakesmsc. 8 API clients poll the console's endpoints and 20 SSE streams stay open (3 users: a user
may hold 8). Every few minutes an incident starts: the lead gas detector of a few chemical sites
climbs past H and HH (critical, texted to the site's own duty operator) and falls back, and at one
more site a slow leak starts (its lead gas detector, forecast on, climbs 1 %LEL a minute for 30
minutes, past H 25 %LEL, not HH): an early warning about a quarter of an hour in, then H. A tank
level would not do in half an hour: its 2 h trend memory needs about an hour of history before it
judges a trend (forecast.min_span_frac), by design.

Times. The publisher (its own process, like bench/ingest_drain.py's) stamps every message with its
wall-clock send time as the readings' `ts`, so an alarm's event time in the journal (`time_ms` of
its AlarmRaised) is the publish time of the reading that made it due, plus the sensor's on-delay
when it has one (3 s for a gas detector, 30 s for a tank level: the engine stamps a delayed
alarm when its delay ran out, kernels.apply_delays). That moment is the origin of every latency:

- journal: the history row's `recorded_ms` (hazmon's wall clock when the raise was committed),
  read from alarms.sqlite (read-only) at the end;
- stream: when a stream client received the `alarm` event (every client's receipt counts);
- SMS: `sent_ms` of the outbox message that carried the alarm (sms.sqlite: when Kannel's sendsms
  answered 202, i.e. the SMS was submitted to Kannel), and, for the record, when fakesmsc logged
  it (fakesmsc polls with a 1 s select, so that time is up to ~1 s late).

Also: hazmon's RSS every 10 s (growth = (max RSS of the last 10 min - RSS at 5 min) / RSS at 5 min),
CPU seconds per process, the API's latencies (bench/api_load.client_main, with a pause between a
client's requests), and at the end lost and doubled readings per series in InfluxDB. Progress goes
to stderr; the last line on stdout is JSON, also written to --out (default artifacts/soak-*.json).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import math
import multiprocessing
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_load import client_main as api_client_main  # noqa: E402
from bench.api_load import percentiles as api_percentiles  # noqa: E402
from bench.ingest import _cpu_seconds  # noqa: E402
from bench.ingest_drain import Hazmon, compare_counts, percentile, wait_written  # noqa: E402
from bench.service_user import viewer_token  # noqa: E402
from hazmon.devservers import InfluxServer, MosquittoServer, ensure_installed  # noqa: E402
from ingest.influx import InfluxClient  # noqa: E402
from ingest.mqtt_url import parse_mqtt_url  # noqa: E402
from sensors.model import Registry  # noqa: E402
from sensors.registry import load_registry, registry_to_json  # noqa: E402
from simulators.fleet import PahoPublisher  # noqa: E402
from simulators.generate import TAILINGS_EVERY, generate_registry  # noqa: E402
from simulators.stream import Simulation  # noqa: E402
from tests.support.sms import TOKEN, mo_url, sms_env, write_routing  # noqa: E402
from tests.support.smsservers import KannelServer, ensure_kannel_installed  # noqa: E402

LOCK_PATH = Path("/tmp/hazmon-soak.lock")
GAS_SENSOR = "S0004"  # a chemical site's lead gas detector (可燃气体检测器A): H 25, HH 50 %LEL, critical
GAS_STEP = 4.0  # %LEL per reading: below the spike filter's floor (5 % of the span), so never held
GAS_PEAK = 58.0  # %LEL above the detector's own reading at the top of the ramp (HH is 50)
GAS_HOLD_S = 90.0
LEAK_SENSOR = GAS_SENSOR  # a slow leak's detector; the soak turns its forecast on (the fleet's is off)
LEAK_RATE = 1.0 / 60.0  # %LEL per s: 1 %LEL a minute, H (25) about 24 min after the leak starts
LEAK_RISE_S = 1800.0  # it climbs this long (to about 31 %LEL: past H, not HH), then falls as fast
STREAMS_PER_USER = 8  # api/routers/stream.py MAX_STREAMS_PER_USER
RSS_EVERY_S = 10.0


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_kb(pid: int, field: str = "VmRSS") -> int | None:
    """A process's resident memory now (kB), or its largest so far with field="VmHWM"."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return None


def children_of(pid: int) -> list[int]:
    """Every descendant of `pid` (hazmon renders reports in a child process)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = [int(x) for x in (task / "children").read_text().split()]
                out += kids
                todo += kids
    return out


def cpu_s(pid: int | None) -> float | None:
    if pid is None:
        return None
    with contextlib.suppress(OSError, IndexError, ValueError):
        return _cpu_seconds(pid)
    return None


# ---- the fleet and its incidents


def soak_registry(n_sites: int, per_site: int, interval_s: float) -> Registry:
    """The generated province; sites get their duty roster (one per site that will see an incident)."""
    reg = generate_registry(n_sites, per_site, seed=1, sensors_per_device=50, interval_s=interval_s)
    return reg


def plan_incidents(reg: Registry, minutes: float, every_s: float, gas_sites: int) -> list[dict]:
    """Every `every_s` from 30 s: the gas detector of `gas_sites` chemical sites climbs past HH and
    back; at one more chemical site a slow leak starts (early warning, then H).
    Each site is used once, so every critical alarm is texted to a phone of its own."""
    chemical = [s.id for s in reg.sites if int(s.id.split("-")[1]) % TAILINGS_EVERY != 0]
    by_id = {s.id: s for s in reg.sites}
    chemical = [s for s in chemical if any(x.id == GAS_SENSOR for x in by_id[s].sensors)]
    step = max(1, len(chemical) // 97)  # spread over the province
    pool = iter(chemical[::step] + [s for s in chemical if s not in set(chemical[::step])])
    plan = []
    t = 30.0
    to_hh_s = 200.0  # a gas ramp passes HH about 130 s after it starts (GAS_STEP per 10 s reading)
    while t + to_hh_s <= minutes * 60:
        for _ in range(gas_sites):
            plan.append({"kind": "gas", "site": next(pool), "sensor": GAS_SENSOR, "start_s": t})
        plan.append({"kind": "trend", "site": next(pool), "sensor": LEAK_SENSOR, "start_s": t})
        t += every_s
    return plan


def with_rosters(reg: Registry, plan: list[dict]) -> tuple[Registry, dict]:
    """Each incident site on its own roster with one operator (phone) on duty around the clock.

    The gas detectors that incidents drive past HH get no on-delay (the generated fleet gives them
    3 s), so the reading that crosses HH raises the alarm itself: their latencies are the pipeline's
    from that reading's publish. Delayed alarms are reported separately. A slow leak's detector gets
    its forecast turned on, as a site engineer would for a detector that should warn of a leak."""
    sites = {p["site"] for p in plan}
    gas = {(p["site"], p["sensor"]) for p in plan if p["kind"] == "gas"}
    leaks = {(p["site"], p["sensor"]) for p in plan if p["kind"] == "trend"}
    phones = {site: f"+86139{k:08d}" for k, site in enumerate(sorted(sites), start=1)}

    def site_for(s):
        sensors = tuple(
            dataclasses.replace(x, on_delay_s=0.0)
            if (s.id, x.id) in gas
            else dataclasses.replace(x, forecast=True)
            if (s.id, x.id) in leaks
            else x
            for x in s.sensors
        )
        return dataclasses.replace(s, roster=f"soak-{s.id}", sensors=sensors)

    new_sites = tuple(site_for(s) if s.id in sites else s for s in reg.sites)
    return Registry(sites=new_sites), phones


def rosters_yaml(phones: dict[str, str]) -> str:
    always = {"shifts": {"all": "00:00-00:00"}, "anchor": "2026-11-02"}
    rosters = [
        {
            "id": f"soak-{site}",
            "name": f"{site} 值班表",
            "people": [{"id": "op", "name": f"值班员{k}", "phone": phone, "roles": ["operator"]}],
            "rotas": {"operator": {**always, "cycle": ["op"]}},
        }
        for k, (site, phone) in enumerate(sorted(phones.items()), start=1)
    ]
    return yaml.safe_dump({"rosters": rosters}, allow_unicode=True)


class Override:
    """The value an incident sensor reports instead of the simulated one, reading by reading."""

    def __init__(self, inc: dict, t0: float, x0: float):
        self.inc = inc
        self.start = t0 + inc["start_s"]
        self.n = 0  # readings overridden so far
        self.x0 = x0
        self.down_from: float | None = None

    def offset(self, now: float) -> float | None:
        """The offset to add now, or None when the incident is over (or not begun)."""
        if now < self.start:
            return None
        el = now - self.start
        if self.inc["kind"] == "trend":
            if el <= LEAK_RISE_S:
                return LEAK_RATE * el
            back = LEAK_RATE * (2 * LEAK_RISE_S - el)
            return back if back > 0 else None
        # gas: GAS_STEP per reading up to GAS_PEAK, held, then GAS_STEP per reading back to 0
        self.n += 1
        up = min(GAS_STEP * self.n, GAS_PEAK)
        if el < GAS_PEAK / GAS_STEP * 10.0 + GAS_HOLD_S:
            return up
        self.down_from = self.down_from if self.down_from is not None else self.n
        left = GAS_PEAK - GAS_STEP * (self.n - self.down_from)
        return left if left > 0 else None


def publisher_main(argv: list[str]) -> int:
    """Child process: the fleet at its own interval for `seconds`, paced reading by reading so the
    load is even; each message stamped with its send time. Incident readings are printed as
    `R {json}` when sent; at the end one line `S {summary}` with the readings per (site, sensor)."""
    mqtt_url, registry_path, plan_path, seconds = argv[0], Path(argv[1]), Path(argv[2]), float(argv[3])
    reg = load_registry(registry_path)
    plan = json.loads(plan_path.read_text())
    t_start = time.time()
    sim = Simulation(reg, start_s=math.floor(t_start))
    slot_of = {(s.site, s.id): i for i, s in enumerate(sim.model.sensors)}
    interval = min(s.interval_s for s in sim.model.sensors)
    rate = len(sim.model.sensors) / interval
    pub = PahoPublisher(parse_mqtt_url(mqtt_url), "soak-fleet")
    pub.connect()
    overrides: dict[str, dict[str, Override]] = {}  # topic -> sensor -> override (built when due)
    pending = sorted(plan, key=lambda p: p["start_s"])
    topic_of = {}
    for d, (site, _dev) in enumerate(sim.layout.devices):
        lo, hi = sim.layout.starts[d], sim.layout.starts[d + 1]
        for slot in sim.layout.order[lo:hi].tolist():
            topic_of[(site, sim.model.sensors[slot].id)] = sim.layout.readings_topics[d]
    counts: Counter = Counter()
    last_ts: dict[str, int] = {}
    out = sys.stdout
    readings = messages = 0
    late_max = 0.0
    t0 = time.monotonic()
    wall0 = time.time()
    k = 0
    while time.monotonic() - t0 < seconds:
        msgs = sim.tick(sim.tick_time(k))
        values = sim.values
        while pending and pending[0]["start_s"] <= (k + 1) * sim.tick_s:
            inc = pending.pop(0)
            slot = slot_of[(inc["site"], inc["sensor"])]
            ov = Override(inc, wall0, float(values[slot]) if values is not None else 0.0)
            overrides.setdefault(topic_of[(inc["site"], inc["sensor"])], {})[inc["sensor"]] = ov
        for m in msgs:
            if not m.readings:
                continue
            due = t0 + readings / rate
            ahead = due - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            else:
                late_max = max(late_max, -ahead)
            if time.monotonic() - t0 >= seconds:
                break
            doc = orjson.loads(m.payload)
            now = time.time()
            ts = max(int(now * 1000), last_ts.get(m.topic, 0) + 1)  # one point per ms per series
            last_ts[m.topic] = doc["ts"] = ts
            site = m.topic.split("/")[2]
            ovs = overrides.get(m.topic)
            if ovs:
                for item in doc["readings"]:
                    ov = ovs.get(item["sensor"])
                    if ov is None:
                        continue
                    off = ov.offset(now)
                    if off is None:
                        if now > ov.start:
                            del ovs[item["sensor"]]
                        continue
                    item["v"] = round(item["v"] + off, 3)
                    line = {"site": site, "sensor": item["sensor"], "ts": ts, "v": item["v"]}
                    out.write("R " + json.dumps({**line, "kind": ov.inc["kind"]}) + "\n")
                    out.flush()
            pub.publish(m.topic, orjson.dumps(doc))
            counts.update((site, item["sensor"]) for item in doc["readings"])
            readings += m.readings
            messages += 1
        k += 1
    elapsed = time.monotonic() - t0
    unacked = pub.flush(60)
    pub.close()
    summary = {
        "readings": readings,
        "messages": messages,
        "elapsed_s": elapsed,
        "readings_per_s": readings / elapsed,
        "unacked": unacked,
        "max_behind_schedule_s": round(late_max, 3),
        "counts": [[s, n, c] for (s, n), c in counts.items()],
    }
    out.write("S " + json.dumps(summary) + "\n")
    out.flush()
    return 0


# ---- stream clients (their own process)


def stream_clients_main(
    base: str,
    tokens: list[str],
    seconds: float,
    stop: multiprocessing.Event,
    out: multiprocessing.Queue,
    dump: Path,
) -> None:
    """One thread per token: GET /api/v1/stream; every `alarm` event with its receipt time.

    Only `alarm` frames are decoded; `values` frames are counted by their bytes."""
    results: list[dict] = [{} for _ in tokens]
    stop_at = time.monotonic() + seconds

    def client(i: int, token: str) -> None:
        res = results[i]
        res.update(alarms=[], values_frames=0, bytes=0, connects=0, errors=[])
        last_id = None
        while time.monotonic() < stop_at and not stop.is_set():
            headers = {"Authorization": f"Bearer {token}"}
            if last_id is not None:
                headers["Last-Event-ID"] = str(last_id)
            try:
                with (
                    httpx.Client(base_url=base, timeout=httpx.Timeout(30, read=60)) as c,
                    c.stream("GET", "/api/v1/stream", headers=headers) as r,
                ):
                    res["connects"] += 1
                    if r.status_code != 200:
                        res["errors"].append(f"status {r.status_code}")
                        time.sleep(2)
                        continue
                    buf = bytearray()
                    for chunk in r.iter_raw():
                        now = time.time()
                        res["bytes"] += len(chunk)
                        start = len(buf) - 1 if buf else 0
                        buf += chunk
                        pos = 0
                        while True:
                            end = buf.find(b"\n\n", max(pos, start))
                            if end < 0:
                                break
                            frame = bytes(buf[pos:end]) if buf[pos : pos + 40].find(b"alarm") >= 0 else b""
                            if not frame and buf.startswith(b"event: values", pos):
                                res["values_frames"] += 1
                            if frame:
                                fields = dict(
                                    ln.split(": ", 1) for ln in frame.decode().split("\n") if ": " in ln
                                )
                                if fields.get("event") == "alarm":
                                    d = orjson.loads(fields["data"])
                                    last_id = d["seq"]
                                    res["alarms"].append(
                                            [d["seq"], d["type"], d["site"], d["source"], d["kind"],
                                             d["time_ms"], now]
                                        )  # fmt: skip
                            pos = end + 2
                            start = pos
                        del buf[:pos]
                        if time.monotonic() >= stop_at:
                            break
            except (httpx.HTTPError, OSError) as e:
                res["errors"].append(repr(e)[:200])
                time.sleep(1)

    def dump_every(period_s: float) -> None:  # what was received so far, should the end not come
        while not stop.wait(period_s):
            with contextlib.suppress(RuntimeError, ValueError):
                dump.with_suffix(".tmp").write_text(json.dumps(results))
                dump.with_suffix(".tmp").replace(dump)

    threads = [threading.Thread(target=client, args=(i, t), daemon=True) for i, t in enumerate(tokens)]
    threading.Thread(target=dump_every, args=(10.0,), daemon=True).start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 90)
    out.put(results)


# ---- the SMS side: every MT fakesmsc logs, with the time it was read


class PhoneLog(threading.Thread):
    def __init__(self, kannel: KannelServer):
        super().__init__(daemon=True, name="soak-phones")
        self.kannel = kannel
        self.got: list[tuple[str, float]] = []  # (phone, time.time())
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                m = self.kannel.mt.get(timeout=0.2)
            except queue.Empty:
                continue
            self.got.append(("+" + m.receiver.lstrip("+"), time.time()))


# ---- RSS and CPU


class Sampler(threading.Thread):
    def __init__(self, pids: dict[str, int], every_s: float = RSS_EVERY_S):
        super().__init__(daemon=True, name="soak-sampler")
        self.pids = pids
        self.every_s = every_s
        self.t0 = time.monotonic()
        self.rss: list[tuple[float, int]] = []  # (s since start, hazmon VmRSS kB)
        self.children_rss: list[tuple[float, int]] = []  # its child processes' VmRSS together
        self.children_cpu: dict[int, float] = {}  # the last CPU seconds of each child seen
        self.cpu: list[tuple[float, dict]] = []
        self.rss_max_kb: dict[str, int] = {}  # every process's largest VmRSS (InfluxDB's for sizing)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            el = time.monotonic() - self.t0
            kb = rss_kb(self.pids["hazmon"])
            if kb is not None:
                self.rss.append((round(el, 1), kb))
            kids = children_of(self.pids["hazmon"])
            self.children_rss.append((round(el, 1), sum(rss_kb(k) or 0 for k in kids)))
            for k in kids:
                c = cpu_s(k)
                if c is not None:
                    self.children_cpu[k] = c
            self.cpu.append((round(el, 1), {k: cpu_s(p) for k, p in self.pids.items()}))
            for name, pid in self.pids.items():
                got = rss_kb(pid)
                if got is not None:
                    self.rss_max_kb[name] = max(got, self.rss_max_kb.get(name, 0))
            self.stop.wait(self.every_s)


def rss_figures(rss: list[tuple[float, int]], minutes: float) -> dict:
    if not rss:
        return {}
    at5 = next((kb for t, kb in rss if t >= 300), None)
    last10 = [kb for t, kb in rss if t >= rss[-1][0] - 600]
    out = {
        "rss_start_mb": round(rss[0][1] / 1024, 1),
        "rss_at_5min_mb": round(at5 / 1024, 1) if at5 else None,
        "rss_end_mb": round(rss[-1][1] / 1024, 1),
        "rss_max_last_10min_mb": round(max(last10) / 1024, 1),
        "rss_growth_after_5min_pct": round((max(last10) - at5) / at5 * 100, 2) if at5 else None,
        "rss_series_mb": [[t, round(kb / 1024, 1)] for t, kb in rss[:: max(1, len(rss) // 200)]],
    }
    return out


# ---- the end: what the journal, the outbox and InfluxDB say


def ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def journal_raises(data_dir: Path) -> list[dict]:
    with contextlib.closing(ro(data_dir / "alarms.sqlite")) as db:
        rows = db.execute(
            "SELECT seq, time_ms, recorded_ms, alarm_id, site, source, kind, details FROM history "
            "WHERE type = 'AlarmRaised' ORDER BY seq"
        ).fetchall()
    out = []
    for seq, time_ms, recorded_ms, alarm_id, site, source, kind, details in rows:
        d = orjson.loads(details)
        out.append(
            {"seq": seq, "time_ms": time_ms, "recorded_ms": recorded_ms, "alarm_id": alarm_id, "site": site,
             "source": source, "kind": kind, "priority": d.get("priority"), "level": d.get("level"),
             "reactivated": bool(d.get("reactivated"))}
        )  # fmt: skip
    return out


def sms_sent(data_dir: Path) -> tuple[dict[str, int], int, int]:
    """alarm_id -> sent_ms of the first message that carried it; messages; messages sent."""
    path = data_dir / "sms.sqlite"
    if not path.exists():
        return {}, 0, 0
    with contextlib.closing(ro(path)) as db:
        rows = db.execute(
            "SELECT n.alarm_id, m.sent_ms FROM notifications n JOIN messages m ON m.id = n.message_id "
            "WHERE m.sent_ms IS NOT NULL"
        ).fetchall()
        n_msg, n_sent = db.execute("SELECT count(*), count(sent_ms) FROM messages").fetchone()
    first: dict[str, int] = {}
    for aid, sent in rows:
        first[aid] = min(sent, first.get(aid, sent))
    return first, n_msg, n_sent


def stored_counts_chunked(influx_url: str, start_ms: int, end_ms: int, chunk_s: int = 300) -> dict:
    """Points per (site, sensor) in [start, end], counted window by window (InfluxDB 1.6's memory)."""
    client = InfluxClient(influx_url, "hazmon", timeout_s=600)
    out: Counter = Counter()
    t = start_ms
    while t <= end_ms:
        hi = min(end_ms, t + chunk_s * 1000 - 1)
        data = client.query(
            f'SELECT count("value") FROM "raw"."readings" WHERE time >= {t}ms AND time <= {hi}ms '
            'GROUP BY "site", "sensor"'
        )
        for result in data.get("results", []):
            for s in result.get("series", []):
                out[(s["tags"]["site"], s["tags"]["sensor"])] += int(s["values"][0][1])
        t = hi + 1
    client.close()
    return dict(out)


def lat_stats(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "p50_ms": round(percentile(xs, 50) * 1000),
        "p99_ms": round(percentile(xs, 99) * 1000),
        "max_ms": round(max(xs) * 1000),
    }


def latencies(
    raises: list[dict], streams: list[dict], sms: dict[str, int], phones_got, phone_of, immediate: set
) -> dict:
    """Publish -> journal, -> stream event, -> SMS submitted to Kannel, -> logged by fakesmsc.

    The origin is the alarm's event time: the publish of the reading that raised it, or for a sensor
    with an on-delay the publish of the first reading beyond the limit plus the delay (when the
    alarm fell due). Buckets: `critical` = the critical (HH) alarms of the incidents' gas detectors
    (no on-delay: from the publish of the reading that crossed HH); `critical_delayed` = critical
    alarms of sensors with an on-delay (the climbing tank levels, 30 s; from when they fell due,
    which the engine notices on its 1 s clock tick); `all_limit_alarms` = every L/LL/H/HH raise."""
    limit_kinds = {"LL", "L", "H", "HH"}
    first = [r for r in raises if not r["reactivated"]]
    by_seq = {r["seq"]: r for r in first}
    buckets = {
        "critical": lambda r: r["priority"] == "critical" and (r["site"], r["source"]) in immediate,
        "critical_delayed": lambda r: (
            r["priority"] == "critical"
            and r["kind"] in limit_kinds
            and (r["site"], r["source"]) not in immediate
        ),
        "all_limit_alarms": lambda r: r["kind"] in limit_kinds,
    }
    out: dict = {}
    for label, keep in buckets.items():
        sel = [r for r in first if keep(r)]
        seqs = {r["seq"] for r in sel}
        journal = [(r["recorded_ms"] - r["time_ms"]) / 1000 for r in sel]
        stream = []
        per: dict[int, float] = {}  # per alarm, the earliest of the clients
        for s in streams:
            for a in s.get("alarms", []):
                if a[1] == "AlarmRaised" and a[0] in seqs:
                    stream.append(a[6] - by_seq[a[0]]["time_ms"] / 1000)
                    per[a[0]] = min(a[6], per.get(a[0], a[6]))
        stream_first = [t - by_seq[q]["time_ms"] / 1000 for q, t in per.items()]
        sms_lat = [(sms[r["alarm_id"]] - r["time_ms"]) / 1000 for r in sel if r["alarm_id"] in sms]
        fake = []
        for r in sel:
            phone = phone_of.get(r["site"])
            if phone is None or r["alarm_id"] not in sms:
                continue
            hits = [t for p, t in phones_got if p == phone and t >= sms[r["alarm_id"]] / 1000 - 0.05]
            if hits:
                fake.append(min(hits) - r["time_ms"] / 1000)
        out[label] = {
            "alarms": len(sel),
            "to_journal": lat_stats(journal),
            "to_stream_event": lat_stats(stream),
            "to_stream_event_first_client": lat_stats(stream_first),
            "stream_receipts_missing": len(sel) * len(streams) - len(stream),
            "to_sms_submitted": lat_stats(sms_lat),
            "to_fakesmsc_logged": lat_stats(fake),
            "texted": len(sms_lat),
        }
    return out


def early_warnings(raises: list[dict], plan: list[dict], incident_readings: list[dict]) -> dict:
    """The slow leaks: how long after a leak began its early warning came, and how long before H.

    A leak's start is its first overridden reading's publish; a leak that began too late in the run
    reaches neither (the warning comes about a quarter of an hour in, H about 24 minutes in)."""
    leaks = {(p["site"], p["sensor"]) for p in plan if p["kind"] == "trend"}
    began: dict[tuple[str, str], int] = {}
    for r in incident_readings:
        key = (r["site"], r["sensor"])
        if r.get("kind") == "trend" and key in leaks:
            began[key] = min(r["ts"], began.get(key, r["ts"]))
    ew = [r for r in raises if r["kind"] == "EARLY_WARNING" and not r["reactivated"]]
    after_start, leads = [], []
    for key in leaks:
        w = [r["time_ms"] for r in ew if (r["site"], r["source"]) == key]
        h = [r["time_ms"] for r in raises if (r["site"], r["source"]) == key and r["kind"] == "H"]
        if w and key in began:
            after_start.append((min(w) - began[key]) / 1000)
        if w and h:
            leads.append((min(h) - min(w)) / 1000)
    return {
        "early_warnings_raised": len(ew),
        "leaks": len(leaks),
        "leaks_begun": len(began),
        "leaks_warned": len({(r["site"], r["source"]) for r in ew} & leaks),
        "warned_after_leak_start_s": sorted(round(x) for x in after_start),
        "lead_before_h_s": sorted(round(x) for x in leads),
        "other_early_warnings": len([r for r in ew if (r["site"], r["source"]) not in leaks]),
    }


# ---- the run


def acquire_lock():
    f = open(LOCK_PATH, "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another soak holds {LOCK_PATH} (pid {LOCK_PATH.read_text().strip()})") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        return publisher_main(sys.argv[2:])
    # a soak started in the background (SIGINT ignored) or by a supervisor still stops its servers
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="how long the fleet publishes")
    ap.add_argument("--sites", type=int, default=2500)
    ap.add_argument("--sensors-per-site", type=int, default=100)
    ap.add_argument("--small", action="store_true", help="a quick trial: 250 sites (25 000 sensors)")
    ap.add_argument("--interval-s", type=float, default=10.0, help="each sensor reports this often")
    ap.add_argument("--incident-every-s", type=float, default=180.0)
    ap.add_argument(
        "--gas-sites", type=int, default=4, help="sites whose gas detector passes HH per incident"
    )
    ap.add_argument("--api-clients", type=int, default=8)
    ap.add_argument("--api-pause-s", type=float, default=1.0, help="each API client's pause between requests")
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--out", type=Path, help="where the JSON goes (default artifacts/soak-<time>.json)")
    ap.add_argument(
        "--keep", action="store_true", help="keep the work folder (logs, journal, InfluxDB) even on success"
    )
    ap.add_argument(
        "--influx-index",
        choices=("inmem", "tsi1"),
        default="inmem",
        help="InfluxDB's series index: inmem (in RAM, the 1.x default) or tsi1 (on disk, memory-mapped)",
    )
    args = ap.parse_args()
    if args.small:
        args.sites = 250
    lock = acquire_lock()
    ensure_installed()
    ensure_kannel_installed()
    seconds = args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="hazmon-soak-"))
    t_setup = time.monotonic()
    reg = soak_registry(args.sites, args.sensors_per_site, args.interval_s)
    plan = plan_incidents(reg, args.minutes, args.incident_every_s, args.gas_sites)
    reg, phones = with_rosters(reg, plan)
    n_sensors = sum(len(s.sensors) for s in reg.sites)
    registry = work / "fleet.json"
    registry.write_bytes(registry_to_json(reg))
    (work / "plan.json").write_text(json.dumps(plan))
    (work / "soak-rosters.yaml").write_text(rosters_yaml(phones), encoding="utf-8")
    write_routing(work / "soak-routing.yaml", [("operator", 0)], priorities=("critical",))
    log(
        f"{len(reg.sites)} sites x {args.sensors_per_site} = {n_sensors:,} sensors every "
        f"{args.interval_s:g} s; {len(plan)} incidents; {args.minutes:g} min; work in {work}"
    )

    mqtt = MosquittoServer(work / "mosquitto")
    influx = InfluxServer(work / "influxdb", index_version=args.influx_index)
    mqtt.start()
    influx.start()
    hazmon = Hazmon(work, registry, mqtt, influx)
    kannel = KannelServer(work / "kannel", mo_url(hazmon.port))
    kannel.start()
    # the service's default merge and urgent waits: the soak measures the shipped settings
    hazmon.env.update(
        sms_env(
            kannel,
            work,
            [("operator", 0)],
            HAZMON_SMS_MERGE_WINDOW_S="20",
            HAZMON_SMS_URGENT_WAIT_S="5",
            HAZMON_SMS_IN_DOUBT_GRACE_S="120",
        )
    )
    hazmon.env["HAZMON_ROSTERS"] = str(work / "soak-rosters.yaml")  # sms_env wrote its own example ones
    hazmon.env["HAZMON_ROUTING"] = str(work / "soak-routing.yaml")
    assert hazmon.env["HAZMON_SMS_CALLBACK_TOKEN"] == TOKEN
    n_users = max(1, math.ceil(args.streams / STREAMS_PER_USER))
    stream_tokens = [viewer_token(hazmon.env, ROOT, username=f"soak-stream-{u}") for u in range(n_users)]
    stream_tokens = [stream_tokens[i // STREAMS_PER_USER] for i in range(args.streams)]
    api_token = hazmon.headers["Authorization"].split()[1]
    phones_log = PhoneLog(kannel)
    phones_log.start()
    figures: dict = {"sites": len(reg.sites), "sensors": n_sensors, "interval_s": args.interval_s,
                     "minutes": args.minutes, "influx_index": args.influx_index,
                     "work": str(work)}  # fmt: skip
    publisher = api_proc = stream_proc = sampler = None
    rc = 1
    try:
        t_spawn = time.monotonic()
        hazmon.start("soak")
        log(f"hazmon up in {time.monotonic() - t_spawn:.1f} s (setup {time.monotonic() - t_setup:.0f} s)")
        figures["hazmon_start_s"] = round(time.monotonic() - t_spawn, 1)
        base = hazmon.base
        stream_q: multiprocessing.Queue = multiprocessing.Queue()
        stream_stop = multiprocessing.Event()
        stream_proc = multiprocessing.Process(
            target=stream_clients_main,
            args=(base, stream_tokens, seconds + 300, stream_stop, stream_q, work / "streams.json"),
            daemon=True,
        )
        stream_proc.start()
        api_q: multiprocessing.Queue = multiprocessing.Queue()
        api_proc = multiprocessing.Process(
            target=api_client_main,
            args=(base, api_token, seconds, args.api_clients, api_q, args.api_pause_s),
            daemon=True,
        )
        written0 = hazmon.stats()["points_written"]
        start_ms = int(time.time() * 1000)
        publisher = subprocess.Popen(
            [sys.executable, __file__, "--publisher", mqtt.url, str(registry), str(work / "plan.json"),
             str(seconds)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        api_proc.start()
        pids = {
            "hazmon": hazmon.proc.pid, "influxd": influx.proc.pid, "mosquitto": mqtt.proc.pid,
            "bearerbox": kannel.bearerbox.pid, "smsbox": kannel.smsbox.pid, "fakesmsc": kannel.fakesmsc.pid,
            "publisher": publisher.pid, "stream_clients": stream_proc.pid, "api_clients": api_proc.pid,
            "bench": os.getpid(),
        }  # fmt: skip
        cpu0 = {k: cpu_s(p) for k, p in pids.items()}
        sampler = Sampler(pids)
        sampler.start()
        got: dict = {"summary": None, "incident": []}

        def read_publisher() -> None:
            for line in publisher.stdout:  # type: ignore[union-attr]
                if line.startswith("R "):
                    got["incident"].append(json.loads(line[2:]))
                elif line.startswith("S "):
                    got["summary"] = json.loads(line[2:])

        reader = threading.Thread(target=read_publisher, daemon=True)
        reader.start()
        while publisher.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                publisher.wait(60)
                break
            with contextlib.suppress(httpx.HTTPError, ValueError):
                st = hazmon.stats()
                h = httpx.get(base + "/healthz", headers=hazmon.headers, timeout=10).json()
                rss = sampler.rss[-1][1] / 1024 if sampler.rss else 0
                unsent = h.get("alarms", {}).get("sms", {}).get("unsent")
                log(
                    f"{(time.monotonic() - t_spawn) / 60:.1f} min: written "
                    f"{st['points_written'] - written0:,} pending {st['pending_points']:,} "
                    f"rss {rss:.0f} MB catching_up {h.get('catching_up')} sms unsent {unsent} "
                    f"incident readings {len(got['incident'])}"
                )
        reader.join(120)
        summary, incident_readings = got["summary"], got["incident"]
        publisher.wait()
        t_published = time.monotonic()
        if summary is None:
            raise RuntimeError("the publisher gave no summary")
        end_ms = int(time.time() * 1000)
        log(
            f"published {summary['readings']:,} readings in {summary['elapsed_s']:.0f} s "
            f"({summary['readings_per_s']:,.0f}/s, at most {summary['max_behind_schedule_s']} s behind)"
        )
        t_done, stats = wait_written(hazmon, written0 + summary["readings"], stall_s=60)
        time.sleep(15)  # the last SMS (urgent wait 5 s, merge) and stream events
        stream_stop.set()
        sampler.stop.set()
        sampler.join(15)
        cpu = {k: None if cpu0[k] is None or (v := cpu_s(p)) is None else round(v - cpu0[k], 1)
               for k, p in pids.items()}  # fmt: skip
        if cpu["publisher"] is None and sampler.cpu:  # it has exited: its last sample
            last = [c["publisher"] for _, c in sampler.cpu if c.get("publisher") is not None]
            cpu["publisher"] = round(last[-1] - cpu0["publisher"], 1) if last else None
        api = api_q.get(timeout=120)
        api_proc.join(30)
        try:
            streams = stream_q.get(timeout=90)
            stream_proc.join(30)
        except queue.Empty:  # a client stuck in a read: what it had received 10 s ago at most
            log("the stream clients did not end: their last dump is used")
            stream_proc.terminate()
            streams = json.loads((work / "streams.json").read_text())
            figures["streams_from_dump"] = True
        log("counting what InfluxDB holds, per series")
        expected = {(s, n): c for s, n, c in summary["counts"]}
        stored = stored_counts_chunked(influx.url, start_ms, end_ms)
        check = compare_counts(expected, stored)
        raises = journal_raises(hazmon.work / "hazmon")
        sms, n_msg, n_sent = sms_sent(hazmon.work / "hazmon")
        immediate = {(p["site"], p["sensor"]) for p in plan if p["kind"] == "gas"}
        lat = latencies(raises, streams, sms, phones_log.got, phones, immediate)
        api_stats = {name: api_percentiles(v) for name, v in api["latencies"].items()}
        all_api = [x for v in api["latencies"].values() for x in v if v is not api["latencies"].get("livez")]
        published = summary["readings"]
        figures.update(
            readings_offered=published,
            readings_per_s=round(summary["readings_per_s"]),
            publisher_max_behind_s=summary["max_behind_schedule_s"],
            readings_stored=sum(stored.values()),
            **check,
            series=len(expected),
            catch_up_s=round(t_done - t_published, 1) if t_done else None,
            rejected=stats.get("readings_rejected"),
            spooled=stats.get("points_spooled"),
            incidents={
                "gas": sum(p["kind"] == "gas" for p in plan),
                "trend": sum(p["kind"] == "trend" for p in plan),
                "incident_readings": len(incident_readings),
            },
            alarms_raised=len([r for r in raises if not r["reactivated"] and r["time_ms"] <= end_ms]),
            alarms_by_kind=dict(Counter(r["kind"] for r in raises if r["time_ms"] <= end_ms)),
            # the fleet's devices go STALE once the publisher has stopped: not the run's alarms
            alarms_after_publishing=dict(Counter(r["kind"] for r in raises if r["time_ms"] > end_ms)),
            critical_raised=lat["critical"]["alarms"],
            sms={"messages": n_msg, "sent_to_kannel": n_sent, "fakesmsc_parts": len(phones_log.got)},
            latency=lat,
            early_warning=early_warnings(raises, plan, incident_readings),
            **rss_figures(sampler.rss, args.minutes),
            cpu_s={**cpu, "hazmon_children": round(sum(sampler.children_cpu.values()), 1)},
            rss_max_mb={k: round(v / 1024, 1) for k, v in sampler.rss_max_kb.items()},
            hazmon_children_rss_max_mb=round(max((k for _, k in sampler.children_rss), default=0) / 1024, 1),
            hazmon_cpu_us_per_reading=round(cpu["hazmon"] / published * 1e6, 1) if cpu["hazmon"] else None,
            api={
                "clients": args.api_clients,
                "pause_s": args.api_pause_s,
                "errors": api["errors"],
                "all_but_livez": api_percentiles(all_api),
                **api_stats,
            },
            streams={
                "clients": len(streams),
                "alarm_events": sum(len(s.get("alarms", [])) for s in streams),
                "values_frames": sum(s.get("values_frames", 0) for s in streams),
                "mb_received": round(sum(s.get("bytes", 0) for s in streams) / 1e6, 1),
                "reconnects": sum(max(0, s.get("connects", 1) - 1) for s in streams),
                "errors": [e for s in streams for e in s.get("errors", [])][:10],
            },
            load_avg_1m_end=os.getloadavg()[0],
        )
        crit = lat["critical"]
        figures["acceptance"] = {
            "stream_p99_lt_1s": crit["to_stream_event"].get("p99_ms", 1e9) < 1000,
            "sms_p99_lt_10s": crit["to_sms_submitted"].get("p99_ms", 1e9) < 10000,
            "rss_growth_lt_5pct": (figures.get("rss_growth_after_5min_pct") or 1e9) < 5,
            "zero_lost": check["lost"] == 0,
            "zero_doubled": check["doubled"] == 0,
        }
        rc = 0 if all(figures["acceptance"].values()) else 1
    finally:
        for p in (publisher,):
            if p is not None and p.poll() is None:
                p.kill()
        for p in (api_proc, stream_proc):
            if p is not None and p.is_alive():
                p.terminate()
        if sampler is not None:
            sampler.stop.set()
        phones_log.stop.set()
        try:
            hazmon.stop()
        except subprocess.TimeoutExpired:
            log("hazmon did not stop within 60 s of SIGTERM: killed")
            hazmon.proc.kill()
        for server in (kannel, influx, mqtt):
            try:
                server.stop()
            except Exception as e:  # stop the others whatever one does
                log(f"stopping {type(server).__name__}: {e!r}")
        lock.close()
    if rc == 0 and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
        figures["work"] = None
    out = args.out or ROOT / "artifacts" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    log(f"figures in {out}")
    print(json.dumps(figures), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
