"""Service configuration from HAZMON_* environment variables and .env (CONTRACTS.md §6)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hazmon.mqtt_url import parse_mqtt_url

EXAMPLE_REGISTRY = Path(__file__).resolve().parent.parent / "sensors" / "examples"


class Settings(BaseSettings):
    """Every field has a working default for the demo; `hazmon run` needs no file edited."""

    model_config = SettingsConfigDict(env_prefix="HAZMON_", env_file=".env", extra="ignore")

    registry: Path = EXAMPLE_REGISTRY
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_client_id: str = "hazmon-ingest"
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "hazmon"
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    data_dir: Path = Path("./var")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535)

    max_lateness_s: float = Field(7 * 86400, gt=0)  # gateways forward stored readings after outages
    write_batch_points: int = Field(10_000, ge=1)
    write_max_age_s: float = Field(0.5, gt=0)
    spool_max_bytes: int = Field(2 * 1024**3, ge=1024)
    raw_retention_days: int = Field(30, ge=30)  # Order 40: electronic records kept >= 30 days
    rollup_retention_days: int = Field(365, ge=1)
    events_mqtt: bool = True  # publish alarm events on hazmon/v1/{site}/events (CONTRACTS §1)
    events_mqtt_url: str | None = None  # broker for the events, if not HAZMON_MQTT_URL's
    alarm_queue_readings: int = Field(1_000_000, ge=1000)  # readings waiting for the alarm engine
    alarm_queue_wait_s: float = Field(2.0, ge=0)  # how long ingest waits for room before dropping

    @field_validator("mqtt_url", "events_mqtt_url")
    @classmethod
    def _valid_mqtt_url(cls, v: str | None) -> str | None:
        if v is not None:
            parse_mqtt_url(v)  # raises ValueError naming the problem
        return v

    @field_validator("influx_url")
    @classmethod
    def _valid_influx_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"HAZMON_INFLUX_URL {v!r} must start with http:// or https://")
        return v


@lru_cache
def get_settings() -> Settings:
    return Settings()
