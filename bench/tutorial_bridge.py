"""The baseline: an MQTT-to-InfluxDB bridge as tutorials write it.

paho's on_message decodes the JSON and, for each reading, sends one HTTP write to InfluxDB
(the `write_points([point])` pattern). Written plainly, not made slow on purpose: one keep-alive
HTTP session, no extra work. Run as its own process by bench/ingest.py.
"""

from __future__ import annotations

import json
import sys
import time

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main(mqtt_port: int, influx_url: str, database: str, run_s: float) -> None:
    http = httpx.Client(base_url=influx_url)
    http.post("/query", params={"q": f'CREATE DATABASE "{database}"'})
    written = 0
    first = last = 0.0

    def on_message(client, userdata, msg):
        nonlocal written, first, last
        data = json.loads(msg.payload)
        site = msg.topic.split("/")[2]
        for item in data["readings"]:
            ts = item.get("ts", data["ts"])
            line = f"readings,sensor={item['sensor']},site={site} value={float(item['v'])} {ts}"
            r = http.post("/write", params={"db": database, "precision": "ms"}, content=line)
            if r.status_code == 204:
                written += 1
                last = time.monotonic()
                first = first or last

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tutorial-bridge")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("hazmon/v1/+/+/readings", qos=1)
    client.on_message = on_message
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    deadline = time.monotonic() + run_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
    client.loop_stop()
    rate = written / (last - first) if last > first else 0.0
    sys.stdout.write(
        json.dumps({"written": written, "active_s": last - first, "readings_per_s": rate}) + "\n"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]))
