"""The history guard's cost on the live path (ingest/history_guard.py): screen, settle and remember
batches of 5 000 readings over a fleet, against the decoder's own cost for the same readings in
the same run (the ratio is what the guard adds to decoding)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, before bench/ingest.py

from ingest.history_guard import HistoryGuard, settle_repeats
from ingest.payloads import PayloadDecoder, RawMessage
from sensors.index import SensorIndex
from simulators.generate import generate_registry

BATCH = 5_000
PER_MESSAGE = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=2_000)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    index = SensorIndex.build(generate_registry(args.sites, PER_MESSAGE, seed=1))
    n = len(index.sensors)
    now = 1_795_392_000_000
    decoder = PayloadDecoder(index, max_lateness_ms=7 * 86_400_000)
    rng = np.random.default_rng(1)
    messages_of_batch = []
    for k in range(args.batches):  # each batch: BATCH // PER_MESSAGE random sites, one message each
        msgs = []
        for site in rng.choice(index.site_ids, BATCH // PER_MESSAGE, replace=False):
            slots = list(index.by_site[site].values())
            items = [
                {"sensor": index.sensors[s].id, "v": float(v), "ts": now - 60_000 + k * 1000}
                for s, v in zip(slots, rng.random(len(slots)), strict=True)
            ]
            device = index.sensors[slots[0]].device
            msgs.append(
                RawMessage(f"hazmon/v1/{site}/{device}/readings", orjson.dumps({"readings": items}), now)
            )
        messages_of_batch.append(msgs)

    t0 = time.perf_counter()
    results = [decoder.decode(msgs, now) for msgs in messages_of_batch]
    decode_s = time.perf_counter() - t0
    readings = sum(len(r.batch) for r in results)

    guard = HistoryGuard(n, trust_from_ms=now - 3_600_000)
    t0 = time.perf_counter()
    for r in results:
        screening = guard.screen(r.batch)
        settle_repeats(r.batch.slot, r.batch.ts_ms, screening)
        screening.changes.any()
        guard.remember(r.batch)
    guard_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "sensors": n,
                "readings": readings,
                "guard_s_per_100k_readings": round(guard_s / readings * 1e5, 4),
                "decode_s_per_100k_readings": round(decode_s / readings * 1e5, 4),
                "guard_to_decode_ratio": round(guard_s / decode_s, 3),
                "guard_bytes_per_sensor": guard.nbytes // n,
            }
        )
    )


if __name__ == "__main__":
    main()
