"""The prediction log writer against a real SQLite file: bulk writes, flush, queue overflow to the spill file and its
replay, idempotent re-inserts, and the disk-full case that is counted and logged loudly. (The outage with a real
PostgreSQL is in tests/integration/predictor/test_predictor_outage.py.)"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlcore.db import create_db_engine, upgrade_to_head
from mlcore.db.prediction_row import from_json_line as decode_row
from mlcore.db.prediction_row import to_json_line as encode_row
from predictor import metrics
from predictor.prediction_log import PredictionLogWriter
from predictor.spill import SpillFile, read_rows
from tests.fixtures.log_rows import prediction_row

pytestmark = pytest.mark.unit


def row(text: str = "a review", **changes: Any) -> dict[str, Any]:
    # A fixed, whole-second time as these tests always had (one compares a row with its spill-line round trip).
    return prediction_row(text, **{"predicted_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), **changes})


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    url = f"sqlite:///{tmp_path / 'logs.db'}"
    upgrade_to_head(url)
    return create_db_engine(url)


def stored(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM prediction_logs ORDER BY input_text"))]


def counter(metric: Any) -> float:
    return float(metric._value.get())


def test_rows_are_written_in_bulk_and_flush_waits_for_them(engine: sa.Engine, tmp_path: Path) -> None:
    writer = PredictionLogWriter(engine, spill_dir=tmp_path / "spill", batch_rows=50)
    writer.start()
    writer.log([row(f"text {i:03d}") for i in range(120)])
    assert writer.flush(timeout=30)
    writer.close()
    rows = stored(engine)
    assert len(rows) == 120
    first = rows[0]
    assert first["input_text"] == "text 000" and first["predicted_sentiment"] == "positive"
    assert first["model_version"] == "2" and first["deployment_id"] == "ns/sentiment" and first["role"] == "stable"
    assert first["status"] == "ok" and first["latency_ms"] == 3.5


def test_a_full_queue_spills_to_disk_and_the_spill_is_replayed(engine: sa.Engine, tmp_path: Path) -> None:
    spilled_before = counter(metrics.LOG_ROWS_SPILLED)
    writer = PredictionLogWriter(engine, spill_dir=tmp_path / "spill", queue_size=3)
    writer.log([row(f"r{i}") for i in range(8)])  # writer not started: 3 fit in the queue, 5 overflow
    assert counter(metrics.LOG_ROWS_SPILLED) - spilled_before == 5
    assert writer.spill.pending_rows() == 5
    writer.start()
    assert writer.flush(timeout=30)
    deadline_rows = 8
    for _ in range(300):
        if len(stored(engine)) == deadline_rows and not writer.spill.pending_rows():
            break
        writer._stopping.wait(0.1)
    writer.close()
    assert sorted(r["input_text"] for r in stored(engine)) == [f"r{i}" for i in range(8)]
    assert writer.spill.pending_rows() == 0


def test_replaying_rows_already_written_does_not_duplicate_them(engine: sa.Engine, tmp_path: Path) -> None:
    rows = [row("once"), row("twice")]
    writer = PredictionLogWriter(engine, spill_dir=tmp_path / "spill")
    writer.start()
    writer.log(rows)
    assert writer.flush(timeout=30)
    # A crash after the commit but before the acknowledgement would replay the same ids.
    writer._insert(rows)
    writer.close()
    assert [r["input_text"] for r in stored(engine)] == ["once", "twice"]


def test_spill_left_by_an_earlier_process_is_replayed_at_start(engine: sa.Engine, tmp_path: Path) -> None:
    SpillFile(tmp_path / "spill").append([row("left over 1"), row("left over 2")])
    writer = PredictionLogWriter(engine, spill_dir=tmp_path / "spill")
    writer.start()
    for _ in range(300):
        if len(stored(engine)) == 2:
            break
        writer._stopping.wait(0.1)
    writer.close()
    assert [r["input_text"] for r in stored(engine)] == ["left over 1", "left over 2"]
    assert list((tmp_path / "spill").glob("spill-*.jsonl")) == []


def test_rows_lost_only_when_the_spill_cannot_be_written_counted_and_logged(
    engine: sa.Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spill directory should be")
    failed_before = counter(metrics.LOG_ROWS_FAILED)
    writer = PredictionLogWriter(engine, spill_dir=blocker / "spill", queue_size=1)
    with caplog.at_level(logging.CRITICAL, logger="predictor.prediction_log"):
        writer.log([row("kept"), row("lost 1"), row("lost 2")])
    assert counter(metrics.LOG_ROWS_FAILED) - failed_before == 2
    assert any("LOST" in r.getMessage() and r.levelno == logging.CRITICAL for r in caplog.records)
    writer.start()
    writer.close()
    assert [r["input_text"] for r in stored(engine)] == ["kept"]


def test_a_row_the_database_refuses_is_set_aside_and_the_rest_written(engine: sa.Engine, tmp_path: Path) -> None:
    writer = PredictionLogWriter(engine, spill_dir=tmp_path / "spill")
    bad = row("bad", status="maybe")  # violates the status CHECK constraint
    writer._insert([row("good 1"), bad, row("good 2")])
    writer.close()
    assert [r["input_text"] for r in stored(engine)] == ["good 1", "good 2"]
    (rejected,) = (tmp_path / "spill").glob("rejected-*.jsonl")
    assert [r["input_text"] for r in read_rows(rejected) if r] == ["bad"]


def test_spill_rows_round_trip(tmp_path: Path) -> None:
    original = row("round trip", feedback_at=None)
    assert decode_row(encode_row(original)) == original
    path = tmp_path / "spill-1.jsonl"
    path.write_text(encode_row(original) + "\n{broken\n")
    assert list(read_rows(path)) == [original, None]


# --- feedback ---------------------------------------------------------------------------------------------


def test_feedback_reaches_a_row_still_queued_and_refuses_unknown_ids(engine: sa.Engine, tmp_path: Path) -> None:
    from predictor.feedback import FeedbackNotFoundError, FeedbackService

    writer = PredictionLogWriter(engine, spill_dir=tmp_path / "spill", flush_interval_s=1.0)
    service = FeedbackService(writer, lambda: ["negative", "positive"], deployment_id="ns/sentiment")
    queued = row("queued")
    writer.log([queued])  # not started yet: the row is only in the queue
    writer.start()
    at = service.apply(queued["id"], "negative")
    assert writer.flush(30)
    (stored_row,) = stored(engine)
    assert stored_row["feedback_label"] == "negative"
    assert stored_row["feedback_at"] is not None and at.tzinfo is not None
    with pytest.raises(FeedbackNotFoundError):
        service.apply(uuid.uuid4(), "positive")  # nothing pending: refused at once, no waiting
    writer.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prediction_id": "not-a-uuid", "label": "positive"}, "not a prediction id"),
        ({"prediction_id": str(uuid.UUID(int=1)), "label": "neutral"}, "not one of the model's labels"),
        ({"prediction_id": str(uuid.UUID(int=1))}, "send {"),
        (["x"], "send {"),
    ],
)
def test_feedback_body_errors(engine: sa.Engine, tmp_path: Path, body: object, message: str) -> None:
    from predictor.feedback import FeedbackService

    service = FeedbackService(PredictionLogWriter(engine, spill_dir=tmp_path), lambda: ["negative", "positive"])
    with pytest.raises(ValueError) as caught:
        service.parse(body)
    assert message in str(caught.value)
