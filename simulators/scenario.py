"""A scripted day: chapters of incidents on a loop, for the demo's live fleet (issue 14 item 7).

A scenario is a day of plant life told in a loop of `loop_s` of wall time: each chapter starts at its
offset in the loop, carries the story's clock time (the scripted day runs `day_s / loop_s` times
faster than the wall clock) and the incidents (simulators/incidents.py) it sets off. The fleet
itself runs in real time: hazmon judges staleness and lateness on the wall clock, so only the story
is compressed, not the readings' timestamps. Loops may swap targets (`variants`), so a tank that
overflowed in one loop has drained before its next turn.

Pure: `incidents(loops)` gives the Incident list for the simulation, `starting(t0, t1)` which
chapters begin in a window of loop time (for the narration).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.incidents import Incident, parse_incident
from simulators.signals import DAY_S, HOUR_S


@dataclass(frozen=True, slots=True)
class Chapter:
    """One part of the story: from `offset_s` in each loop; incidents' starts count from it."""

    offset_s: float
    title: str
    variants: tuple[tuple[Incident, ...], ...] = ((),)  # loop k plays variants[k % len]
    shift_change: bool = False  # a shift hands over at this point of the story

    def incidents(self, loop: int) -> tuple[Incident, ...]:
        return self.variants[loop % len(self.variants)]


@dataclass(frozen=True, slots=True)
class ChapterStart:
    """A chapter beginning: when (s from the scenario's start), in which loop, at what story time."""

    at_s: float
    loop: int
    chapter: Chapter
    story_clock: str  # HH:MM of the scripted day
    incidents: tuple[Incident, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    """Chapters in offset order on a loop of `loop_s`; the story's day starts at `day_start_h`."""

    name: str
    loop_s: float
    chapters: tuple[Chapter, ...]
    day_start_h: float = 6.0

    def __post_init__(self) -> None:
        offsets = [c.offset_s for c in self.chapters]
        if offsets != sorted(offsets) or not all(0 <= o < self.loop_s for o in offsets):
            raise ValueError(f"scenario {self.name}: chapters must be in order within the loop")

    @property
    def speedup(self) -> float:
        """Story seconds per wall second."""
        return DAY_S / self.loop_s

    def story_clock(self, offset_s: float) -> str:
        """The scripted day's clock (HH:MM) at `offset_s` into a loop."""
        story_s = (self.day_start_h * HOUR_S + offset_s * self.speedup) % DAY_S
        return f"{int(story_s // HOUR_S):02d}:{int(story_s % HOUR_S // 60):02d}"

    def incidents(self, loops: int) -> list[Incident]:
        """Every incident of `loops` loops, starts counted from the scenario's start."""
        out = []
        for loop in range(loops):
            for c in self.chapters:
                base = loop * self.loop_s + c.offset_s
                out += [
                    Incident(i.kind, i.site, i.target, base + i.start_s, i.duration_s, i.amount)
                    for i in c.incidents(loop)
                ]
        return out

    def starting(self, t0_s: float, t1_s: float) -> list[ChapterStart]:
        """Chapters that begin in [t0_s, t1_s) (s from the scenario's start), in time order."""
        out: list[ChapterStart] = []
        if t1_s <= t0_s:
            return out
        first = max(0, int(t0_s // self.loop_s))
        last = int(t1_s // self.loop_s)
        for loop in range(first, last + 1):
            for c in self.chapters:
                at = loop * self.loop_s + c.offset_s
                if t0_s <= at < t1_s:
                    out.append(ChapterStart(at, loop, c, self.story_clock(c.offset_s), c.incidents(loop)))
        return out


def _inc(*specs: str) -> tuple[Incident, ...]:
    return tuple(parse_incident(s) for s in specs)


#: The demo's day for the example registry (sensors/examples): 24 h told in 30 minutes (48 x).
DEMO_DAY = Scenario(
    name="demo-day",
    loop_s=30 * 60.0,
    chapters=(
        Chapter(
            15.0,
            "gateway tf-gw-02 of the Jianghai tank farm loses power: its last will says offline, "
            "T103's readings go stale; back after 4 min",
            (_inc("outage:jianghai-tf-01/tf-gw-02~4m"),),
        ),
        Chapter(
            60.0,
            "a flange weeps at the Dayawan sulphur recovery unit: GT-311 climbs slowly, the early "
            "warning comes minutes before H (about 20 min in); isolated after 23 min",
            (_inc("seep:dayawan-srs-01/GT-311~23m"),),
        ),
        Chapter(150.0, "shift change: the day shift takes over", shift_change=True),
        Chapter(
            300.0,
            "a receipt into a methanol tank is not stopped at its normal fill height: overfill, "
            "level H then HH; the pump is stopped after 25 min",
            (  # 25 min: HH even from a tank near its low level (the rise is ~0.47 m/min)
                _inc("overfill:jianghai-tf-01/T101-LT~25m"),
                _inc("overfill:jianghai-tf-01/T102-LT~25m"),
            ),
        ),
        Chapter(
            720.0,
            "a rainstorm over a tailings dam, 60 mm/h for 15 min: the rain gauge through the orange "
            "and red rainstorm signals, the pond rises",
            (_inc("storm:renhua-tsf-01~15m=60"), _inc("storm:chenzhou-tsf-01~15m=60")),
        ),
        Chapter(1050.0, "shift change: the night shift takes over", shift_change=True),
    ),
)
