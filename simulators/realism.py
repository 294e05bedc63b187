"""Which field behaviours the quiet fleet has: the `--realism` option (issue 9 item 6).

The classic physics (simulators/signals.py alone) is smooth: one slow drift and white noise around a
fixed operating point. Recorded plant data are harder to forecast, and a trend warning has to live
with them. Each *feature* below adds one thing real data have (simulators/field.py, tanks.py):

  ar           coloured noise: a fast Ornstein-Uhlenbeck (AR(1)) part with Student-t innovations
  bursts       heavy-tailed, mean-reverting excursions: puffs at a gas detector, process upsets
  modes        operating modes: pumps and compressors start and stop (flows drop to zero, discharge
               pressures and temperatures step), batch reactors heat, hold and cool, heated tanks
               saw-tooth on their thermostat, tanks are filled to their normal fill height and
               drawn by truck loading on weekday day shifts
  setpoints    operators move controller setpoints; the value settles at the new level
  maintenance  recalibration or sensor swap: the sensor is off line for a while, back with an offset
  weekly       plant load follows the day shift and the working week
  seasonal     tailings pond level drifts with the wet and dry seasons (the dry beach with it);
               showers are heavier-tailed, and heavier in the wet season
  gaps         a sensor or a whole gateway stops reporting for minutes to hours, then resumes

`classic` is none of them (the default: the committed scenario recordings depend on it); `field` is
all of them. A comma list picks some: `ar,modes,weekly`; `field,-gaps` is everything but gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

FEATURES: tuple[str, ...] = (
    "ar",
    "bursts",
    "modes",
    "setpoints",
    "maintenance",
    "weekly",
    "seasonal",
    "gaps",
)
PROFILES: dict[str, frozenset[str]] = {"classic": frozenset(), "field": frozenset(FEATURES)}


@dataclass(frozen=True, slots=True)
class Realism:
    """A set of field features; empty = the classic physics."""

    features: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.features) - set(FEATURES)
        if unknown:
            raise ValueError(
                f"unknown realism feature(s) {', '.join(sorted(unknown))} (one of {', '.join(FEATURES)})"
            )

    def __bool__(self) -> bool:
        return bool(self.features)

    def has(self, feature: str) -> bool:
        return feature in self.features

    def __str__(self) -> str:
        for name, feats in PROFILES.items():
            if feats == self.features:
                return name
        return ",".join(f for f in FEATURES if f in self.features)

    @classmethod
    def parse(cls, text: str) -> Realism:
        """`classic`, `field`, or a comma list of features and profiles, `-name` removing one."""
        chosen: set[str] = set()
        for raw in text.split(","):
            word = raw.strip()
            if not word:
                continue
            drop = word.startswith("-")
            name = word.lstrip("-+")
            if name in PROFILES:
                names = PROFILES[name]
            elif name in FEATURES:
                names = frozenset({name})
            else:
                raise ValueError(
                    f"realism {text!r}: unknown {name!r} (profiles: {', '.join(PROFILES)}; "
                    f"features: {', '.join(FEATURES)})"
                )
            chosen = chosen - names if drop else chosen | names
        return cls(frozenset(chosen))


CLASSIC = Realism()
FIELD = Realism(PROFILES["field"])
