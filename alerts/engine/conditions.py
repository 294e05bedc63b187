"""What the engine detects, as plain data: condition kinds and condition changes.

The engine (array kernels) decides, per sensor, which *conditions* are true: a limit crossed,
a rate of change, an instrument fault, silence, a forecast crossing. The alarm lifecycle
(ISA-18.2, alerts/engine/lifecycle.py) turns condition changes into alarms that people acknowledge,
shelve and clear. This module is the contract between the two and imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class ConditionKind(IntEnum):
    """One column of the engine's condition matrix; each is a separate alarm point per sensor."""

    LL = 0
    L = 1
    H = 2
    HH = 3
    ROC = 4  # rate of change beyond the sensor's limit
    FAULT = 5  # instrument fault: out of range, stuck, spike (detail says which)
    STALE = 6  # no data for too long (a sensor, or a whole device: see `scope`)
    EARLY_WARNING = 7  # forecast to cross a limit within the horizon
    VOTE = 8  # k-out-of-n group vote (e.g. 2oo3 gas detectors) reached
    WARNING_LEVEL = 9  # a tailings pond's colour, blue..red (scope pond; alerts/engine/pond_warnings.py)
    STATE = 10  # a discrete signal in an abnormal state for its on-delay (alerts/engine/state_alarms.py)
    MISMATCH = 11  # a discrete signal's state contradicted by a measurement (a closed valve, rising flow)


#: docs/contracts.md §3 `type` for each kind
EVENT_TYPE = {
    ConditionKind.LL: "alarm",
    ConditionKind.L: "alarm",
    ConditionKind.H: "alarm",
    ConditionKind.HH: "alarm",
    ConditionKind.ROC: "alarm",
    ConditionKind.VOTE: "alarm",
    ConditionKind.WARNING_LEVEL: "alarm",
    ConditionKind.STATE: "alarm",
    ConditionKind.MISMATCH: "alarm",
    ConditionKind.FAULT: "fault",
    ConditionKind.STALE: "stale",
    ConditionKind.EARLY_WARNING: "early_warning",
}


#: instrument fault kinds by the engine's fault code: CONTRACTS §3 `level` of a fault, and in Chinese
FAULT_NAMES = {1: "out_of_range", 2: "stuck", 3: "spike", 4: "bad_quality"}
FAULT_NAMES_ZH = {1: "超量程", 2: "数值冻结(疑似卡死)", 3: "尖峰跳变", 4: "质量位坏"}
FAULT_ZH_BY_LEVEL = {FAULT_NAMES[code]: zh for code, zh in FAULT_NAMES_ZH.items()}


class Priority(IntEnum):
    """ISA-18.2 priorities; the console sorts by these, SMS routing uses them."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """A condition of one alarm point became active or inactive at event time `time_ms`.

    `source` is the sensor id, or the device id when scope == "device" (one silent gateway is
    one incident), or the group id when scope == "group" (a vote), or the site id when
    scope == "pond" (a tailings pond's warning level).
    """

    site: str
    source: str
    kind: ConditionKind
    active: bool
    time_ms: int
    priority: Priority
    level: str  # docs/contracts.md §3 level: HH, H, L, LL, ROC, VOTE, the fault kind, STALE, or a colour
    value: float | None = None
    limit: float | None = None
    message: str = ""
    scope: str = "sensor"  # sensor | device | group | pond
    eta_ms: int | None = None  # early warnings: expected crossing time and its band
    eta_low_ms: int | None = None
    eta_high_ms: int | None = None
    # early warnings: the chance, the model and its evidence (JSON-ready; docs/contracts.md §3 `forecast`)
    forecast: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity of the alarm point: (site, scope, source, kind name); one per sensor and kind."""
        return (self.site, self.scope, self.source, self.kind.name)
