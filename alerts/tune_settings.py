"""Candidate alarm settings for `hazmon tune`: deadband and on/off delay ladders, capped per signal kind.

A candidate never goes below the sensor's current value of any setting (rationalisation tightens a
noisy alarm; it does not loosen what an engineer chose) and never above the kind's cap
(sensors/kinds.py). The caps are the starting points of DOMAIN.md §6 (widely quoted ISA-18.2
guidance, UNCONFIRMED there, so they are data, not law): flow 5 % / 15 s, level 5 % / 60 s,
pressure 2 % / 15 s, temperature 1 % / 60 s. A deadband also stays below the distance between
adjacent limits, so a cleared H can never still be on when L trips.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sensors.kinds import DEFAULT_CAP, KINDS, Cap
from sensors.model import Sensor

DELAY_LADDER_S: tuple[float, ...] = (0.0, 5.0, 15.0, 30.0, 60.0, 120.0)
DEADBAND_LADDER_PCT: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)  # % of the instrument range


#: Per kind (sensors/kinds.py: `SensorKind.tune_cap`, with the sources of its figures).
CAPS: Mapping[str, Cap] = MappingProxyType({k.name: k.tune_cap for k in KINDS.values()})


@dataclass(frozen=True, slots=True, order=True)
class Setting:
    """The three settings that decide how often a limit alarm activates; ordered by what it costs.

    Field order is the preference: an on-delay postpones every real alarm, so it comes last among
    the remedies (compared first); a deadband acts on the process value, an off-delay on time.
    """

    on_delay_s: float
    deadband: float  # in the sensor's unit
    off_delay_s: float

    @classmethod
    def of(cls, sensor: Sensor) -> Setting:
        return cls(float(sensor.on_delay_s), float(sensor.deadband), float(sensor.off_delay_s))


#: No deadband, no delays: the raw limit crossings, against which real excursions are judged.
RAW = Setting(0.0, 0.0, 0.0)


def span(sensor: Sensor) -> float:
    return float(sensor.range[1] - sensor.range[0])


def deadband_room(sensor: Sensor) -> float:
    """The smallest distance between adjacent configured limits (inf with fewer than two)."""
    values = sorted(sensor.limits.configured().values())
    return min((b - a for a, b in itertools.pairwise(values)), default=float("inf"))


def cap_of(sensor: Sensor, caps: Mapping[str, Cap] = CAPS, default: Cap = DEFAULT_CAP) -> Cap:
    return caps.get(sensor.kind, default)


def candidate_settings(
    sensor: Sensor,
    caps: Mapping[str, Cap] = CAPS,
    default: Cap = DEFAULT_CAP,
    deadbands_pct: tuple[float, ...] = DEADBAND_LADDER_PCT,
    delays_s: tuple[float, ...] = DELAY_LADDER_S,
) -> list[Setting]:
    """The current setting first, then every ladder combination at or above it and within the caps.

    Empty for a sensor with no limit and no rate-of-change alarm: nothing to tune.
    """
    has_limits = bool(sensor.limits.configured())
    if not has_limits and not sensor.roc_per_min:
        return []
    now = Setting.of(sensor)
    cap = cap_of(sensor, caps, default)
    room = deadband_room(sensor)
    bands = [now.deadband]
    if has_limits:  # a rate-of-change alarm has no deadband
        bands += [
            pct / 100 * span(sensor)
            for pct in deadbands_pct
            # below the room by more than rounding: 1 % of 2 MPa must not "fit" between 1.60 and 1.62
            if pct <= cap.deadband_pct
            and now.deadband < pct / 100 * span(sensor) < room - 1e-9 * span(sensor)
        ]
    ons = [now.on_delay_s, *(d for d in delays_s if now.on_delay_s < d <= cap.on_delay_s)]
    offs = [now.off_delay_s, *(d for d in delays_s if now.off_delay_s < d <= cap.off_delay_s)]
    grid = [Setting(on, band, off) for on, band, off in itertools.product(ons, bands, offs)]
    return [now, *sorted(set(grid) - {now})]
