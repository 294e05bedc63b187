"""Fault injection for the crash tests: HAZMON_CRASH_AT=<point> SIGKILLs the service once, there.

A marker file in the data folder makes it once: the restarted process runs on past the point,
which is what the tests then check (nothing lost, nothing doubled). Unset, every point is a no-op.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from alerts.notify.channels.gateway import SendResult, SmsGateway

logger = logging.getLogger(__name__)

#: the points the code offers (alerts/notify/notifier.py and CrashingGateway below)
POINTS = ("sms_after_enqueue", "sms_after_plan", "sms_before_send", "sms_after_send")


class FaultPoints:
    """Callable(point): SIGKILL this process the first time the configured point is reached."""

    def __init__(self, crash_at: str | None, data_dir: Path):
        if crash_at is not None and crash_at not in POINTS:
            raise ValueError(f"HAZMON_CRASH_AT must be one of {', '.join(POINTS)}")
        self.crash_at = crash_at
        self.marker = Path(data_dir) / f"crashed-at-{crash_at}"

    def __call__(self, point: str) -> None:
        if point != self.crash_at or self.marker.exists():
            return
        self.marker.write_text(point)
        logger.critical("fault injection: SIGKILL at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)


class CrashingGateway(SmsGateway):
    """Wraps a gateway with the points just before and just after the gateway takes a message."""

    def __init__(self, inner: SmsGateway, fault: FaultPoints):
        self.inner, self.fault = inner, fault

    def set_listener(self, listener) -> None:
        self.inner.set_listener(listener)

    def start(self) -> None:
        self.inner.start()

    def send(self, to: str, text: str, key: str) -> SendResult:
        self.fault("sms_before_send")
        result = self.inner.send(to, text, key)
        self.fault("sms_after_send")
        return result

    def close(self) -> None:
        self.inner.close()
