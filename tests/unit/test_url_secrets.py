"""A user:password in HAZMON_INFLUX_URL or HAZMON_MQTT_URL never reaches a log line or an error
message (issue 11, finding 10): the InfluxDB client sends it as basic auth, logs show it redacted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hazmon.config import Settings
from ingest.influx import InfluxClient
from ingest.mqtt_url import parse_mqtt_url
from ingest.url_credentials import redacted, split_credentials

SECRET = "s3cr%40t-pw"  # percent-encoded '@' inside


def test_influx_credentials_leave_the_url_and_travel_as_basic_auth():
    url = f"http://hazmon:{SECRET}@influx.internal:8086"
    assert split_credentials(url) == ("http://influx.internal:8086", "hazmon", "s3cr@t-pw")
    client = InfluxClient(url)
    assert str(client._http.base_url) == "http://influx.internal:8086"
    assert client._http.auth is not None
    client.close()
    assert redacted(url) == "http://hazmon:***@influx.internal:8086"
    assert redacted("http://influx.internal:8086") == "http://influx.internal:8086"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("influx_url", f"ftp://hazmon:{SECRET}@influx.internal:8086"),
        ("mqtt_url", f"tcp://hazmon:{SECRET}@broker:1883"),
        ("mqtt_url", f"mqtt://hazmon:{SECRET}@broker:notaport"),
    ],
)
def test_a_refused_url_is_named_without_its_password(tmp_path, variable, value):
    with pytest.raises(ValidationError) as refused:
        Settings(data_dir=tmp_path, **{variable: value})
    message = str(refused.value)
    assert "s3cr" not in message and "hazmon" in message


def test_the_mqtt_target_prints_without_its_password():
    target = parse_mqtt_url(f"mqtts://gw:{SECRET}@broker:8883")
    assert target.password == "s3cr@t-pw" and "s3cr" not in str(target)
