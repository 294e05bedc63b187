"""The signature of an upward HTTP body (docs/contracts.md §8): HMAC-SHA256 over timestamp and body.

The signed message is the decimal Unix timestamp (seconds), a dot and the raw body bytes, so a
receiver checks exactly the bytes it got (no re-serialised JSON) and a captured request cannot be
replayed outside the allowed clock skew. Pure: standard library only, shared with test receivers.
"""

from __future__ import annotations

import hashlib
import hmac

KEY_ID_HEADER = "X-Hazmon-Key-Id"
TIMESTAMP_HEADER = "X-Hazmon-Timestamp"
SIGNATURE_HEADER = "X-Hazmon-Signature"
SCHEME = "sha256="
MAX_SKEW_S = 300  # a receiver refuses a timestamp further than this from its clock


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def signed_headers(key_id: str, secret: bytes, body: bytes, now_s: float) -> dict[str, str]:
    """The three headers that sign `body` at `now_s`."""
    ts = str(int(now_s))
    return {KEY_ID_HEADER: key_id, TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(
    secret: bytes, timestamp: str, body: bytes, header: str, now_s: float, max_skew_s: float = MAX_SKEW_S
) -> bool:
    """Whether `header` signs `body` at `timestamp`, and the timestamp is within the skew of `now_s`."""
    if not timestamp.isdigit() or abs(now_s - int(timestamp)) > max_skew_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)
