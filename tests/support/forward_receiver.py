"""A higher platform's receiver of hazmon's upward records (docs/contracts.md §8), run as its own process
by the forwarding tests so they can SIGKILL it: `python -m tests.support.forward_receiver --port P
--db FILE --secret-file FILE`.

It keeps the receiver contract: check the signature (its own HMAC code, not hazmon's, so the test
checks the contract and not the code against itself), store every record keyed by its key in
SQLite (synchronous=FULL), and answer 200 only after the commit. A key seen again is counted, not
stored again. Every request is logged in `batches` with this process's id, so a test can tell a
redelivery of the batch a kill cut off from a real double. With `--hang-flag FILE`, while FILE
exists a batch is stored and then never answered: the test kills the receiver in exactly that
window (stored, not acknowledged), which the receiver contract says must not double anything.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sqlite3
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, kind TEXT, body TEXT, batch INTEGER,
    deliveries INTEGER);
CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER, received_ms INTEGER,
    sender TEXT, key_id TEXT, n INTEGER, signature_ok INTEGER);
"""


class Receiver:
    def __init__(self, db: Path, secret: bytes, hang_flag: Path | None = None):
        self.secret = secret
        self.hang_flag = hang_flag
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)

    def signature_ok(self, headers, body: bytes) -> bool:
        ts = headers.get("X-Hazmon-Timestamp", "")
        given = headers.get("X-Hazmon-Signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return False
        want = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, given)

    def take(self, headers, body: bytes) -> int:
        ok = self.signature_ok(headers, body)
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            if not ok:
                self.conn.execute(
                    "INSERT INTO batches (pid, received_ms, key_id, n, signature_ok) VALUES (?, ?, ?, 0, 0)",
                    (os.getpid(), int(time.time() * 1000), headers.get("X-Hazmon-Key-Id")),
                )
                self.conn.execute("COMMIT")
                return 401
            doc = json.loads(body)
            cur = self.conn.execute(
                "INSERT INTO batches (pid, received_ms, sender, key_id, n, signature_ok)"
                " VALUES (?, ?, ?, ?, ?, 1)",
                (os.getpid(), int(time.time() * 1000), doc["sender"], headers.get("X-Hazmon-Key-Id"),
                 len(doc["records"])),
            )  # fmt: skip
            batch = cur.lastrowid
            for r in doc["records"]:
                self.conn.execute(
                    "INSERT INTO records (key, kind, body, batch, deliveries) VALUES (?, ?, ?, ?, 1)"
                    " ON CONFLICT (key) DO UPDATE SET deliveries = deliveries + 1",
                    (r["key"], r["kind"], json.dumps(r, ensure_ascii=False), batch),
                )
            self.conn.execute("COMMIT")  # stored, then answered: the receiver contract
        return 200


def serve(port: int, receiver: Receiver, tls: tuple[Path, Path] | None = None) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.take(self.headers, body)
            if receiver.hang_flag is not None and receiver.hang_flag.exists():
                time.sleep(3600)  # stored, never answered: the test kills us now
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if tls is not None:  # https with the given certificate and key
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--secret-file", type=Path, required=True)
    p.add_argument("--tls-cert", type=Path, help="serve https with this certificate (and --tls-key)")
    p.add_argument("--tls-key", type=Path)
    p.add_argument("--hang-flag", type=Path, help="while this file exists, store batches but never answer")
    args = p.parse_args()
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    serve(args.port, Receiver(args.db, args.secret_file.read_bytes().strip(), args.hang_flag), tls)


if __name__ == "__main__":
    main()
