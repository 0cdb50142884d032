"""The prediction log writer against a real PostgreSQL: rows refused for their own values are set aside even when
they make up a whole batch (client input must never stall logging), while a refusal no row can fix (a missing
privilege) is retried like an outage and loses nothing once it is fixed."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlcore.db import create_db_engine, upgrade_to_head
from mlcore.db.prediction_row import to_json_line as encode_row
from predictor import metrics
from predictor.prediction_log import PredictionLogWriter
from predictor.spill import SpillFile, read_rows
from tests.fixtures.log_rows import prediction_row

pytestmark = pytest.mark.integration


def row(text: str, **changes: Any) -> dict[str, Any]:
    return prediction_row(text, **changes)


def texts(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT input_text FROM prediction_logs")).scalars())


@pytest.fixture
def engine(postgres_url: str) -> sa.Engine:
    upgrade_to_head(postgres_url)
    engine = create_db_engine(postgres_url)
    yield engine
    engine.dispose()


def test_a_batch_of_only_refused_rows_is_set_aside_and_logging_goes_on(engine: sa.Engine, tmp_path: Path) -> None:
    failed_before = metrics.LOG_ROWS_FAILED._value.get()
    writer = PredictionLogWriter(engine, spill_dir=tmp_path / "spill", retry_max_wait_s=0.2)
    # Not started yet: the three refused rows are one batch on their own, the good row comes after them.
    writer.log([row("too long an id", request_id="x" * 200), row("nul \x00 inside"), row("bad", status="maybe")])
    writer.start()
    try:
        assert writer.flush(timeout=30), "the writer stalled on rows the database refuses"
        writer.log([row("after them")])
        assert writer.flush(timeout=30)
    finally:
        writer.close()
    assert texts(engine) == ["after them"]
    assert metrics.LOG_ROWS_FAILED._value.get() - failed_before == 3
    (rejected,) = (tmp_path / "spill").glob("rejected-*.jsonl")
    kept = sorted(r["input_text"] for r in read_rows(rejected) if r)
    assert kept == sorted(["too long an id", "nul \x00 inside", "bad"])


def test_a_missing_privilege_is_retried_and_nothing_is_lost(postgres_url: str, tmp_path: Path) -> None:
    upgrade_to_head(postgres_url)
    role = f"logger_{uuid.uuid4().hex[:8]}"
    admin = create_db_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'"))
        conn.execute(sa.text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        conn.execute(sa.text(f"GRANT SELECT ON prediction_logs TO {role}"))  # no INSERT yet
    url = sa.make_url(postgres_url).set(username=role, password="pw")
    engine = create_db_engine(url)
    writer = PredictionLogWriter(engine, spill_dir=tmp_path / "spill", retry_max_wait_s=0.2)
    writer.start()
    try:
        writer.log([row("one"), row("two")])
        assert not writer.flush(timeout=2), "rows refused for a missing privilege must not be set aside"
        assert not list((tmp_path / "spill").glob("rejected-*.jsonl"))
        with admin.begin() as conn:
            conn.execute(sa.text(f"GRANT INSERT ON prediction_logs TO {role}"))
        assert writer.flush(timeout=30)
    finally:
        writer.close()
        admin.dispose()
    assert texts(create_db_engine(postgres_url)) == ["one", "two"]


class RecordingSpill(SpillFile):
    """The real spill file, noting which thread writes it."""

    writers: set[str]

    def append(self, rows: list[dict[str, Any]]) -> None:
        self.writers.add(threading.current_thread().name)
        super().append(rows)


def test_overflow_is_spilled_off_the_callers_thread_capped_and_replayed(postgres_url: str, tmp_path: Path) -> None:
    upgrade_to_head(postgres_url)
    role = f"logger_{uuid.uuid4().hex[:8]}"
    admin = create_db_engine(postgres_url)
    with admin.begin() as conn:  # a logger that may not insert yet: every row waits (queue, then spill)
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'"))
        conn.execute(sa.text(f"GRANT USAGE ON SCHEMA public TO {role}"))
    engine = create_db_engine(sa.make_url(postgres_url).set(username=role, password="pw"))
    one_row = len(encode_row(row("r000"))) + 1
    writer = PredictionLogWriter(
        engine, spill_dir=tmp_path / "spill", queue_size=4, retry_max_wait_s=0.2, spill_max_bytes=10 * one_row
    )
    writer.spill = RecordingSpill(tmp_path / "spill", max_bytes=10 * one_row)
    writer.spill.writers = set()
    failed_before = metrics.LOG_ROWS_FAILED._value.get()
    writer.start()
    try:
        for i in range(30):  # one row per request, like a busy predictor during the outage
            writer.log([row(f"r{i:03d}")])
        assert not writer.flush(timeout=2)  # the queued rows wait for the privilege ...
        assert writer.spill.bytes <= 10 * one_row  # ... the spill stops at its cap ...
        lost = metrics.LOG_ROWS_FAILED._value.get() - failed_before
        assert lost > 0  # ... and what did not fit is counted
        assert metrics.LOG_SPILL_BYTES._value.get() == writer.spill.bytes
        with admin.begin() as conn:
            conn.execute(sa.text(f"GRANT SELECT, INSERT ON prediction_logs TO {role}"))
        assert writer.flush(timeout=30)
        deadline = time.monotonic() + 30
        while writer.spill.pending_rows() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        writer.close()
    assert writer.spill.writers == {"prediction-log-spill"}  # never the thread that called log()
    assert writer.spill.pending_rows() == 0 and metrics.LOG_SPILL_BYTES._value.get() == 0
    assert len(texts(admin)) == 30 - lost  # everything not counted as lost is in the database
    admin.dispose()
