"""A bounded on-disk FIFO of the store's encoded bodies, kept while InfluxDB is unreachable.

One file per flushed batch, written to a temporary name, fsynced, then renamed: a crash leaves
either the whole segment or none of it, never half. Segments replay in sequence order.

Errors (ingest/writer.py holds the readings unacknowledged at the broker on either):
    SpoolError
    ├── SpoolFull          the byte limit (HAZMON_SPOOL_MAX_BYTES) is reached
    └── SpoolWriteFailed   the disk refused the write (full, read-only, I/O error); nothing of the
                           segment is left behind
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

SUFFIX = ".lp"


class SpoolError(Exception):
    """A body could not be made durable in the spool; the caller must hold it upstream (unacked)."""


class SpoolFull(SpoolError):
    """The spool reached its byte limit."""


class SpoolWriteFailed(SpoolError):
    """The filesystem refused the segment (ENOSPC, EROFS, EIO...); no part of it is kept."""


class Spool:
    """Thread-safe segment queue in one folder."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        for tmp in self.folder.glob("*.tmp"):  # a crash mid-write leaves only these
            tmp.unlink(missing_ok=True)
        self._segments: list[tuple[int, int]] = sorted(
            (int(p.stem), p.stat().st_size) for p in self.folder.glob(f"*{SUFFIX}") if p.stem.isdigit()
        )
        self._next = (self._segments[-1][0] + 1) if self._segments else 1
        self._bytes = sum(size for _, size in self._segments)
        if self._segments:
            logger.warning(
                "spool holds %d segments (%d bytes) from a previous run; they will be replayed",
                len(self._segments),
                self._bytes,
            )

    def _path(self, seq: int) -> Path:
        return self.folder / f"{seq:012d}{SUFFIX}"

    @property
    def segments(self) -> int:
        with self._lock:
            return len(self._segments)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def append(self, body: bytes) -> None:
        """Durably add one body at the tail; raise SpoolFull over the limit, SpoolWriteFailed when the
        disk refuses it."""
        with self._lock:
            if self._bytes + len(body) > self.max_bytes:
                raise SpoolFull(f"spool at {self._bytes} bytes, limit {self.max_bytes}")
            seq = self._next
            self._next += 1
        path = self._path(seq)
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(self.folder)
        except OSError as e:
            # neither a partial temp file nor a segment whose rename may not be durable stays behind:
            # the caller keeps the body and tries again, so a leftover would only be replayed twice
            for leftover in (tmp, path):
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
            raise SpoolWriteFailed(f"spool write to {self.folder} failed: {e.strerror or e}") from e
        with self._lock:
            self._segments.append((seq, len(body)))
            self._segments.sort()
            self._bytes += len(body)

    def peek(self) -> tuple[int, bytes] | None:
        """Return the oldest segment (sequence, body) without removing it."""
        with self._lock:
            if not self._segments:
                return None
            seq = self._segments[0][0]
        return seq, self._path(seq).read_bytes()

    def remove(self, seq: int) -> None:
        """Drop a segment once it is safely in InfluxDB."""
        with self._lock:
            for i, (s, size) in enumerate(self._segments):
                if s == seq:
                    del self._segments[i]
                    self._bytes -= size
                    break
            else:
                return
        self._path(seq).unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
