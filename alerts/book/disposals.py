"""Closed-loop alarm disposal, 报警处置反馈 (issue 13 item 3): every alarm of priority high or above
must get from the enterprise a cause, the action taken and the person who took it, within a set
time of its raise. The journal keeps one disposal row per alarm number (alerts/book/sqlite_journal.py),
opened in the same transaction as the raise that asks for it, so none is lost or asked twice; this
module is the pure part: the causes, the checks of a disposal, and what counts as overdue."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import median

from alerts.engine.lifecycle import InvalidCommand

#: the causes an enterprise picks from, and how people read them
CAUSES: dict[str, str] = {
    "process": "工艺波动",
    "instrument_fault": "仪表故障",
    "maintenance": "检维修",
    "test": "测试",
    "false_alarm": "误报",
    "other": "其他",
}
MAX_ACTION = 500
MAX_PERSON = 64
DEFAULT_DUE_MIN = 30.0


@dataclass(frozen=True, slots=True)
class Disposal:
    """The disposal asked of one alarm (its number), and what the enterprise answered, if it has."""

    alarm_id: str
    site: str
    scope: str
    source: str
    kind: str
    priority: int
    level: str
    raised_ms: int
    due_ms: int
    disposed_ms: int | None = None
    cause: str | None = None
    action: str | None = None
    person: str | None = None
    user: str | None = None
    comment: str = ""

    @property
    def done(self) -> bool:
        return self.disposed_ms is not None

    def overdue(self, now_ms: int) -> bool:
        """Not disposed by its due time (now), or disposed after it."""
        return (self.disposed_ms if self.disposed_ms is not None else now_ms) > self.due_ms

    def state(self, now_ms: int) -> str:
        """open (still in time), overdue (past due, not done), late (done after the due time), done."""
        if self.disposed_ms is None:
            return "overdue" if now_ms > self.due_ms else "open"
        return "late" if self.disposed_ms > self.due_ms else "done"


@dataclass(frozen=True, slots=True)
class DisposalFigures:
    """How a set of disposals stands at one moment: the figures of /api/v1/disposals/summary and of
    the reports (alerts/reports/model.py), computed here once so the two cannot disagree."""

    asked: int
    done: int  # in time
    late: int  # done after the due time
    open: int  # not yet, still in time
    overdue: int  # not yet, past due
    in_time_ratio: float | None  # done in time / done, 4 decimals; None when none is done
    median_minutes: float | None  # raise to disposal, of those done (in time or late)


def disposal_figures(disposals: Iterable[Disposal], now_ms: int) -> DisposalFigures:
    """Count the disposals by their state at `now_ms`, and the median time to dispose."""
    counts: Counter[str] = Counter()
    took: list[int] = []
    for d in disposals:
        counts[d.state(now_ms)] += 1
        if d.disposed_ms is not None:
            took.append(d.disposed_ms - d.raised_ms)
    done = counts["done"] + counts["late"]
    return DisposalFigures(
        asked=sum(counts.values()),
        done=counts["done"],
        late=counts["late"],
        open=counts["open"],
        overdue=counts["overdue"],
        in_time_ratio=round(counts["done"] / done, 4) if done else None,
        median_minutes=round(median(took) / 60_000, 2) if took else None,
    )


def check_disposal(cause: str, action: str, person: str) -> tuple[str, str, str]:
    """The disposal's fields, cleaned; InvalidCommand (a 422) names what is missing or wrong."""
    if cause not in CAUSES:
        raise InvalidCommand(f"cause must be one of {', '.join(CAUSES)}")
    action, person = action.strip(), person.strip()
    if not action or len(action) > MAX_ACTION:
        raise InvalidCommand(f"action (what was done) is required, at most {MAX_ACTION} characters")
    if not person or len(person) > MAX_PERSON:
        raise InvalidCommand(f"person (who did it) is required, at most {MAX_PERSON} characters")
    return cause, action, person
