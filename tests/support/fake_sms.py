"""An SMS gateway that keeps what it is given, for unit tests of the notifier and the composition root."""

from __future__ import annotations

from alerts.notify.channels.encoding import encode_sms
from alerts.notify.channels.gateway import SendResult, SmsError, SmsGateway


class FakeSmsGateway(SmsGateway):
    """Records sent messages per number; can be set to fail."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[str, str]]] = {}
        self.fail_with: SmsError | None = None
        self._n = 0

    def send(self, to: str, text: str, key: str) -> SendResult:
        if self.fail_with is not None:
            raise self.fail_with
        enc = encode_sms(text)
        self.sent.setdefault(to, []).append((key, text))
        ids = []
        for _ in enc.parts:
            self._n += 1
            ids.append(f"fake-{self._n}")
        return SendResult(key, tuple(ids), len(enc.parts), enc.data_coding)
