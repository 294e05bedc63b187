"""Parse broker URLs (`mqtt://user:pass@host:port`, `mqtts://...`) shared by the service and simulators."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ingest.url_credentials import redacted


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # never print the password
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """Parse an mqtt:// or mqtts:// URL; raise ValueError naming the bad part (never the password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"MQTT URL {redacted(url)!r}: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"MQTT URL {redacted(url)!r}: no host")
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"MQTT URL {redacted(url)!r}: bad port") from e
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
