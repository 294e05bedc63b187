# hazmon's retention policies, created as InfluxDB's admin on the first start of the influxdb:1.8
# image: its init script sources every *.sh in /docker-entrypoint-initdb.d (docker-compose.yml
# mounts this folder there) with INFLUXDB_DB set and INFLUX_CMD running `influx -execute` as
# INFLUXDB_ADMIN_USER, after it created the database and the users.
#
# Why here: hazmon's own user (INFLUXDB_USER) has read and write on the database but no admin
# rights, and InfluxDB 1.x lets only an admin create or alter a retention policy. hazmon creates
# the continuous query itself, which needs only read on the database (docs/contracts.md §5).
# The durations are hazmon's defaults (HAZMON_RAW_RETENTION_DAYS 30, HAZMON_ROLLUP_RETENTION_DAYS
# 365); with others configured, hazmon logs the ALTER statement an admin must run.
# tests/integration/test_deploy_influx.py sources this file the same way.

$INFLUX_CMD "CREATE RETENTION POLICY \"raw\" ON \"$INFLUXDB_DB\" DURATION 30d REPLICATION 1 DEFAULT"
$INFLUX_CMD "CREATE RETENTION POLICY \"year\" ON \"$INFLUXDB_DB\" DURATION 365d REPLICATION 1"
