"""The durable SMS outbox (SQLite): every notification once, merged per recipient, sent and retried.

Three steps, each one committed before the next (docs/design.md decisions 2 and 4):

1. `enqueue` stores the notifications the escalation planner lists; the idempotency key (alarm
   episode, step, reminder, recipient) is the primary key, so listing them again is harmless.
2. `plan` turns what waits for one phone into one message (alerts/notify/sms_plan.py: quiet merging and
   the per-recipient rate limit) and marks the notifications as covered, in one transaction.
3. `send_due` marks a message `sending`, calls the gateway, then records `sent` with the gateway's
   ids; an unreachable gateway puts it back with exponential backoff, a refusal fails it.

A crash before step 3's gateway call leaves the message `ready`: it is sent after the restart.
A crash between the gateway's acceptance and the `sent` commit leaves it `sending`: in doubt.
`resolve_in_doubt` waits `in_doubt_grace_ms` for a delivery receipt carrying the message's key
(Kannel echoes it in the DLR URL); a receipt proves it went out, silence means it did not, and
it is sent again. A gateway that echoes no key (plain SMPP) cannot prove either, so the grace
period ends in a resend: at most one duplicate, only for a crash in that instant, never a loss.

Fallback tiers (the notifier's later channels, alerts/notify/channels/gateway.py) are recorded per
message and tier in `channel_posts` (schema version 2); see `failover_due`. Version 1 kept tier 1
alone in `messages.fallback_state/fallback_ms/fallback_error`: the upgrade copies them into tier-1
rows, and the columns stay, unused (nothing reads or writes them from version 2 on).
Version 3 stores each notification's sensor, for the reply hint of a merged text and for
`carried_with`; rows from before it have none ('') and count as a sensor of their own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

import orjson

from alerts.engine.conditions import Priority
from alerts.notify.channels.gateway import (
    DeliveryReceipt,
    DeliveryStatus,
    GatewayUnavailable,
    SmsError,
    SmsGateway,
)
from alerts.notify.escalation import Notification
from alerts.notify.sms_plan import Policy, Waiting, plan_messages
from alerts.notify.sms_render import Rendered
from alerts.sqlite_store import SqliteStore

SCHEMA = (  # version 1
    """CREATE TABLE notifications (
        key TEXT PRIMARY KEY, alarm_id TEXT NOT NULL, site TEXT NOT NULL, recipient_id TEXT NOT NULL,
        phone TEXT NOT NULL, language TEXT NOT NULL, site_name TEXT NOT NULL, line_zh TEXT NOT NULL,
        line_en TEXT NOT NULL, priority INTEGER NOT NULL, event_ms INTEGER NOT NULL,
        queued_ms INTEGER NOT NULL, state TEXT NOT NULL, message_id INTEGER,
        tz TEXT NOT NULL DEFAULT 'Asia/Shanghai')""",
    "CREATE INDEX notifications_waiting ON notifications (state, phone)",
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY, phone TEXT NOT NULL, text TEXT NOT NULL, covers INTEGER NOT NULL,
        created_ms INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        next_try_ms INTEGER NOT NULL, sending_since_ms INTEGER, sent_ms INTEGER, gateway_ids TEXT,
        receipt TEXT, error TEXT, kind TEXT NOT NULL DEFAULT 'alarm',
        fallback_state TEXT, fallback_ms INTEGER, fallback_error TEXT)""",
    "CREATE INDEX messages_state ON messages (state, next_try_ms)",
)
SCHEMA_V2 = (  # one row per message and fallback tier (1, 2, ...): each channel posts a message once
    """CREATE TABLE channel_posts (
        message_id INTEGER NOT NULL REFERENCES messages (id), tier INTEGER NOT NULL,
        channel TEXT NOT NULL, state TEXT NOT NULL, first_ms INTEGER NOT NULL, next_ms INTEGER NOT NULL,
        error TEXT, PRIMARY KEY (message_id, tier))""",
    "CREATE INDEX channel_posts_state ON channel_posts (tier, state)",
    # version 1's single fallback becomes tier 1: `posted`/`failed` stay settled (a group chat never
    # sees a message twice across the upgrade), `posting`/`retry` are offered again from fallback_ms.
    # v1 kept no first attempt nor the channel's name: first_ms is fallback_ms (which can only delay
    # tier 2, by at most one retry interval) and the name is "fallback".
    """INSERT INTO channel_posts (message_id, tier, channel, state, first_ms, next_ms, error)
        SELECT id, 1, 'fallback', fallback_state, coalesce(fallback_ms, 0), coalesce(fallback_ms, 0),
        fallback_error FROM messages WHERE fallback_state IS NOT NULL""",
)
SCHEMA_V3 = (  # each notification's sensor: a merged text's reply hint, one alarm number per sensor
    "ALTER TABLE notifications ADD COLUMN sensor TEXT NOT NULL DEFAULT ''",
    # which alarms a text carried: a reply naming one acknowledges its sensor's others (carried_with)
    "CREATE INDEX notifications_message ON notifications (message_id)",
    "CREATE INDEX notifications_alarm ON notifications (alarm_id)",
)
MIGRATIONS = (SCHEMA, SCHEMA_V2, SCHEMA_V3)
READY, SENDING, SENT, DELIVERED, FAILED = "ready", "sending", "sent", "delivered", "failed"
POSTING, RETRY, POSTED = "posting", "retry", "posted"  # a fallback tier's post (plus FAILED: refused)


def message_key(message_id: int) -> str:
    """The key a message carries to the gateway (and back in its receipts)."""
    return f"sms-{message_id}"


class SmsOutbox(SqliteStore):
    """One SQLite file (WAL, synchronous=FULL); safe to share between the planner and the sender."""

    def __init__(
        self,
        path: str | Path,
        policy: Policy | None = None,
        *,
        # short and capped: an alarm text must go within seconds of the gateway's return
        backoff_ms: tuple[int, ...] = (5_000, 10_000, 20_000, 30_000),
        max_attempts: int = 3_000,  # about a day of retries at the cap
        in_doubt_grace_ms: int = 120_000,
    ):
        self.policy = policy or Policy()
        self.backoff_ms = backoff_ms
        self.max_attempts = max_attempts
        self.in_doubt_grace_ms = in_doubt_grace_ms
        super().__init__(path, MIGRATIONS, "sms outbox")

    # ---- 1. notifications in

    def enqueue(self, items: Iterable[tuple[Notification, Rendered]], now_ms: int) -> int:
        """Store notifications not seen before (by key); returns how many were new."""
        rows = [
            (n.key, n.alarm_id, n.site, n.recipient_id, n.phone, r.language, r.site_name, r.line_zh,
             r.line_en, int(r.priority), r.event_ms, now_ms, "waiting", r.tz, r.sensor)
            for n, r in items
        ]  # fmt: skip
        with self._atomic() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO notifications (key, alarm_id, site, recipient_id, phone, language,"
                " site_name, line_zh, line_en, priority, event_ms, queued_ms, state, tz, sensor)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            return db.total_changes - before

    def cancel_alarm(self, alarm_id: str) -> int:
        """The alarm was acknowledged or cleared: what still waits for it is not sent."""
        with self._atomic() as db:
            cur = db.execute(
                "UPDATE notifications SET state = 'cancelled' WHERE alarm_id = ? AND state = 'waiting'",
                (alarm_id,),
            )
            return cur.rowcount

    def cancel_except(self, open_alarm_ids: Collection[str]) -> int:
        """Cancel what waits for every alarm not in `open_alarm_ids` (acknowledged, cleared, shelved)."""
        with self._atomic() as db:
            cur = db.execute(
                "UPDATE notifications SET state = 'cancelled' WHERE state = 'waiting'"
                " AND alarm_id NOT IN (SELECT value FROM json_each(?))",
                (orjson.dumps(sorted(open_alarm_ids)).decode(),),
            )
            return cur.rowcount

    def enqueue_text(self, phone: str, text: str, now_ms: int, kind: str = "reply") -> int:
        """A message outside any escalation (the answer to an SMS reply); sent like the others."""
        with self._atomic() as db:
            cur = db.execute(
                "INSERT INTO messages (phone, text, covers, created_ms, state, next_try_ms, kind)"
                " VALUES (?,?,0,?,?,?,?)",
                (phone, text, now_ms, READY, now_ms, kind),
            )
            return int(cur.lastrowid or 0)

    # ---- 2. merged messages

    def plan(self, now_ms: int) -> list[int]:
        """Merge what waits per phone into messages the rate limit allows now; returns their ids."""
        created: list[int] = []
        with self._atomic() as db:
            waiting: dict[tuple[str, str], list[Waiting]] = {}
            for key, alarm_id, phone, lang, site_name, zh, en, prio, ev, queued, tz, sensor in db.execute(
                "SELECT key, alarm_id, phone, language, site_name, line_zh, line_en, priority, event_ms,"
                " queued_ms, tz, sensor FROM notifications WHERE state = 'waiting' ORDER BY queued_ms"
            ):
                w = Waiting(key, alarm_id, site_name, zh, en, Priority(prio), ev, queued, tz, sensor)
                waiting.setdefault((phone, lang), []).append(w)
            since = now_ms - self.policy.rate_window_ms
            for (phone, lang), items in waiting.items():
                sent = [
                    t
                    for (t,) in db.execute(
                        "SELECT created_ms FROM messages"
                        " WHERE phone = ? AND created_ms > ? AND kind = 'alarm'",
                        (phone, since),
                    )
                ]
                for p in plan_messages(items, sent, now_ms, self.policy, lang):
                    cur = db.execute(
                        "INSERT INTO messages (phone, text, covers, created_ms, state, next_try_ms)"
                        " VALUES (?,?,?,?,?,?)",
                        (phone, p.text, len(p.covers), now_ms, READY, now_ms),
                    )
                    mid = int(cur.lastrowid or 0)
                    db.executemany(
                        "UPDATE notifications SET state = 'merged', message_id = ? WHERE key = ?",
                        [(mid, k) for k in p.covers],
                    )
                    created.append(mid)
        return created

    # ---- 3. sending

    def send_due(self, gateway: SmsGateway, now_ms: int) -> list[tuple[int, str]]:
        """Send every ready message whose time has come; returns (message id, outcome) pairs."""
        with self._lock:
            due = self._conn.execute(
                "SELECT id, phone, text, attempts FROM messages WHERE state = ? AND next_try_ms <= ?"
                " ORDER BY id",
                (READY, now_ms),
            ).fetchall()
        out = []
        for mid, phone, text, attempts in due:
            with self._atomic() as db:
                db.execute(
                    "UPDATE messages SET state = ?, attempts = ?, sending_since_ms = ? WHERE id = ?",
                    (SENDING, attempts + 1, now_ms, mid),
                )
            outcome = self._send_one(gateway, mid, phone, text, attempts + 1, now_ms)
            out.append((mid, outcome))
            if outcome == "retry":
                break  # the gateway is away: the rest wait for the next round, not for N timeouts now
        return out

    def _send_one(
        self, gateway: SmsGateway, mid: int, phone: str, text: str, attempt: int, now_ms: int
    ) -> str:
        try:
            result = gateway.send(phone, text, message_key(mid))
        except GatewayUnavailable as e:
            if attempt >= self.max_attempts:
                self._set(mid, FAILED, error=f"gave up after {attempt} attempts: {e}")
                return FAILED
            wait = self.backoff_ms[min(attempt - 1, len(self.backoff_ms) - 1)]
            self._set(mid, READY, error=str(e), next_try_ms=now_ms + wait)
            return "retry"
        except SmsError as e:
            self._set(mid, FAILED, error=str(e))
            return FAILED
        with self._atomic() as db:
            db.execute(
                "UPDATE messages SET state = ?, sent_ms = ?, gateway_ids = ? WHERE id = ? AND state = ?",
                (SENT, now_ms, orjson.dumps(list(result.message_ids)).decode(), mid, SENDING),
            )
            # the gateway is back: what waited out a backoff because of it goes now, not later
            db.execute(
                "UPDATE messages SET next_try_ms = ? WHERE state = ? AND next_try_ms > ?",
                (now_ms, READY, now_ms),
            )
        return SENT

    def _set(self, mid: int, state: str, *, error: str | None = None, next_try_ms: int | None = None) -> None:
        with self._atomic() as db:
            db.execute(
                "UPDATE messages SET state = ?, error = coalesce(?, error),"
                " next_try_ms = coalesce(?, next_try_ms) WHERE id = ?",
                (state, error, next_try_ms, mid),
            )

    # ---- receipts and crash recovery

    def on_receipt(self, receipt: DeliveryReceipt, now_ms: int) -> bool:
        """Record a delivery report; matched by our key (Kannel) or by a gateway id. True if matched."""
        mid = None
        if receipt.key and receipt.key.startswith("sms-") and receipt.key[4:].isdigit():
            mid = int(receipt.key[4:])
        with self._atomic() as db:
            if mid is None:
                row = db.execute(
                    "SELECT m.id FROM messages m, json_each(m.gateway_ids) g WHERE g.value = ?",
                    (receipt.message_id,),
                ).fetchone()
                mid = row[0] if row else None
            if mid is None:
                return False
            (current,) = db.execute("SELECT state FROM messages WHERE id = ?", (mid,)).fetchone() or (None,)
            if current is None:
                return False
            final = {DeliveryStatus.DELIVERED: DELIVERED, DeliveryStatus.FAILED: FAILED}.get(receipt.status)
            # any receipt proves the gateway took it: an in-doubt `sending` becomes at least `sent`
            state = final or (SENT if current in (SENDING, READY) else current)
            db.execute(
                "UPDATE messages SET state = ?, sent_ms = coalesce(sent_ms, ?), receipt = ? WHERE id = ?",
                (state, now_ms, f"{receipt.status}: {receipt.raw}", mid),
            )
            return True

    def resolve_in_doubt(self, now_ms: int) -> list[int]:
        """Messages left `sending` by a crash, with no receipt within the grace period: send again."""
        with self._atomic() as db:
            rows = db.execute(
                "SELECT id FROM messages WHERE state = ? AND sending_since_ms <= ?",
                (SENDING, now_ms - self.in_doubt_grace_ms),
            ).fetchall()
            ids = [r[0] for r in rows]
            db.executemany(
                "UPDATE messages SET state = ?, next_try_ms = ?, error = 'in doubt after a crash: resent'"
                " WHERE id = ?",
                [(READY, now_ms, i) for i in ids],
            )
        return ids

    # ---- fallback tiers: the notifier's later channels, for messages the tier before could not deliver

    def failover_due(self, tier: int, channel: str, now_ms: int, after_ms: int) -> list[tuple[int, str, str]]:
        """Alarm messages fallback tier `tier` (1, 2, ...) should post now, marked `posting`.

        Tier 1 gets what SMS gave up on, or still has not sent `after_ms` after it was made. Tier
        k >= 2 gets what tier k-1 refused (`failed`), or still has not posted `after_ms` after its
        first try. Either way only while SMS has not sent it, and each tier once: a post that is
        `posted` or `failed` is settled, `retry` waits for its time. Returns (id, phone, text) and
        marks them in the same transaction; the caller posts each and records the outcome with
        `record_post`. A crash in between leaves `posting`, which is offered again (a group chat
        may then see it twice).
        """
        before = (  # tier k >= 2: tier k-1 refused it, or has not posted it since its first try
            ""
            if tier == 1
            else " JOIN channel_posts prev ON prev.message_id = m.id AND prev.tier = :tier - 1"
            " AND (prev.state = :failed OR (prev.state IN (:posting, :retry) AND prev.first_ms <= :since))"
        )
        sql = (
            f"SELECT m.id, m.phone, m.text FROM messages m{before}"
            " LEFT JOIN channel_posts p ON p.message_id = m.id AND p.tier = :tier"
            " WHERE m.kind = 'alarm'"
            " AND (m.state = :failed OR (m.state IN (:ready, :sending) AND m.created_ms <= :since))"
            " AND (p.state IS NULL OR (p.state IN (:posting, :retry) AND p.next_ms <= :now)) ORDER BY m.id"
        )
        params = {
            "tier": tier, "since": now_ms - after_ms, "now": now_ms, "failed": FAILED, "ready": READY,
            "sending": SENDING, "posting": POSTING, "retry": RETRY,
        }  # fmt: skip
        with self._atomic() as db:
            rows = db.execute(sql, params).fetchall()
            db.executemany(
                "INSERT INTO channel_posts (message_id, tier, channel, state, first_ms, next_ms)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id, tier) DO UPDATE SET"
                " channel = excluded.channel, state = excluded.state, next_ms = excluded.next_ms",
                [(mid, tier, channel, POSTING, now_ms, now_ms) for mid, _, _ in rows],
            )
        return [(int(mid), phone, text) for mid, phone, text in rows]

    def record_post(
        self, mid: int, tier: int, ok: bool, now_ms: int, error: str | None = None, retry_ms: int = 0
    ) -> None:
        """`posted`, or `retry` after `retry_ms` (a channel that is down), or `failed` (it refused)."""
        state = POSTED if ok else (RETRY if retry_ms else FAILED)
        with self._atomic() as db:
            db.execute(
                "UPDATE channel_posts SET state = ?, next_ms = ?, error = ?"
                " WHERE message_id = ? AND tier = ?",
                (state, now_ms + retry_ms, error, mid, tier),
            )

    # ---- reads (API, console, tests)

    def backlog(self) -> dict[str, int]:
        """Messages per state, fallback posts per tier and state, and notifications still waiting.

        Tier 1's posts count as `fallback_<state>` (as before tiers existed), tier k's as
        `fallback<k>_<state>`: the console shows a stuck gateway and a robot that is down.
        """
        with self._lock:
            out = dict(self._conn.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
            (waiting,) = self._conn.execute(
                "SELECT count(*) FROM notifications WHERE state = 'waiting'"
            ).fetchone()
            posts = self._conn.execute(
                "SELECT tier, state, count(*) FROM channel_posts GROUP BY tier, state"
            ).fetchall()
        fallback = {f"{tier_prefix(tier)}_{state}": n for tier, state, n in posts}
        return {**out, **fallback, "waiting_notifications": waiting}

    def oldest_unsent_ms(self) -> int | None:
        """When the oldest message still waiting for the gateway was made (None: nothing waits)."""
        with self._lock:
            (t,) = self._conn.execute(
                "SELECT min(created_ms) FROM messages WHERE state IN (?, ?)", (READY, SENDING)
            ).fetchone()
        return t

    def last_alarm_ids(self, phone: str) -> list[str]:
        """The alarm numbers in the last message that went to `phone`: what a bare "1" reply means."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id FROM messages WHERE phone = ? AND state IN (?, ?, ?) AND kind = 'alarm'"
                " ORDER BY id DESC LIMIT 1",
                (phone, SENDING, SENT, DELIVERED),
            ).fetchone()
            if row is None:
                return []
            ids = self._conn.execute(
                "SELECT DISTINCT alarm_id FROM notifications WHERE message_id = ? ORDER BY alarm_id",
                (row[0],),
            )
            return [a for (a,) in ids]

    def carried_with(self, phone: str, alarm_id: str) -> list[str]:
        """The alarm numbers the alarm texts made for `phone` carried together with `alarm_id`.

        Every such text counts, whatever became of it (sent, delivered, or failed and posted to a
        fallback channel): the officer may have read any of them. `alarm_id` itself is included
        when a text carried it; [] when none did.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT other.alarm_id FROM notifications own"
                " JOIN messages m ON m.id = own.message_id AND m.phone = ? AND m.kind = 'alarm'"
                " JOIN notifications other ON other.message_id = m.id"
                " WHERE own.alarm_id = ? ORDER BY other.alarm_id",
                (phone, alarm_id),
            ).fetchall()
        return [a for (a,) in rows]

    def messages(
        self,
        phone: str | None = None,
        state: str | None = None,
        limit: int = 10_000,
        newest_first: bool = False,
        message_id: int | None = None,
        sites: Collection[str] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[dict]:
        """Messages with what happened to them, optionally for one phone, one state or one id, or
        only the alarm texts all of whose alarms are at `sites` (a reader with a narrower scope),
        or only those made in [since_ms, until_ms) (a report's period).

        `state`/`error` are the SMS gateway's; `channels` lists each fallback tier's post (tier,
        channel, state, error), and `fallback_state`/`fallback_error` repeat tier 1's.
        """
        where: list[str] = []
        args: list[object] = []
        if message_id is not None:
            where.append("id = ?")
            args.append(message_id)
        if phone:
            where.append("phone = ?")
            args.append(phone)
        if state:
            where.append("state = ?")
            args.append(state)
        for bound, op in ((since_ms, ">="), (until_ms, "<")):
            if bound is not None:
                where.append(f"created_ms {op} ?")
                args.append(bound)
        if sites is not None:  # a scoped reader: alarm texts about none but these sites
            where.append(
                "kind = 'alarm' AND NOT EXISTS (SELECT 1 FROM notifications n"
                " WHERE n.message_id = messages.id AND n.site NOT IN (SELECT value FROM json_each(?)))"
            )
            args.append(orjson.dumps(sorted(sites)).decode())
        sql = (
            "SELECT id, phone, text, covers, kind, created_ms, state, attempts, sent_ms, receipt, error,"
            " (SELECT json_group_array(json_object('tier', p.tier, 'channel', p.channel, 'state', p.state,"
            " 'error', p.error)) FROM channel_posts p WHERE p.message_id = messages.id) AS channels"
            " FROM messages"
            + (" WHERE " + " AND ".join(where) if where else "")
            + (" ORDER BY id DESC" if newest_first else " ORDER BY id")
            + " LIMIT ?"
        )
        with self._lock:
            cur = self._conn.execute(sql, (*args, limit))
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        for row in rows:
            posts = sorted(orjson.loads(row.pop("channels")), key=lambda p: p["tier"])
            tier1 = next((p for p in posts if p["tier"] == 1), None)
            row["fallback_state"] = tier1["state"] if tier1 else None
            row["fallback_error"] = tier1["error"] if tier1 else None
            row["channels"] = posts
        return rows


def tier_prefix(tier: int) -> str:
    """The name a fallback tier's counts go by: `fallback` for tier 1, `fallback<k>` for tier k."""
    return "fallback" if tier == 1 else f"fallback{tier}"
