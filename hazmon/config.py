"""Service configuration from HAZMON_* environment variables and .env (docs/contracts.md §6)."""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts.reports.levels import LEVELS, Level
from alerts.reports.periods import DEFAULT_SHIFTS, parse_shifts
from ingest.mqtt_url import parse_mqtt_url
from ingest.url_credentials import redacted

EXAMPLE_REGISTRY = Path(__file__).resolve().parent.parent / "sensors" / "examples"
EXAMPLE_ROSTERS = EXAMPLE_REGISTRY / "rosters"


class Settings(BaseSettings):
    """Every field has a working default for the demo; `hazmon run` needs no file edited."""

    # hide_input_in_errors: a refused HAZMON_INFLUX_URL or HAZMON_MQTT_URL may carry a password
    model_config = SettingsConfigDict(
        env_prefix="HAZMON_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

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
    # the reverse proxies whose X-Forwarded-For/-Proto are believed (uvicorn's forwarded_allow_ips):
    # behind a TLS-offloading proxy the cookies are then Secure, and logins are counted per real address
    trusted_proxies: str = "127.0.0.1"

    max_lateness_s: float = Field(7 * 86400, gt=0)  # gateways forward stored readings after outages
    write_batch_points: int = Field(10_000, ge=1)
    write_max_age_s: float = Field(0.5, gt=0)
    spool_max_bytes: int = Field(2 * 1024**3, ge=1024)
    raw_retention_days: int = Field(30, ge=30)  # Order 40: electronic records kept >= 30 days
    rollup_retention_days: int = Field(365, ge=1)
    # fill the rolling windows of computed sensors (24 h rainfall, 8 h TWA) from the store at start,
    # so a restart does not begin with empty windows (ingest/window_seed.py)
    seed_windows: bool = True
    events_mqtt: bool = True  # publish alarm events on hazmon/v1/{site}/events (docs/contracts.md §1)
    events_mqtt_url: str | None = None  # broker for the events, if not HAZMON_MQTT_URL's
    alarm_queue_readings: int = Field(1_000_000, ge=1000)  # readings waiting for the alarm engine
    alarm_queue_wait_s: float = Field(2.0, ge=0)  # how long ingest waits for room before dropping
    # minutes an enterprise has to record the disposal of a high or critical alarm (alerts/book/disposals.py)
    disposal_due_min: float = Field(30.0, gt=0, le=7 * 24 * 60)

    # ---- notifications (SMS to the officers on duty; docs/design.md decision 4)
    rosters: Path | None = EXAMPLE_ROSTERS  # YAML file or folder imported into the roster store at start
    routing: Path | None = (
        None  # escalation chains (alerts/notify/routing_yaml.py); default: the built-in ones
    )
    sms_gateway: Literal["none", "kannel", "smpp"] = "none"
    kannel_sendsms_url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    kannel_username: str = "hazmon"
    kannel_password: SecretStr = SecretStr("")
    kannel_sender: str | None = None
    kannel_smsc: str | None = None
    # where Kannel reaches hazmon's /sms/kannel/{dlr,mo}; default http://{http_host}:{http_port}/sms/kannel
    sms_callback_base: str | None = None
    # required with Kannel: the callbacks acknowledge alarms, so a stranger must not be able to forge them
    sms_callback_token: SecretStr | None = None
    smpp_host: str = "127.0.0.1"
    smpp_port: int = Field(2775, ge=1, le=65535)
    smpp_system_id: str = "hazmon"
    smpp_password: SecretStr = SecretStr("")
    smpp_source_addr: str = "HAZMON"
    sms_tick_s: float = Field(1.0, gt=0, le=60)
    sms_merge_window_s: float = Field(20.0, ge=0)
    sms_urgent_wait_s: float = Field(5.0, ge=0)
    sms_max_messages: int = Field(4, ge=1)  # per recipient and rate window
    sms_rate_window_s: float = Field(600.0, gt=0)
    sms_in_doubt_grace_s: float = Field(120.0, ge=0)
    sms_country_code: str = "86"
    webhook_url: SecretStr | None = None  # second channel: a WeCom or DingTalk group robot
    webhook_flavor: Literal["wecom", "dingtalk"] = "wecom"
    webhook_secret: SecretStr | None = None  # DingTalk signing secret
    webhook_failover_after_s: float = Field(120.0, ge=0)
    # fault injection for the crash tests: SIGKILL this process once at the named point
    crash_at: str | None = None

    # ---- upward forwarding (alerts/forward/, docs/contracts.md §8): off unless a target is set
    forward_http_url: str | None = None  # the higher platform's receiver, http:// or https://
    forward_ca_file: Path | None = None  # CA certificates (PEM) that verify an https receiver
    forward_mqtt_url: str | None = None  # an upstream broker, mqtt:// or mqtts://
    forward_mqtt_topic: str = "hazmon/upward/v1/{site}/{kind}"
    forward_key_id: str = Field("hazmon", pattern=r"^[A-Za-z0-9._-]{1,64}$")  # the sender's name
    forward_secret: SecretStr | None = None  # HMAC key of the HTTP bodies (or forward_secret_file)
    forward_secret_file: Path | None = None
    forward_sensors: str = ""  # "site/sensor,site/sensor": 1-minute summaries go upward
    forward_summary_delay_s: float = Field(30.0, ge=0, le=3600)
    forward_catchup_min: int = Field(60, ge=1, le=7 * 24 * 60)
    # ---- reports (alerts/reports/; docs/design.md decision 21)
    shifts: str = DEFAULT_SHIFTS  # shift starts in each site's local time; "" or none: no shift reports
    report_levels: str = "site,district,city,province,park"  # scheduled daily reports; "" or none: none
    report_keep_days: int = Field(90, ge=1, le=3650)  # reports whose period ended earlier are deleted

    @field_validator("shifts")
    @classmethod
    def _valid_shifts(cls, v: str) -> str:
        if v.strip().lower() not in ("", "none"):
            parse_shifts(v)  # raises ValueError naming the bad start
        return v

    @field_validator("report_levels")
    @classmethod
    def _valid_report_levels(cls, v: str) -> str:
        bad = [x for x in _words(v) if x not in LEVELS]
        if bad:
            raise ValueError(f"HAZMON_REPORT_LEVELS: {', '.join(bad)} not among {', '.join(LEVELS)}")
        return v

    @property
    def shift_starts(self) -> tuple[time, ...]:
        return () if self.shifts.strip().lower() in ("", "none") else parse_shifts(self.shifts)

    @property
    def report_level_list(self) -> tuple[Level, ...]:
        return tuple(x for x in _words(self.report_levels) if x in LEVELS)  # type: ignore[misc]

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
            raise ValueError(f"HAZMON_INFLUX_URL {redacted(v)!r} must start with http:// or https://")
        return v

    @model_validator(mode="after")
    def _kannel_needs_a_token(self) -> Settings:
        if self.sms_gateway == "kannel":
            token = self.sms_callback_token.get_secret_value() if self.sms_callback_token else ""
            if len(token) < 8:
                raise ValueError(
                    "HAZMON_SMS_CALLBACK_TOKEN (8+ characters of A-Z a-z 0-9 _ -) is required with"
                    " HAZMON_SMS_GATEWAY=kannel: put the same token in Kannel's MO get-url as t=<token>"
                )
        return self

    @field_validator("forward_http_url")
    @classmethod
    def _valid_forward_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"HAZMON_FORWARD_HTTP_URL {redacted(v)!r} must start with http:// or https://")
        return v

    @field_validator("forward_ca_file")
    @classmethod
    def _readable_ca_file(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"HAZMON_FORWARD_CA_FILE {v}: no such file")
        return v

    @field_validator("forward_mqtt_url")
    @classmethod
    def _valid_forward_mqtt_url(cls, v: str | None) -> str | None:
        if v is not None:
            parse_mqtt_url(v)
        return v

    @field_validator("forward_mqtt_topic")
    @classmethod
    def _valid_forward_topic(cls, v: str) -> str:
        if "+" in v or "#" in v or not v or v.startswith("/"):
            raise ValueError(f"HAZMON_FORWARD_MQTT_TOPIC {v!r}: a publish topic has no wildcard (+, #)")
        try:
            v.format(site="s", kind="k")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"HAZMON_FORWARD_MQTT_TOPIC {v!r}: only {{site}} and {{kind}} may be filled in"
            ) from e
        return v

    @field_validator("forward_sensors")
    @classmethod
    def _valid_forward_sensors(cls, v: str) -> str:
        forward_sensor_ids(v)
        return v

    @model_validator(mode="after")
    def _forward_needs_what_it_uses(self) -> Settings:
        if self.forward_sensors.strip() and not self.forward_enabled:
            raise ValueError(
                "HAZMON_FORWARD_SENSORS needs a target: HAZMON_FORWARD_HTTP_URL or HAZMON_FORWARD_MQTT_URL"
            )
        if self.forward_http_url is not None:
            if (self.forward_secret is None) == (self.forward_secret_file is None):
                raise ValueError(
                    "HAZMON_FORWARD_HTTP_URL needs the signing secret: exactly one of HAZMON_FORWARD_SECRET"
                    " and HAZMON_FORWARD_SECRET_FILE"
                )
            if len(self.forward_signing_secret()) < 16:
                raise ValueError("the forward signing secret must have at least 16 bytes")
        return self

    @property
    def forward_enabled(self) -> bool:
        return self.forward_http_url is not None or self.forward_mqtt_url is not None

    def forward_signing_secret(self) -> bytes:
        """The HMAC key of upward HTTP bodies: HAZMON_FORWARD_SECRET, or the file's content (stripped)."""
        if self.forward_secret is not None:
            return self.forward_secret.get_secret_value().encode()
        if self.forward_secret_file is None:
            return b""
        try:
            return self.forward_secret_file.read_bytes().strip()
        except OSError as e:  # the error names the file, never its content
            raise ValueError(f"HAZMON_FORWARD_SECRET_FILE {self.forward_secret_file}: {e.strerror}") from None

    @property
    def callback_base(self) -> str:
        return self.sms_callback_base or f"http://{self.http_host}:{self.http_port}/sms/kannel"


def forward_sensor_ids(text: str) -> list[tuple[str, str]]:
    """`site/sensor,site/sensor` -> [(site, sensor), ...]; ValueError names a malformed entry."""
    out: list[tuple[str, str]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        site, slash, sensor = item.partition("/")
        if not slash or not site or not sensor or "/" in sensor:
            raise ValueError(f"HAZMON_FORWARD_SENSORS: {item!r} is not site/sensor")
        if (site, sensor) not in out:
            out.append((site, sensor))
    return out


def _words(text: str) -> list[str]:
    """`site, district` -> ["site", "district"]; `none` or blank -> []."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    return [] if words == ["none"] else words


@lru_cache
def get_settings() -> Settings:
    return Settings()
