"""InfluxDB as docker-compose.yml sets it up: authentication on, an admin, and hazmon's own user
with read and write on its database only, the retention policies made by deploy/influxdb/init.

Debian's InfluxDB 1.6 stands in for the influxdb:1.8 image; tests/support/shipped_stack.py does
what the image's init does on its first start, with the same `influx` commands.
"""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from ingest.influx import CQ_NAME, InfluxClient, InfluxRejected
from tests.support.shipped_stack import InfluxWithAuth, init_like_the_image

pytestmark = pytest.mark.integration

ADMIN_PW, HAZMON_PW = "admin-pw-0123456789", "hazmon-pw-0123456789"


@pytest.fixture
def influx(tmp_path):
    server = InfluxWithAuth(tmp_path / "influxdb")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def as_hazmon(influx):
    client = InfluxClient(influx.url, "hazmon", "hazmon", HAZMON_PW)
    yield client
    client.close()


@pytest.fixture
def as_admin(influx):
    client = InfluxClient(influx.url, "hazmon", "admin", ADMIN_PW)
    yield client
    client.close()


def test_anonymous_reads_and_writes_are_refused(influx):
    init_like_the_image(influx, ADMIN_PW, HAZMON_PW)
    query = httpx.get(influx.url + "/query", params={"q": "SHOW DATABASES"})
    write = httpx.post(influx.url + "/write", params={"db": "hazmon"}, content=b"readings,site=a value=1")
    wrong = httpx.get(influx.url + "/query", params={"q": "SHOW DATABASES"}, auth=("hazmon", "guess"))
    assert (query.status_code, write.status_code, wrong.status_code) == (401, 401, 401)


def test_hazmon_runs_as_a_non_admin_user_on_the_schema_the_init_script_made(influx, as_hazmon, as_admin):
    init_like_the_image(influx, ADMIN_PW, HAZMON_PW)
    with pytest.raises(InfluxRejected) as refused:
        as_hazmon.execute('CREATE DATABASE "other"')
    assert refused.value.status == 403  # not an admin
    as_hazmon.ensure_schema(rollup_every="1s")
    as_hazmon.ensure_schema(rollup_every="1s")  # a restart: the CQ exists and it may not list it
    as_hazmon.ensure_schema(rollup_every="1m")  # ... nor replace it with another definition
    cqs = as_admin.query("SHOW CONTINUOUS QUERIES")["results"][0]["series"]
    assert [cq[0] for s in cqs if s["name"] == "hazmon" for cq in s["values"]] == [CQ_NAME]
    now_ms = int(time.time() * 1000)
    lines = "".join(f"readings,kind=gas,sensor=S0,site=a value={i} {now_ms - i * 1000}\n" for i in range(10))
    as_hazmon.write_lines(lines.encode())
    assert as_hazmon.count_points(site="a", sensor="S0") == 10


def test_a_retention_the_user_may_not_alter_is_logged_with_the_statement(influx, as_hazmon, caplog):
    init_like_the_image(influx, ADMIN_PW, HAZMON_PW)
    with caplog.at_level(logging.WARNING, logger="ingest.influx"):
        as_hazmon.ensure_schema(raw_days=60)
    assert 'an InfluxDB admin must run: ALTER RETENTION POLICY "raw" ON "hazmon" DURATION 60d' in caplog.text
    rps = {row[0]: row for row in as_hazmon._rows('SHOW RETENTION POLICIES ON "hazmon"')}
    assert rps["raw"][1] == "720h0m0s"  # unchanged: 30 days


def test_a_missing_retention_policy_names_what_an_admin_must_run(influx, as_hazmon):
    init_like_the_image(influx, ADMIN_PW, HAZMON_PW, scripts=False)  # deploy/influxdb/init not run
    with pytest.raises(InfluxRejected, match='an InfluxDB admin must run: CREATE RETENTION POLICY "raw"'):
        as_hazmon.ensure_schema()
