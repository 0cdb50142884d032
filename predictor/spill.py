"""A local JSON-lines file where prediction log rows wait while the database is unreachable.

Rows are appended (from the writer's spill thread, never the event loop) only when the in-memory queue is full;
the writer thread replays every spill file (this process's and any left by an earlier one) once the database
answers again, then deletes it. The files together are capped at max_bytes (a pod's disk is finite, and a full
ephemeral disk gets the pod evicted with the spill): beyond it append raises SpillFullError.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from mlcore.db.prediction_row import PredictionRow, from_json_line, to_json_line

log = logging.getLogger(__name__)


class SpillFullError(OSError):
    """The spill files already hold max_bytes."""


class SpillFile:
    """Append-only spill files in one directory; one active file per process, rotated before each replay."""

    def __init__(self, directory: Path, max_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._active: Path | None = None
        self._bytes = self.pending_bytes()

    @property
    def bytes(self) -> int:
        """Bytes in the spill files as this process last counted them."""
        return self._bytes

    def append(self, rows: list[PredictionRow]) -> None:
        """Write rows durably (flush + fsync); OSError when the disk refuses (full, read-only), SpillFullError
        when the files would grow past max_bytes."""
        payload = "".join(to_json_line(r) + "\n" for r in rows).encode()
        with self._lock:
            if self.max_bytes is not None and self._bytes + len(payload) > self.max_bytes:
                raise SpillFullError(f"spill files hold {self._bytes} bytes; the limit is {self.max_bytes}")
            if self._active is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._active = self.directory / f"spill-{os.getpid()}-{time.time_ns()}.jsonl"
            fd = os.open(self._active, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                written = os.write(fd, payload)
                if written != len(payload):
                    raise OSError(f"short write to {self._active}: {written} of {len(payload)} bytes")
                os.fsync(fd)
                self._bytes += written
            finally:
                os.close(fd)

    def recount(self) -> int:
        """Count the bytes again (after a replay removed files)."""
        with self._lock:
            self._bytes = self.pending_bytes()
            return self._bytes

    def pending_bytes(self) -> int:
        if not self.directory.is_dir():
            return 0
        total = 0
        for path in self.directory.glob("spill-*.jsonl"):
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # replayed and removed meanwhile
                continue
        return total

    def rotate(self) -> list[Path]:
        """Close the active file and return every spill file waiting for replay, oldest first."""
        with self._lock:
            self._active = None
            if not self.directory.is_dir():
                return []
            return sorted(self.directory.glob("spill-*.jsonl"), key=lambda p: p.stat().st_mtime_ns)

    def pending_rows(self) -> int:
        if not self.directory.is_dir():
            return 0
        total = 0
        for path in self.directory.glob("spill-*.jsonl"):
            with open(path, "rb") as handle:
                total += sum(1 for _ in handle)
        return total


def read_rows(path: Path) -> Iterator[PredictionRow | None]:
    """Rows of a spill file; None for a line that does not parse (a crash mid-write), so the caller can count it."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield from_json_line(line)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("unreadable spill line skipped", extra={"file": str(path), "line": number, "error": str(exc)})
                yield None
