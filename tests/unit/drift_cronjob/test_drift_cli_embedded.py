"""`python -m drift_cronjob` on the embedded default (SQLite file, local storage): exit codes and skips."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from drift_cronjob.__main__ import EXIT_CONFIG, EXIT_DATABASE, EXIT_OK, EXIT_STORAGE, main
from mlcore.config import get_settings
from mlcore.db import DriftRun, MonitoringAlert, create_db_engine, session_scope, upgrade_to_head
from mlcore.storage import open_storage
from mlcore.timeutil import utc_now
from tests.integration.drift_cronjob import drift_synthetic as syn

pytestmark = pytest.mark.unit

DEPLOYMENT = "ml/sentiment"


@pytest.fixture(autouse=True)
def _drop_log_handlers() -> Iterator[None]:
    """main() installs a handler on the captured stderr; later tests must not write to it once closed."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_mlpipeline", False)]:
        root.removeHandler(handler)


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    for name in ("DATABASE_URL", "DB_HOST", "STORAGE_URI", "S3_BUCKET", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DRIFT_WINDOW_DELAY_S", "0")
    monkeypatch.setenv("LOG_FORMAT", "text")
    get_settings.cache_clear()
    engine = create_db_engine()
    upgrade_to_head(engine)
    yield engine
    engine.dispose()
    get_settings.cache_clear()


def _summary(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _publish_and_log(engine: Engine, rows: int, *, shifted: bool) -> None:
    rng = np.random.default_rng(5)
    uri = syn.publish_model_version(get_settings().effective_storage_uri, "sentiment", "1", syn.sample(rng, 1500))
    syn.record_deployment(engine, DEPLOYMENT, "sentiment", "1", uri)
    now = utc_now()
    frame = syn.sample(rng, rows, shifted=shifted)
    syn.insert_logs(engine, syn.log_rows(frame, DEPLOYMENT, "sentiment", "1", now - timedelta(hours=3), now))


def test_embedded_run_raises_a_drift_alert_and_writes_the_report(
    embedded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish_and_log(embedded, 400, shifted=True)
    assert main([]) == EXIT_OK
    run = _summary(capsys)["runs"][0]
    assert run["status"] == "success" and run["rows"] == 400
    assert set(run["drifted_columns"]) == {"text_length_chars", "text_length_words", "confidence", "predicted_label"}
    assert run["report_uri"].startswith("file://") and "/reports/ml/sentiment/" in run["report_uri"]
    storage = open_storage(get_settings().effective_storage_uri)
    key = run["report_uri"].split("/storage/", 1)[1]
    assert b"<html" in storage.get_bytes(key).lower()
    with session_scope(embedded) as session:
        alerts = session.scalars(select(MonitoringAlert)).all()
        assert [(a.alert_type, a.resolved) for a in alerts] == [("drift", False)]


def test_too_few_rows_is_a_skip_with_exit_zero(embedded: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    _publish_and_log(embedded, 20, shifted=False)
    assert main(["--deployment", DEPLOYMENT]) == EXIT_OK
    run = _summary(capsys)["runs"][0]
    assert run["status"] == "skipped" and "20 successful predictions" in run["reason"]
    with session_scope(embedded) as session:
        stored = session.scalars(select(DriftRun)).one()
        assert stored.status == "skipped" and stored.rows == 20
    # A skip does not move the watermark: the next run looks at the same rows plus the new ones.
    assert main(["--deployment", DEPLOYMENT, "--min-rows", "10"]) == EXIT_OK
    assert _summary(capsys)["runs"][0]["rows"] == 20


def test_no_active_deployment_is_nothing_to_do(embedded: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_OK
    assert _summary(capsys)["runs"] == []


def test_unknown_deployment_and_bad_settings_exit_2(
    embedded: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["--deployment", "ml/nope"]) == EXIT_CONFIG
    assert "not recorded in model_deployments" in caplog.text
    assert main(["--reference-window", "yesterday"]) == EXIT_CONFIG
    monkeypatch.setenv("DRIFT_MIN_ROWS", "-3")
    assert main([]) == EXIT_CONFIG
    assert "DRIFT_MIN_ROWS" in caplog.text


def test_missing_reference_is_a_storage_failure(embedded: Engine, caplog: pytest.LogCaptureFixture) -> None:
    syn.record_deployment(embedded, DEPLOYMENT, "sentiment", "9", None)  # nothing published at models/sentiment/9
    assert main([]) == EXIT_STORAGE
    assert "MANIFEST.json" in caplog.text
    with session_scope(embedded) as session:
        run = session.scalars(select(DriftRun)).one()
        assert run.status == "failed" and "ManifestError" in (run.reason or "")


def test_unreachable_database_exits_3_after_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://drift:s3cret-pw@127.0.0.1:{port}/mlpipeline")
    monkeypatch.setenv("DRIFT_DB_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("DRIFT_DB_RETRY_WAIT_S", "0")
    monkeypatch.setenv("MLP_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert main([]) == EXIT_DATABASE
    finally:
        get_settings.cache_clear()
    assert "unreachable after 2 attempts" in caplog.text
    assert "s3cret-pw" not in caplog.text


def test_missing_schema_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("DATABASE_URL", "DB_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLP_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert main([]) == EXIT_DATABASE
    finally:
        get_settings.cache_clear()
    assert "apply the migrations" in caplog.text
