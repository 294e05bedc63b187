"""InfluxDB adapter over the v1 HTTP API: schema, line-protocol writes, InfluxQL reads.

The v1 API (`/write`, `/query`) is served by InfluxDB 1.x natively, by 2.x through its v1
compatibility layer and by 3.x (docs/design.md decision 1), so this one adapter covers all three.

Errors (the reading-store port's, ingest/store.py, so callers never see httpx's):
    StorageError
    ├── StoreUnavailable ── InfluxUnavailable   network failure, timeout or 5xx: retry, spool meanwhile
    └── StoreRejected ──── InfluxRejected       4xx: the request itself is wrong; retrying will not help

The port itself (batches in, series out, line protocol hidden) is ingest/influx_store.py's
InfluxStore, built on this client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np

from ingest.store import Series, StoreRejected, StoreUnavailable
from ingest.url_credentials import split_credentials

logger = logging.getLogger(__name__)

RAW_RP = "raw"
ROLLUP_RP = "year"
ROLLUP_MEASUREMENT = "readings_1m"
CQ_NAME = "cq_readings_1m"


class InfluxUnavailable(StoreUnavailable):
    """InfluxDB could not be reached or failed on its side (5xx); worth retrying."""


class InfluxRejected(StoreRejected):
    """InfluxDB refused the request (4xx); retrying the same request will not help."""

    def __init__(self, status: int, message: str):
        super().__init__(status, f"InfluxDB refused the request ({status}): {message}")


@contextmanager
def _map_errors() -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as e:
        raise InfluxUnavailable(f"InfluxDB unreachable: {e.__class__.__name__}: {e}") from None


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _policy_matches(row: list, days: int, default: bool) -> bool:
    """A SHOW RETENTION POLICIES row (name, duration, shard duration, replicas, default) as wanted."""
    return row[1] == f"{days * 24}h0m0s" and row[3] == 1 and (row[4] is True or not default)


def _quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxClient:
    """Talks to one InfluxDB database through the v1 HTTP API."""

    def __init__(
        self,
        base_url: str,
        database: str = "hazmon",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ):
        self.database = database
        base_url, url_user, url_password = split_credentials(base_url)
        username, password = username or url_user, password or url_password
        auth = (username, password or "") if username else None
        self._http = httpx.Client(base_url=base_url.rstrip("/"), auth=auth, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    # ---- health and schema

    def ping(self) -> bool:
        """True if the server answers /ping (it does even before the database exists)."""
        try:
            return self._http.get("/ping", timeout=2.0).status_code == 204
        except httpx.TransportError:
            return False

    def ensure_schema(self, raw_days: int = 30, rollup_days: int = 365, rollup_every: str = "1m") -> None:
        """Create the database, retention policies and the 1-minute continuous query if missing.

        `rollup_every` is how often the CQ recomputes its last 10 minutes (tests use "1s").

        A user without admin rights (docker-compose.yml gives hazmon one) may not create a database
        or a retention policy, nor list continuous queries. What exists is then used as it is: a
        policy that differs from the configuration is logged with the statement an InfluxDB admin
        must run, and only a missing policy is an error (the caller retries).
        """
        db = _quote_ident(self.database)
        self._execute_as_admin(f"CREATE DATABASE {db}")  # refused to a non-admin; the policies tell
        existing = {row[0]: row for row in self._rows(f"SHOW RETENTION POLICIES ON {db}")}
        for rp, days, default in ((RAW_RP, raw_days, True), (ROLLUP_RP, rollup_days, False)):
            row = existing.get(rp)
            if row is not None and _policy_matches(row, days, default):
                continue
            statement = (
                f"{'ALTER' if row else 'CREATE'} RETENTION POLICY {_quote_ident(rp)} ON {db} "
                f"DURATION {days}d REPLICATION 1" + (" DEFAULT" if default else "")
            )
            if self._execute_as_admin(statement):
                continue
            if row is None:
                raise InfluxRejected(
                    403, f"retention policy {rp} is missing and this user may not create it; "
                    f"an InfluxDB admin must run: {statement}"
                )  # fmt: skip
            logger.warning(
                "InfluxDB retention policy %s is %s, not %dd as configured, and this user may not "
                "alter it; an InfluxDB admin must run: %s", rp, row[1], days, statement
            )  # fmt: skip
        into = f"{db}.{_quote_ident(ROLLUP_RP)}.{_quote_ident(ROLLUP_MEASUREMENT)}"
        cq = (
            f"CREATE CONTINUOUS QUERY {_quote_ident(CQ_NAME)} ON {db} "
            f"RESAMPLE EVERY {rollup_every} FOR 10m BEGIN "
            f'SELECT min("value") AS "min", mean("value") AS "mean", max("value") AS "max", '
            f'count("value") AS "count" INTO {into} '
            f'FROM {db}.{_quote_ident(RAW_RP)}."readings" GROUP BY time(1m), * END'
        )
        try:
            exists = any(row[0] == CQ_NAME for row in self._cq_rows())
        except InfluxRejected as e:
            if e.status != 403:
                raise
            exists = False  # only an admin may list them; creating one needs read on the database
        if not exists:
            try:
                self.execute(cq)
            except InfluxRejected as e:
                if "already exists" not in str(e):  # listed by no one but there: keep it
                    raise
        logger.info(
            "InfluxDB schema ready: db=%s rp %s=%dd %s=%dd, cq %s",
            self.database,
            RAW_RP,
            raw_days,
            ROLLUP_RP,
            rollup_days,
            CQ_NAME,
        )

    def _execute_as_admin(self, statement: str) -> bool:
        """Run a statement that needs admin rights; False if this user lacks them (403)."""
        try:
            self.execute(statement)
        except InfluxRejected as e:
            if e.status != 403:
                raise
            return False
        return True

    def _cq_rows(self) -> list[list]:
        data = self._query_raw("SHOW CONTINUOUS QUERIES", db=None)
        for result in data.get("results", []):
            for series in result.get("series", []):
                if series.get("name") == self.database:
                    return series.get("values", [])
        return []

    # ---- writes

    def write_lines(self, body: bytes, rp: str = RAW_RP) -> None:
        """Write a line-protocol body with millisecond timestamps; raise on failure."""
        if not body:
            return
        with _map_errors():
            r = self._http.post(
                "/write", params={"db": self.database, "rp": rp, "precision": "ms"}, content=body
            )
        if r.status_code == 204:
            return
        if r.status_code >= 500 or r.status_code in (401, 403, 404, 408, 429):
            # auth and missing-database errors are configuration faults that an operator can fix,
            # so the data is kept (spooled) rather than dropped
            raise InfluxUnavailable(f"InfluxDB write failed ({r.status_code}): {r.text[:300]}")
        raise InfluxRejected(r.status_code, r.text[:300])

    # ---- queries

    def execute(self, statement: str) -> dict:
        """Run a statement (POST, as InfluxDB requires for CREATE/ALTER/DROP) and check for errors."""
        return self._query_raw(statement, db=self.database, method="POST")

    def _query_raw(self, q: str, db: str | None = None, method: str = "GET") -> dict:
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        with _map_errors():
            r = self._http.request(method, "/query", params=params)
        if r.status_code >= 500:
            raise InfluxUnavailable(f"InfluxDB query failed ({r.status_code}): {r.text[:300]}")
        if r.status_code != 200:
            raise InfluxRejected(r.status_code, r.text[:300])
        data = r.json()
        for result in data.get("results", []):
            if "error" in result:
                raise InfluxRejected(400, f"{result['error']} (query: {q[:200]})")
        return data

    def _rows(self, q: str) -> list[list]:
        data = self._query_raw(q, db=self.database)
        rows: list[list] = []
        for result in data.get("results", []):
            for series in result.get("series", []):
                rows.extend(series.get("values", []))
        return rows

    def query(self, q: str) -> dict:
        """Run a read-only InfluxQL query against the database; epoch ms timestamps."""
        return self._query_raw(q, db=self.database)

    def count_points(self, site: str | None = None, sensor: str | None = None) -> int:
        """Count raw points (all sensors, or one site/sensor)."""
        where = self._where(site, [sensor] if sensor else None, None, None)
        rows = self._rows(f'SELECT count("value") FROM {_quote_ident(RAW_RP)}."readings"{where}')
        return int(sum(r[1] for r in rows if r[1] is not None))

    def read(
        self,
        site: str,
        sensors: list[str],
        start_ms: int,
        end_ms: int,
        downsampled: bool = False,
        limit: int = 100_000,
    ) -> list[Series]:
        """Read one or many sensors of a site over [start, end): raw values or 1-minute min/mean/max."""
        if downsampled:
            fields, source = (
                ("min", "mean", "max", "count"),
                f"{_quote_ident(ROLLUP_RP)}.{ROLLUP_MEASUREMENT}",
            )
        else:
            fields, source = ("value", "quality"), f'{_quote_ident(RAW_RP)}."readings"'
        where = self._where(site, sensors, start_ms, end_ms)
        select = ", ".join(_quote_ident(f) for f in fields)
        data = self.query(
            f'SELECT {select} FROM {source}{where} GROUP BY "sensor" ORDER BY time ASC LIMIT {int(limit)}'
        )
        out: list[Series] = []
        for result in data.get("results", []):
            for s in result.get("series", []):
                rows = s.get("values", [])
                ts = np.array([r[0] for r in rows], dtype=np.int64)
                cols = {
                    f: np.array([np.nan if r[i + 1] is None else r[i + 1] for r in rows], dtype=np.float64)
                    for i, f in enumerate(fields)
                }
                out.append(Series(site=site, sensor=s["tags"]["sensor"], ts_ms=ts, values=cols))
        return out

    def bin_means(
        self, site: str, sensors: list[str], start_ms: int, end_ms: int, step_s: int
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Mean of the 1-minute rollup per sensor in bins of `step_s` (aligned to the epoch) over
        [start, end): sensor -> (bin start times ms, means). Empty bins are left out."""
        where = self._where(site, sensors, start_ms, end_ms)
        data = self.query(
            f'SELECT mean("mean") FROM {_quote_ident(ROLLUP_RP)}.{ROLLUP_MEASUREMENT}{where} '
            f'GROUP BY time({int(step_s)}s), "sensor" fill(none)'
        )
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for result in data.get("results", []):
            for s in result.get("series", []):
                rows = [r for r in s.get("values", []) if r[1] is not None]
                out[s["tags"]["sensor"]] = (
                    np.array([r[0] for r in rows], dtype=np.int64),
                    np.array([r[1] for r in rows], dtype=np.float64),
                )
        return out

    @staticmethod
    def _where(site: str | None, sensors: list[str] | None, start_ms: int | None, end_ms: int | None) -> str:
        terms = []
        if site:
            terms.append(f'"site" = {_quote_str(site)}')
        if sensors:
            terms.append("(" + " OR ".join(f'"sensor" = {_quote_str(s)}' for s in sensors) + ")")
        if start_ms is not None:
            terms.append(f"time >= {int(start_ms)}ms")
        if end_ms is not None:
            terms.append(f"time < {int(end_ms)}ms")
        return (" WHERE " + " AND ".join(terms)) if terms else ""
