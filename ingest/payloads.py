"""Decode MQTT readings payloads (docs/contracts.md §1) into column batches, rejecting bad items.

Pure: no MQTT, no clock of its own. Many messages are decoded together: the JSON parsing and
field extraction are per message and per item (list comprehensions over what orjson built),
while every check (types, finiteness, time window, sensor membership) runs as numpy operations
over the whole batch. A bad item never takes its neighbours with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import orjson

from sensors.index import SensorIndex
from sensors.readings import QUALITY_CODES, ReadingBatch, parse_timestamp_ms

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_ITEMS = 10_000
MAX_FUTURE_MS = 5 * 60 * 1000
SAMPLE_BYTES = 256
TOPIC_PREFIX = "hazmon/v1/"


class RejectReason(IntEnum):
    """Why an item or a whole message was refused; the name is the metrics label."""

    OK = 0
    bad_topic = 1
    unknown_site = 2
    oversize = 3
    invalid_utf8 = 4
    invalid_json = 5
    bad_structure = 6
    too_many_items = 7
    missing_sensor = 8
    unknown_sensor = 9
    wrong_site = 10
    bad_value = 11
    bad_quality = 12
    bad_timestamp = 13
    future_timestamp = 14
    too_late = 15
    bad_status = 16
    retained = 17  # a retained reading: the broker's old copy, replayed at every subscribe
    wrong_device = 18  # a sensor the registry puts on another device of the site
    rewrite = 19  # another value at a timestamp that already holds one (ingest/history_check.py)
    computed = 20  # a computed sensor (registry `compute`): hazmon derives it, nobody publishes it


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One MQTT message as received; `received_ms` is the collector's wall clock."""

    topic: str
    payload: bytes
    received_ms: int
    retained: bool = False  # the broker's retained copy, not a new publish


@dataclass(frozen=True, slots=True)
class Reject:
    """A refused message or item, kept for the API's 'rejected readings' view."""

    received_ms: int
    topic: str
    reason: str
    detail: str
    sample: str


@dataclass(slots=True)
class DecodeResult:
    batch: ReadingBatch
    messages: int = 0
    items: int = 0
    ts_from_receipt: int = 0
    reject_counts: dict[str, int] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    # per reading of `batch`: the index of its message in the list given to decode()
    row_message: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


def split_topic(topic: str) -> tuple[str, str, str] | None:
    """Return (site, device, leaf) of `hazmon/v1/{site}/{device}/{leaf}`, or None."""
    if not topic.startswith(TOPIC_PREFIX):
        return None
    parts = topic[len(TOPIC_PREFIX) :].split("/")
    if len(parts) != 3:
        return None
    return parts[0], parts[1], parts[2]


def _sample(payload: bytes) -> str:
    return payload[:SAMPLE_BYTES].decode("utf-8", errors="replace")


class PayloadDecoder:
    """Turns lists of RawMessage into a ReadingBatch plus counted, explained rejects."""

    def __init__(
        self,
        index: SensorIndex,
        max_lateness_ms: int,
        max_future_ms: int = MAX_FUTURE_MS,
        keep_rejects: int = 50,
    ):
        self.index = index
        self.max_lateness_ms = max_lateness_ms
        self.max_future_ms = max_future_ms
        self.keep_rejects = keep_rejects
        # sensor id -> the sites that have it, to tell "wrong site" from "unknown" (rejects only)
        self._sites_of_sensor: dict[str, list[str]] = {}
        for s in index.sensors:
            self._sites_of_sensor.setdefault(s.id, []).append(s.site)
        # a sensor's registered device: only that gateway may publish its readings (its own
        # store-and-forward replays included); another gateway of the site cannot write its history
        names = sorted({s.device for s in index.sensors if s.device})
        self._device_ids = {name: i for i, name in enumerate(names)}
        self._device_names = names
        self._device_of_slot = np.array(
            [self._device_ids[s.device] if s.device else -1 for s in index.sensors], dtype=np.int64
        )
        self._computed_slot = np.array([s.formula is not None for s in index.sensors], dtype=bool)
        # discrete signals: integer codes, or their states' names in `v` (docs/contracts.md §1)
        self._discrete_slot = np.array([s.discrete for s in index.sensors], dtype=bool)
        self._state_codes = {
            slot: {name: code for code, name in enumerate(s.states)}
            for slot, s in enumerate(index.sensors)
            if s.discrete
        }

    # ---- whole batch

    def decode(self, messages: list[RawMessage], now_ms: int) -> DecodeResult:
        """Decode many messages at once; never raises on hostile input."""
        result = DecodeResult(batch=ReadingBatch.empty(), messages=len(messages))
        items: list[object] = []
        item_slots: list[int] = []  # -1 unknown sensor, -2 missing/non-string sensor
        msg_item_counts: list[int] = []
        msg_top_ts: list[int] = []  # per message: ms, or -1 receipt time, or -2 invalid top-level ts
        msg_received: list[int] = []
        msg_index: list[int] = []  # which input message each accepted-structure message was
        msg_device: list[int] = []  # the topic's device as a registry device id, -2 if none names it
        for i, msg in enumerate(messages):
            parsed = self._parse_message(msg, result)
            if parsed is None:
                continue
            site_sensors, doc_items, top_ts, device = parsed
            msg_device.append(self._device_ids.get(device, -2))
            items.extend(doc_items)
            get = site_sensors.get
            item_slots.extend(
                [
                    get(s, -1) if type(s) is str else -2
                    for s in [it.get("sensor") if type(it) is dict else None for it in doc_items]
                ]
            )
            msg_item_counts.append(len(doc_items))
            msg_top_ts.append(top_ts)
            msg_received.append(msg.received_ms)
            msg_index.append(i)
        result.items += len(items)
        if items:
            self._decode_items(
                items,
                item_slots,
                msg_item_counts,
                msg_top_ts,
                msg_received,
                msg_index,
                msg_device,
                messages,
                now_ms,
                result,
            )
        return result

    def _registered_device(self, slot: int) -> str:
        if slot < 0:
            return ""
        device = int(self._device_of_slot[slot])
        return self._device_names[device] if device >= 0 else ""

    # ---- per message: size, topic, UTF-8, JSON, structure

    def _parse_message(
        self, msg: RawMessage, result: DecodeResult
    ) -> tuple[dict[str, int], list[object], int, str] | None:
        def reject(reason: RejectReason, detail: str) -> None:
            self._count(result, reason, 1)
            self._keep(result, Reject(msg.received_ms, msg.topic, reason.name, detail, _sample(msg.payload)))

        if len(msg.payload) > MAX_PAYLOAD_BYTES:
            reject(RejectReason.oversize, f"{len(msg.payload)} bytes > {MAX_PAYLOAD_BYTES}")
            return None
        parts = split_topic(msg.topic)
        if parts is None or parts[2] != "readings":
            reject(RejectReason.bad_topic, "expected hazmon/v1/{site}/{device}/readings")
            return None
        site_sensors = self.index.by_site.get(parts[0])
        if site_sensors is None:
            reject(RejectReason.unknown_site, f"site {parts[0]!r} is not in the registry")
            return None
        try:
            doc = orjson.loads(msg.payload)
        except orjson.JSONDecodeError:
            # orjson refuses NaN, Infinity and 1e999, which many gateways write for a failed
            # sensor: the stdlib parser reads them, so only that item is refused, not the message.
            try:
                text = msg.payload.decode("utf-8")
            except UnicodeDecodeError as ue:
                reject(RejectReason.invalid_utf8, str(ue)[:200])
                return None
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError) as e:
                reject(RejectReason.invalid_json, str(e)[:200])
                return None
        if type(doc) is not dict:
            reject(RejectReason.bad_structure, "payload must be a JSON object")
            return None
        doc_items = doc.get("readings")
        if doc_items is None and "sensor" in doc:
            doc_items = [doc]
            top = None
        elif type(doc_items) is list:
            top = doc.get("ts")
        else:
            reject(RejectReason.bad_structure, "expected 'readings' list or a single item with 'sensor'")
            return None
        if len(doc_items) > MAX_ITEMS:
            reject(RejectReason.too_many_items, f"{len(doc_items)} items > {MAX_ITEMS}")
            return None
        if top is None:
            top_ts = -1
        else:
            parsed_top = parse_timestamp_ms(top)
            top_ts = parsed_top if parsed_top is not None else -2
        return site_sensors, doc_items, top_ts, parts[1]

    # ---- per item, vectorised checks

    def _name_states(self, raw_v: list[object], slot: np.ndarray, value: np.ndarray) -> None:
        """A discrete signal's state given by name (`"v": "bypassed"`) becomes its code, in place;
        only the items that are not numbers are looked at."""
        for i in np.flatnonzero(np.isnan(value)).tolist():
            names = self._state_codes.get(int(slot[i]))
            v = raw_v[i]
            if names is not None and type(v) is str and v in names:
                value[i] = names[v]

    def _decode_items(
        self,
        items: list[object],
        item_slots: list[int],
        msg_item_counts: list[int],
        msg_top_ts: list[int],
        msg_received: list[int],
        msg_index: list[int],
        msg_device: list[int],
        messages: list[RawMessage],
        now_ms: int,
        result: DecodeResult,
    ) -> None:
        n = len(items)
        counts = np.asarray(msg_item_counts, dtype=np.int64)
        slot = np.asarray(item_slots, dtype=np.int64)
        reason = np.zeros(n, dtype=np.int8)
        R = RejectReason

        is_dict = [type(it) is dict for it in items]
        dicts: list[dict] = [it if d else {} for it, d in zip(items, is_dict, strict=True)]  # type: ignore[misc]
        raw_v = [d.get("v") for d in dicts]
        raw_ts = [d.get("ts") for d in dicts]
        raw_q = [d.get("q") for d in dicts]

        value = _values_to_float(raw_v)
        not_integer = np.zeros(n, dtype=bool)
        if self._state_codes:
            self._name_states(raw_v, slot, value)
            with np.errstate(invalid="ignore"):
                discrete = (slot >= 0) & self._discrete_slot[np.clip(slot, 0, None)]
                not_integer = discrete & (value != np.rint(value))
        quality = np.fromiter(
            (QUALITY_CODES.get(q, -1) if type(q) is str or q is None else -1 for q in raw_q),
            dtype=np.int8,
            count=n,
        )

        # Event time: the item's own ts, else the message's, else the time of receipt.
        top_ts = np.repeat(np.asarray(msg_top_ts, dtype=np.int64), counts)
        received = np.repeat(np.asarray(msg_received, dtype=np.int64), counts)
        own_ts = _timestamps_to_ms(raw_ts)  # -1 absent, -2 invalid
        ts = np.where(own_ts >= 0, own_ts, np.where(top_ts >= 0, top_ts, received))
        bad_ts = (own_ts == -2) | ((own_ts == -1) & (top_ts == -2))
        from_receipt = (own_ts == -1) & (top_ts == -1)
        device = np.repeat(np.asarray(msg_device, dtype=np.int64), counts)
        registered = np.where(slot >= 0, self._device_of_slot[np.clip(slot, 0, None)], -1)
        wrong_device = (registered >= 0) & (device != registered)
        computed = (slot >= 0) & self._computed_slot[np.clip(slot, 0, None)]

        # Checks in order of precedence: the first failing one names the reject.
        checks = [
            (R.bad_structure, ~np.asarray(is_dict, dtype=bool)),
            (R.missing_sensor, slot == -2),
            (R.unknown_sensor, slot == -1),
            (R.wrong_device, wrong_device),
            (R.computed, computed),
            (R.bad_value, ~np.isfinite(value) | not_integer),
            (R.bad_quality, quality < 0),
            (R.bad_timestamp, bad_ts),
            (R.future_timestamp, ts > now_ms + self.max_future_ms),
            (R.too_late, ts < now_ms - self.max_lateness_ms),
        ]
        for code, mask in reversed(checks):
            reason[mask] = code
        ok = reason == 0
        msg_of_item = np.repeat(np.asarray(msg_index, dtype=np.int64), counts)
        result.row_message = msg_of_item[ok]
        result.ts_from_receipt += int(np.count_nonzero(from_receipt & ok))
        result.batch = ReadingBatch(
            slot=slot[ok].astype(np.int32),
            ts_ms=ts[ok],
            value=value[ok],
            quality=quality[ok],
        )
        if ok.all():
            return
        bad_idx = np.flatnonzero(~ok)
        # Unknown sensors that exist on another site are a distinct, more alarming reject.
        for i in bad_idx[reason[bad_idx] == R.unknown_sensor]:
            site = split_topic(messages[msg_of_item[i]].topic)[0]  # type: ignore[index]
            others = self._sites_of_sensor.get(dicts[i].get("sensor"), [])
            if others and site not in others:
                reason[i] = R.wrong_site
        tallies = np.bincount(reason[bad_idx], minlength=len(R))
        for code in np.flatnonzero(tallies):
            self._count(result, R(int(code)), int(tallies[code]))
        for i in bad_idx[-self.keep_rejects :]:
            msg = messages[msg_of_item[i]]
            code = R(int(reason[i]))
            self._keep(
                result,
                Reject(
                    msg.received_ms,
                    msg.topic,
                    code.name,
                    _item_detail(code, items[i], int(ts[i]), now_ms, self._registered_device(int(slot[i]))),
                    _item_sample(items[i]),
                ),
            )

    # ---- bookkeeping

    @staticmethod
    def _count(result: DecodeResult, reason: RejectReason, n: int) -> None:
        result.reject_counts[reason.name] = result.reject_counts.get(reason.name, 0) + n

    def count(self, result: DecodeResult, reason: RejectReason, n: int, examples: list[Reject]) -> None:
        """Count ``n`` readings refused after decoding (e.g. by the history check), keeping examples."""
        self._count(result, reason, n)
        for reject in examples[-self.keep_rejects :]:
            self._keep(result, reject)

    def _keep(self, result: DecodeResult, reject: Reject) -> None:
        result.rejects.append(reject)
        if len(result.rejects) > self.keep_rejects:
            del result.rejects[0]


def _values_to_float(raw: list[object]) -> np.ndarray:
    """Numbers to float64; anything else (bool, str, None, huge int) becomes NaN."""
    nan = math.nan
    cleaned = [v if (type(v) is float or type(v) is int) else nan for v in raw]
    try:
        return np.asarray(cleaned, dtype=np.float64)
    except OverflowError:  # an integer too large for a double: rare, go slow and safe
        return np.asarray([_safe_float(v) for v in cleaned], dtype=np.float64)


def _safe_float(v: float | int) -> float:
    try:
        return float(v)
    except OverflowError:
        return math.nan


_CACHEABLE_TS_TYPES = (str, int, float)


def _timestamps_to_ms(raw: list[object]) -> np.ndarray:
    """Item timestamps to int64 ms; -1 where absent, -2 where invalid."""
    out = np.full(len(raw), -1, dtype=np.int64)
    present = [i for i, t in enumerate(raw) if t is not None]
    if not present:
        return out
    cache: dict[object, int] = {}
    for i in present:
        t = raw[i]
        if type(t) not in _CACHEABLE_TS_TYPES:  # a list or dict is never a time, and unhashable
            out[i] = -2
            continue
        key = (type(t), t)
        ms = cache.get(key)
        if ms is None:
            parsed = parse_timestamp_ms(t)
            ms = parsed if parsed is not None else -2
            cache[key] = ms
        out[i] = ms
    return out


def _item_sample(item: object) -> str:
    try:
        return orjson.dumps(item)[:SAMPLE_BYTES].decode("utf-8", errors="replace")
    except TypeError:
        return repr(item)[:SAMPLE_BYTES]


def _item_detail(code: RejectReason, item: object, ts_ms: int, now_ms: int, device: str = "") -> str:
    d = item if isinstance(item, dict) else {}
    sensor = d.get("sensor")
    R = RejectReason
    if code == R.bad_structure:
        return "item must be a JSON object"
    if code == R.missing_sensor:
        return "item has no string 'sensor'"
    if code == R.unknown_sensor:
        return f"sensor {sensor!r} is not registered for this site"
    if code == R.wrong_site:
        return f"sensor {sensor!r} belongs to another site"
    if code == R.computed:
        return f"sensor {sensor!r} is computed by hazmon from other sensors; readings for it are not taken"
    if code == R.wrong_device:
        return f"sensor {sensor!r} reports through device {device!r}, not the device of this topic"
    if code == R.bad_value:
        return (
            f"sensor {sensor!r}: 'v' must be a finite number (a discrete signal's: an integer code or "
            f"a state name), got {d.get('v')!r:.60}"
        )
    if code == R.bad_quality:
        return f"sensor {sensor!r}: 'q' must be good, uncertain or bad"
    if code == R.bad_timestamp:
        return f"sensor {sensor!r}: timestamp is not ISO 8601 with an offset nor integer ms"
    if code == R.future_timestamp:
        return f"sensor {sensor!r}: timestamp {(ts_ms - now_ms) / 1000:.0f} s in the future"
    if code == R.too_late:
        return f"sensor {sensor!r}: timestamp {(now_ms - ts_ms) / 1000:.0f} s old, beyond accepted lateness"
    return code.name
