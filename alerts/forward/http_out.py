"""Upward records over HTTP (docs/contracts.md §8): a POST of a signed JSON batch.

The body is `{"sender": <key id>, "records": [<record>, ...]}` with the records' stored JSON as it
is; the headers sign it (alerts/forward/signing.py). Only a 2xx answer means the receiver stored the
batch. https URLs are verified against `ca_file` when given (a platform's private CA), else
certifi's bundle (or SSL_CERT_FILE / SSL_CERT_DIR). The secret and the URL's
credentials are never logged: errors name the URL without them.

Errors:
    ForwardError            the batch was not taken; send it again later
    └── ForwardRefused      the receiver answered, but not 2xx (its status is kept)
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from alerts.forward.signing import signed_headers
from ingest.url_credentials import redacted, split_credentials


class ForwardError(Exception):
    """A transport could not deliver; the records stay in the outbox."""


class ForwardRefused(ForwardError):
    """The receiver answered with a status that is not 2xx."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def batch_body(sender: str, bodies: Sequence[bytes]) -> bytes:
    """The JSON batch around records already serialised (no second encoding of each record)."""
    return b'{"sender":' + orjson.dumps(sender) + b',"records":[' + b",".join(bodies) + b"]}"


def display_url(url: str) -> str:
    """The URL for logs and the status: no credentials, no query (a token may travel there)."""
    parts = urlsplit(redacted(url))
    return urlunsplit(parts._replace(query="", fragment=""))


class HttpForwardTransport:
    """POSTs signed batches to one URL."""

    def __init__(
        self,
        url: str,
        key_id: str,
        secret: bytes,
        *,
        timeout_s: float = 10.0,
        ca_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ):
        url, user, password = split_credentials(url)
        auth = (user, password or "") if user else None
        self.url = url
        self.name = f"http {display_url(url)}"
        self.key_id = key_id
        self._secret = secret
        self._clock = clock
        verify: ssl.SSLContext | bool = (
            True if ca_file is None else ssl.create_default_context(cafile=ca_file)
        )
        self._http = httpx.Client(timeout=timeout_s, auth=auth, verify=verify, transport=transport)

    def deliver(self, bodies: Sequence[bytes]) -> None:
        """Send one batch; return when the receiver took it (2xx), else raise ForwardError."""
        body = batch_body(self.key_id, bodies)
        headers = {
            "Content-Type": "application/json",
            **signed_headers(self.key_id, self._secret, body, self._clock()),
        }
        try:
            r = self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise ForwardError(f"{e.__class__.__name__}: {e}") from None
        if not 200 <= r.status_code < 300:
            raise ForwardRefused(r.status_code, f"receiver answered {r.status_code}: {r.text[:200]}")

    def close(self) -> None:
        self._http.close()
