"""The hazard-source register at a provincial scale (issue 13): load and grade a generated registry
of 2 000 chemical sites with four units of three substances each (`hazmon registry check`'s work),
against loading the same registry without its register in the same run (the ratio is what the
register adds). Target: the whole check under 1 s."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project first

from sensors.hazard_register import site_register
from sensors.registry import parse_registry_text, registry_to_json
from simulators.generate import generate_registry

SUBSTANCES = (
    ("液化石油气", 400.0),
    ("甲醇", 3000.0),
    ("液氨", 20.0),
    ("苯", 30.0),
    ("氢", 2.0),
    ("甲苯", 900.0),
)


def with_register(doc: dict) -> dict:
    """Four units of three substances for every site, quantities varied so every grade occurs."""
    for i, site in enumerate(doc["sites"]):
        site["kind"], site["grade"] = "chemical", 1 + i % 4
        site["hazard_sources"] = [
            {
                "id": f"u{u}",
                "name": f"单元{u}",
                "kind": "storage" if u % 2 else "production",
                "exposed_people": (0, 20, 40, 80, 150)[(i + u) % 5],
                "substances": [
                    {"name": name, "q": round(q * 10 ** (((i * 7 + u * 3 + k) % 9 - 6) / 2.5), 3)}
                    for k, (name, q) in enumerate(SUBSTANCES[(u + j) % len(SUBSTANCES)] for j in range(3))
                ],
            }
            for u in range(4)
        ]
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=2_000)
    parser.add_argument("--sensors-per-site", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    plain = orjson.loads(registry_to_json(generate_registry(args.sites, args.sensors_per_site, seed=1)))
    for site in plain["sites"]:
        site["kind"], site["grade"] = "chemical", 2
    plain_text = orjson.dumps(plain).decode()
    full_text = orjson.dumps(with_register(orjson.loads(plain_text))).decode()

    def best(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    baseline_s = best(lambda: parse_registry_text(plain_text))

    def check() -> None:
        sites, issues = parse_registry_text(full_text)
        assert not issues, issues[:3]
        for site in sites:
            site_register(site)

    check_s = best(check)
    sites, _ = parse_registry_text(full_text)
    grade_s = best(lambda: [site_register(s) for s in sites])
    grades = [site_register(s)["computed"] for s in sites]
    result = {
        "sites": args.sites,
        "units": 4 * args.sites,
        "check_s": round(check_s, 3),
        "grade_s": round(grade_s, 3),
        "baseline_load_s": round(baseline_s, 3),
        "ratio": round(check_s / baseline_s, 2),
        "target_s": 1.0,
        "grades": {str(g): grades.count(g) for g in sorted(set(grades), key=lambda g: (g is None, g))},
    }
    print(
        f"[bench-register] {args.sites} sites x 4 units x 3 substances: load + grade {check_s:.3f} s "
        f"(grading alone {grade_s:.3f} s), the same registry without its register loads in {baseline_s:.3f} s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
