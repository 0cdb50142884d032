"""Loss-free, non-blocking prediction logging to prediction_logs.

Requests only enqueue rows (never wait on the database or the disk). One background thread drains the bounded queue
in bulk inserts. When the database is down it retries with exponential backoff (tenacity) while the queue absorbs
new rows; once the queue is full, rows go to a local spill file (written by a second thread, capped at
spill_max_bytes), replayed after recovery. Inserts ignore ids that are
already present, so a retry after an unacknowledged commit or a replay after a crash never duplicates a row.
Only when the spill file cannot be written either (disk full, or over its cap) is a row lost: counted in a metric,
logged loudly.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError, StatementError
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential
from tenacity.stop import stop_base

from mlcore.db import PredictionLog, create_db_engine, session_scope, upgrade_to_head
from mlcore.db.prediction_row import PredictionRow, insert_values, to_json_line
from mlcore.errors import DatabaseError
from predictor import metrics
from predictor.spill import SpillFile, read_rows

log = logging.getLogger(__name__)


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not be reached (worth retrying), not when it refused the rows."""
    return isinstance(exc, DatabaseError) and isinstance(exc.__cause__, OperationalError | InterfaceError)


def refused_for_its_data(exc: BaseException) -> bool:
    """True when a row's own values are the problem: SQLSTATE class 22 (data) or 23 (constraint), or a value that
    could not be converted for sending. False for schema, privilege or server problems, which no row can fix."""
    if not isinstance(exc, DatabaseError):
        return True  # raised while adapting the row's values, before the database saw them
    cause = exc.__cause__
    if isinstance(cause, DBAPIError):
        return isinstance(cause, DataError | IntegrityError)
    return isinstance(cause, StatementError)  # a bind value that could not be converted


class PredictionLogWriter:
    def __init__(
        self,
        engine: Engine | None = None,
        *,
        spill_dir: Path,
        queue_size: int = 10_000,
        batch_rows: int = 500,
        flush_interval_s: float = 0.2,
        retry_max_wait_s: float = 5.0,
        migrate: bool = False,
        spill_max_bytes: int | None = None,
    ) -> None:
        self.engine = engine or create_db_engine()
        self.spill = SpillFile(spill_dir, max_bytes=spill_max_bytes)
        metrics.LOG_SPILL_BYTES.set(self.spill.bytes)
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self.retry_max_wait_s = retry_max_wait_s
        self._migrate = migrate
        self._queue: queue.Queue[PredictionRow] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Rows accepted but not yet in the database or the spill file; flush() waits for zero.
        self._outstanding = 0
        self._idle = threading.Condition()
        self._spill_waiting = threading.Event()
        self._next_replay_probe = 0.0
        self.db_healthy = False
        # Overflow waits here for the spill thread: fsync on the event loop would stall every request.
        self._overflow: queue.Queue[list[PredictionRow] | None] = queue.Queue(maxsize=max(64, queue_size))
        self._spill_thread: threading.Thread | None = None

    # --- request side -------------------------------------------------------------------------------------

    def log(self, rows: list[PredictionRow]) -> None:
        """Hand rows to the writer without blocking; spill what the full queue cannot take."""
        overflow: list[PredictionRow] = []
        with self._idle:
            for row in rows:
                try:
                    self._queue.put_nowait(row)
                    self._outstanding += 1
                except queue.Full:
                    overflow.append(row)
        metrics.LOG_QUEUE_DEPTH.set(self._queue.qsize())
        if overflow:
            self._hand_to_spill(overflow)

    def _hand_to_spill(self, rows: list[PredictionRow]) -> None:
        if self._spill_thread is None:
            self._spill(rows, reason="queue full")  # not started (tests, shutdown): nobody else would write them
            return
        with self._idle:
            self._outstanding += len(rows)
        try:
            self._overflow.put_nowait(rows)
        except queue.Full:
            # The spill thread is behind too (a very slow disk): write here rather than lose or hoard the rows.
            self._spill(rows, reason="queue full")
            self._done(len(rows))

    def _spill_loop(self) -> None:
        while True:
            rows = self._overflow.get()
            if rows is None:
                return
            try:
                self._spill(rows, reason="queue full")
            finally:
                self._done(len(rows))

    def _spill(self, rows: list[PredictionRow], *, reason: str) -> None:
        try:
            self.spill.append(rows)
        except OSError as exc:
            metrics.LOG_ROWS_FAILED.inc(len(rows))
            log.critical(
                "PREDICTION LOG ROWS LOST: the queue is full and the spill file cannot be written",
                extra={"rows": len(rows), "reason": reason, "error": str(exc), "spill_dir": str(self.spill.directory)},
            )
            return
        metrics.LOG_SPILL_BYTES.set(self.spill.bytes)
        metrics.LOG_ROWS_SPILLED.inc(len(rows))
        metrics.LOG_SPILL_PENDING.inc(len(rows))
        self._spill_waiting.set()
        log.warning("prediction log rows spilled to disk", extra={"rows": len(rows), "reason": reason})

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        pending = self.spill.pending_rows()
        if pending:
            # Left by an earlier process (crash or shutdown during an outage): replay them first.
            metrics.LOG_SPILL_PENDING.set(pending)
            self._spill_waiting.set()
            log.warning("spilled prediction log rows found; replaying", extra={"rows": pending})
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()
        self._spill_thread = threading.Thread(target=self._spill_loop, name="prediction-log-spill", daemon=True)
        self._spill_thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row handed in so far is in the database or the spill file; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._outstanding > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def has_pending(self) -> bool:
        """Rows handed in that may not be in the database yet (queued, being written or spilled)."""
        with self._idle:
            return self._outstanding > 0 or self._spill_waiting.is_set()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer: a last attempt to write what is queued, then spill whatever the database refused."""
        if self.db_healthy:
            self.flush(timeout)  # during an outage there is no point waiting: the queue goes to the spill file
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._spill_thread is not None:
            self._overflow.put(None)  # after what is already waiting: those rows are spilled first
            self._spill_thread.join(timeout)
            self._spill_thread = None
        leftovers = self._drain(self._queue.qsize())
        if leftovers:
            self._spill(leftovers, reason="shutdown")
            self._done(len(leftovers))
        self.engine.dispose()

    # --- writer thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        if self._migrate:
            try:
                self._with_retry(lambda: upgrade_to_head(self.engine), rows=0)
            except Exception:
                log.exception("prediction log migrations failed; rows will be retried and spilled")
        while not self._stopping.is_set():
            try:
                first = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                first = None
            batch = ([first] if first is not None else []) + self._drain(self.batch_rows - 1 if first else 0)
            metrics.LOG_QUEUE_DEPTH.set(self._queue.qsize())
            if batch:
                self._write(batch)
            # Replay when the database is known to answer, or probe now and then (e.g. right after a restart).
            if self._spill_waiting.is_set() and (self.db_healthy or time.monotonic() >= self._next_replay_probe):
                try:
                    self._replay()
                except Exception:  # the writer thread must outlive any surprise; the files stay for later
                    log.exception("spill replay failed")
                    self._next_replay_probe = time.monotonic() + self.retry_max_wait_s

    def _write(self, batch: list[PredictionRow]) -> None:
        try:
            written = self._with_retry(lambda: self._insert(batch), rows=len(batch))
            if not written:
                self._spill(batch, reason="shutdown during outage")
        except Exception:
            # Not an outage and not a refused row: keep the rows on disk rather than lose them or the thread.
            log.exception("prediction log write failed unexpectedly; rows spilled")
            self._spill(batch, reason="unexpected write error")
        finally:
            self._done(len(batch))

    def _drain(self, limit: int) -> list[PredictionRow]:
        rows: list[PredictionRow] = []
        while len(rows) < limit:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return rows

    def _done(self, count: int) -> None:
        with self._idle:
            self._outstanding -= count
            self._idle.notify_all()

    def _with_retry(self, action: Any, *, rows: int) -> bool:
        """Run `action` until it succeeds (backoff while the DB is unreachable); False if stopped first."""

        def before_sleep(state: RetryCallState) -> None:
            self.db_healthy = False
            if rows:
                metrics.LOG_ROWS_RETRIED.inc(rows)
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "prediction log database unavailable; retrying",
                extra={"attempt": state.attempt_number, "rows": rows, "error": str(exc)},
            )

        retrying = Retrying(
            retry=retry_if_exception(self._retryable),
            wait=wait_exponential(multiplier=0.1, min=0.05, max=self.retry_max_wait_s),
            stop=_StopWhenSet(self._stopping),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            retrying(action)
        except DatabaseError as exc:
            if self._retryable(exc):
                return False  # stopped while the database was still down
            raise
        self.db_healthy = True
        return True

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)  # wakes at once on shutdown

    def _retryable(self, exc: BaseException) -> bool:
        return is_unavailable(exc) or isinstance(exc, _SystemicRejectionError)

    def _insert(self, rows: list[PredictionRow]) -> None:
        try:
            self._insert_many(rows)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            self._insert_one_by_one(rows, exc)

    def _insert_many(self, rows: list[PredictionRow]) -> None:
        statement = self._insert_ignoring_duplicates()
        with session_scope(self.engine) as session:
            session.execute(statement, [insert_values(row) for row in rows])
        metrics.LOG_ROWS_WRITTEN.inc(len(rows))

    def _insert_one_by_one(self, rows: list[PredictionRow], batch_error: Exception) -> None:
        """A refused batch: keep the good rows, set aside the rows the database rejects for their own data.

        A row refused for its values (too long, NUL, a CHECK) is set aside even when every row of the batch is:
        client input must never stall the writer. A refusal that is not about the data (missing table, missing
        privilege) is the schema or the grants: nothing is set aside, the batch is retried like an outage.
        """
        rejected: list[PredictionRow] = []
        for row in rows:
            try:
                self._insert_many([row])
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                if not refused_for_its_data(exc):
                    raise _SystemicRejectionError(str(exc)) from exc
                rejected.append(row)
        if not rejected:
            return
        metrics.LOG_ROWS_FAILED.inc(len(rejected))
        log.error(
            "prediction log rows rejected by the database; kept in the spill dir as rejected-*.jsonl",
            extra={"rows": len(rejected), "error": str(batch_error)},
        )
        self._keep_rejected(rejected)

    def _keep_rejected(self, rows: list[PredictionRow]) -> None:
        path = self.spill.directory / f"rejected-{time.time_ns()}.jsonl"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(to_json_line(r) + "\n" for r in rows))
        except OSError as exc:
            log.critical("rejected prediction log rows could not be kept", extra={"error": str(exc)})

    def _insert_ignoring_duplicates(self) -> Any:
        table = cast(Table, PredictionLog.__table__)
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing(index_elements=["id"])
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing(index_elements=["id"])
        return insert(table)

    def _replay(self) -> None:
        self._spill_waiting.clear()
        for path in self.spill.rotate():
            chunk: list[PredictionRow] = []
            try:
                for row in read_rows(path):
                    if row is None:
                        metrics.LOG_ROWS_FAILED.inc()
                        continue
                    chunk.append(row)
                    if len(chunk) >= self.batch_rows:
                        self._insert(chunk)
                        metrics.LOG_SPILL_PENDING.dec(len(chunk))
                        chunk = []
                if chunk:
                    self._insert(chunk)
                    metrics.LOG_SPILL_PENDING.dec(len(chunk))
            except (DatabaseError, _SystemicRejectionError) as exc:
                # Down again: keep the file (replaying it again later is idempotent) and try next round.
                self.db_healthy = False
                self._spill_waiting.set()
                self._next_replay_probe = time.monotonic() + self.retry_max_wait_s
                log.warning("spill replay interrupted", extra={"file": str(path), "error": str(exc)})
                return
            path.unlink(missing_ok=True)
            metrics.LOG_SPILL_BYTES.set(self.spill.recount())
            self.db_healthy = True
            log.info("spill file replayed", extra={"file": str(path)})
        metrics.LOG_SPILL_PENDING.set(self.spill.pending_rows())


class _SystemicRejectionError(DatabaseError):
    """The database refused a row for a reason other than its data (schema, privileges): retried like an outage."""


class _StopWhenSet(stop_base):
    """Stop retrying once the writer is shutting down (what is left then goes to the spill file)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._event.is_set()
