"""`hazmon registry check`: validate a registry and explain every grade and class it can compute
(sensors/hazard_register.py), beside the grade the registry declares (issue 13)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from sensors.hazard_register import CLASS_NAMES, GRADE_NAMES, site_register
from sensors.registry import RegistryError, load_registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    checks = parser.add_subparsers(dest="registry_command", required=True)
    p_check = checks.add_parser(
        "check", help="validate a registry; compute and explain each site's grade (GB 18218) or class (等别)"
    )
    p_check.add_argument(
        "--registry", type=Path, required=True, help="registry file or folder (contracts §2)"
    )
    p_check.add_argument("--json", action="store_true", help="one JSON object per site instead of text")
    p_check.set_defaults(func=check)


def check(args: argparse.Namespace) -> int:
    """0: valid, every computed grade agrees with the declared one; 1: some disagree; 2: invalid."""
    try:
        registry = load_registry(args.registry)
    except RegistryError as e:
        sys.stderr.write(f"hazmon: {e}\n")
        return 2
    disagreements = 0
    for site in registry.sites:
        view = site_register(site)
        disagreements += not view["agrees"]
        if args.json:
            sys.stdout.write(orjson.dumps(view).decode() + "\n")
        else:
            sys.stdout.write(_text(view))
    n = len(registry.sites)
    sys.stdout.write(f"{n} sites, {sum(len(s.sensors) for s in registry.sites)} sensors: valid; ")
    sys.stdout.write(
        f"{disagreements} declared grades differ from the computed ones\n"
        if disagreements
        else "grades agree\n"
    )
    return 1 if disagreements else 0


def _text(view: dict) -> str:
    names = CLASS_NAMES if view["kind"] == "tailings" else GRADE_NAMES
    computed = names.get(view["computed"], "not computed") if view["computed"] is not None else "not computed"
    declared = names.get(view["declared"], str(view["declared"]))
    flag = "" if view["agrees"] else f"  <- the registry says {declared}"
    out = [f"{view['site']} ({view['name']}, {view['kind']}): computed {computed}, declared {declared}{flag}"]
    for unit in view["units"]:
        out.append(f"  unit {unit['id']} ({unit['name']}, {unit['kind']}):")
        out.extend(f"    {line}" for line in unit["lines"])
    out.extend(f"  {line}" for line in view["lines"])
    return "\n".join(out) + "\n"
