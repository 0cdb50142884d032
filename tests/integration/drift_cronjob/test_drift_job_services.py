"""The drift job against a real PostgreSQL and a real S3 server (MinIO), with loopback webhook/Pushgateway stubs."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from drift_cronjob.__main__ import EXIT_DATABASE, EXIT_OK, EXIT_STORAGE, main
from drift_cronjob.job import JobOptions, JobResult, run_job
from drift_cronjob.settings import load_drift_settings
from mlcore.config import get_settings, load_settings
from mlcore.db import (
    DatasetMetric,
    DriftRun,
    ModelDeployment,
    MonitoringAlert,
    create_db_engine,
    session_scope,
    upgrade_to_head,
)
from mlcore.timeutil import utc_now
from tests.fixtures.services import PostgresServer, S3Bucket
from tests.integration.drift_cronjob import drift_synthetic as syn

pytestmark = pytest.mark.integration

DEPLOYMENT = "ml/sentiment"
BASE_COLUMNS = {"text_length_chars", "text_length_words", "confidence", "predicted_label"}


# --- loopback HTTP receivers ---------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A tiny HTTP server on 127.0.0.1 that records requests and answers with a settable status."""

    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.requests.append({"method": self.command, "path": self.path, "body": body})
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _record  # noqa: N815 - http.server's naming

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver().start()
    yield hook
    hook.stop()


# --- environment ---------------------------------------------------------------------------------------------


@dataclass
class DriftEnv:
    engine: Engine
    bucket: S3Bucket
    now: datetime
    rng: np.random.Generator
    published: dict[str, str] = field(default_factory=dict)

    def publish(self, version: str = "1", *, name: str = "sentiment", rows: int = 1500, **kw: Any) -> str:
        return syn.publish_model_version(self.bucket.uri(), name, version, syn.sample(self.rng, rows), **kw)

    def deploy(self, deployment: str = DEPLOYMENT, version: str = "1", *, publish: bool = True) -> None:
        uri = None
        if publish:  # deployments serving the same version share its published prefix
            if version not in self.published:
                self.published[version] = self.publish(version)
            uri = self.published[version]
        syn.record_deployment(self.engine, deployment, "sentiment", version, uri)

    def log(
        self,
        rows: int,
        start: datetime,
        end: datetime,
        *,
        shifted: bool = False,
        deployment: str = DEPLOYMENT,
        version: str = "1",
        feedback: str | None = None,
        logged_at: datetime | None = None,
    ) -> None:
        frame = syn.sample(self.rng, rows, shifted=shifted)
        rows_ = syn.log_rows(
            frame, deployment, "sentiment", version, start, end, feedback=feedback, logged_at=logged_at
        )
        syn.insert_logs(self.engine, rows_)

    def run(self, now: datetime | None = None, reference_window: str | None = None, **overrides: Any) -> JobResult:
        options = JobOptions(now=now or self.now, reference_window=reference_window)
        return run_job(load_settings(), load_drift_settings(**overrides), options)

    def alerts(self) -> list[MonitoringAlert]:
        with session_scope(self.engine) as session:
            return list(session.scalars(select(MonitoringAlert).order_by(MonitoringAlert.id)))

    def runs(self) -> list[DriftRun]:
        with session_scope(self.engine) as session:
            return list(session.scalars(select(DriftRun).order_by(DriftRun.id)))

    def object(self, uri: str) -> bytes:
        prefix = f"s3://{self.bucket.name}/"
        assert uri.startswith(prefix), uri
        response = self.bucket.client().get_object(Bucket=self.bucket.name, Key=uri[len(prefix) :])
        return bytes(response["Body"].read())


@pytest.fixture
def env(postgres_url: str, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DriftEnv]:
    monkeypatch.setenv("MLP_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("STORAGE_URI", s3_bucket.uri())
    monkeypatch.setenv("DRIFT_WINDOW_DELAY_S", "0")
    monkeypatch.setenv("DRIFT_DB_RETRY_WAIT_S", "0")
    monkeypatch.setenv("DRIFT_WEBHOOK_BACKOFF_S", "0")
    # Volume verdicts need six earlier windows with traffic here, so they stay out of the other tests' way.
    monkeypatch.setenv("DRIFT_VOLUME_MIN_BASELINE_WINDOWS", "6")
    monkeypatch.setenv("LOG_FORMAT", "text")
    get_settings.cache_clear()
    engine = create_db_engine(postgres_url)
    upgrade_to_head(engine)
    yield DriftEnv(engine, s3_bucket, utc_now().replace(microsecond=0), np.random.default_rng(11))
    engine.dispose()
    get_settings.cache_clear()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_mlpipeline", False)]:
        root.removeHandler(handler)


# --- drift ---------------------------------------------------------------------------------------------------


def test_same_distribution_no_alert_metrics_and_report_stored(env: DriftEnv) -> None:
    env.deploy()
    env.log(600, env.now - timedelta(hours=3), env.now - timedelta(minutes=1))
    result = env.run()
    assert result.exit_code == 0
    (outcome,) = result.outcomes
    assert outcome.status == "success" and outcome.rows == 600
    assert outcome.drifted_columns == [] and outcome.alerts_raised == []
    assert env.alerts() == []

    with session_scope(env.engine) as session:
        metrics = list(session.scalars(select(DatasetMetric).where(DatasetMetric.run_id == outcome.run_id)))
    per_column = {m.column_name: m for m in metrics if m.metric_name == "drift_score"}
    assert set(per_column) == BASE_COLUMNS
    for metric in per_column.values():
        assert metric.source == "drift" and metric.deployment_id == DEPLOYMENT and metric.model_version == "1"
        assert metric.details is not None
        assert metric.details["method"] and metric.details["threshold"] > 0
        assert metric.details["drift_detected"] is False
    assert {m.metric_name for m in metrics} >= {"drift_share", "request_count"}

    (run,) = env.runs()
    assert run.status == "success" and run.rows == 600 and run.drift_share == 0.0
    assert run.window_end == env.now and run.window_start == env.now - timedelta(hours=24)
    assert outcome.report_uri == run.report_uri
    assert outcome.report_uri.startswith(f"s3://{env.bucket.name}/reports/ml/sentiment/")
    assert outcome.report_uri.endswith("_v1.html")
    assert b"<html" in env.object(outcome.report_uri).lower()
    key = outcome.report_uri.removeprefix(f"s3://{env.bucket.name}/")
    head = env.bucket.client().head_object(Bucket=env.bucket.name, Key=key)
    assert head["ContentType"] == "text/html; charset=utf-8"  # browsers show it instead of downloading it


def test_shifted_distribution_alerts_once_and_resolves_when_it_clears(env: DriftEnv) -> None:
    env.deploy()
    env.log(600, env.now - timedelta(hours=3), env.now - timedelta(minutes=1), shifted=True)
    first = env.run().outcomes[0]
    assert first.status == "success" and set(first.drifted_columns) == BASE_COLUMNS
    (alert,) = env.alerts()
    assert alert.alert_type == "drift" and alert.severity == "critical" and not alert.resolved
    assert alert.run_id == first.run_id and alert.report_uri == first.report_uri
    assert alert.details is not None and set(alert.details["drifted_columns"]) == BASE_COLUMNS
    assert {c["column"] for c in alert.details["columns"] if c["drift_detected"]} == BASE_COLUMNS
    assert b"<html" in env.object(alert.report_uri).lower()

    # Still drifted an hour later: the open alert is kept, not raised again.
    later = env.now + timedelta(hours=1)
    env.log(400, env.now, later - timedelta(minutes=1), shifted=True)
    second = env.run(later).outcomes[0]
    assert second.status == "success" and second.alerts_raised == []
    (still,) = env.alerts()
    assert still.id == alert.id and not still.resolved
    assert still.details is not None and still.details["last_seen_run_id"] == second.run_id

    # Back to the reference distribution: the alert resolves.
    latest = later + timedelta(hours=1)
    env.log(400, later, latest - timedelta(minutes=1))
    third = env.run(latest).outcomes[0]
    # (a single column may still cross its p-value by chance; the dataset no longer drifts)
    assert third.drift_share is not None and third.drift_share < 0.5
    assert third.alerts_resolved == [alert.id]
    (resolved,) = env.alerts()
    assert resolved.resolved and resolved.resolved_at is not None


def test_wrong_feedback_raises_a_performance_alert_only_where_it_is_wrong(env: DriftEnv) -> None:
    env.deploy("ml/good")
    env.deploy("ml/bad")
    window = (env.now - timedelta(hours=2), env.now - timedelta(minutes=5))
    env.log(300, *window, deployment="ml/good", feedback="true")
    env.log(300, *window, deployment="ml/bad", feedback="wrong")
    result = env.run()
    assert [o.status for o in result.outcomes] == ["success", "success"]
    alerts = env.alerts()
    assert [(a.deployment_id, a.alert_type) for a in alerts] == [("ml/bad", "performance")]
    details = alerts[0].details
    assert details is not None and details["accuracy"]["observed"] == 0.0 and details["accuracy"]["model_card"] == 0.9
    assert details["feedback_rows"] == 300
    with session_scope(env.engine) as session:
        accuracy = {
            m.deployment_id: m.value
            for m in session.scalars(select(DatasetMetric).where(DatasetMetric.metric_name == "feedback_accuracy"))
        }
    assert accuracy["ml/bad"] == 0.0 and accuracy["ml/good"] == pytest.approx(0.9, abs=0.06)


def test_watermark_is_respected_and_rows_that_arrive_late_are_counted_once(env: DriftEnv) -> None:
    env.deploy()
    env.log(300, env.now - timedelta(hours=3), env.now - timedelta(minutes=1))
    assert env.run().outcomes[0].rows == 300

    later = env.now + timedelta(hours=1)
    # Predicted before the watermark but written after it (a spill replayed after an outage): the next window.
    env.log(50, env.now - timedelta(hours=2), env.now - timedelta(hours=1), logged_at=env.now + timedelta(minutes=5))
    env.log(200, env.now, later - timedelta(minutes=1))
    second = env.run(later).outcomes[0]
    assert second.status == "success" and second.rows == 250

    first_run, second_run = env.runs()
    assert second_run.window_start == first_run.window_end == env.now
    assert second_run.window_end == later
    # Nothing new since: the next run has an empty window and skips without moving the watermark.
    third = env.run(later + timedelta(minutes=30)).outcomes[0]
    assert third.status == "skipped" and third.rows == 0
    assert env.runs()[-1].window_start == later


def test_after_a_long_pause_each_run_analyses_at_most_the_lookback(env: DriftEnv) -> None:
    env.deploy()
    hours = 2
    paused_at = env.now - timedelta(hours=7)
    env.log(300, paused_at - timedelta(hours=1), paused_at - timedelta(minutes=1))
    assert env.run(paused_at, lookback_hours=hours).outcomes[0].rows == 300
    # Seven hours without a run; traffic went on, except for a quiet stretch (too few rows to analyse).
    env.log(300, paused_at, paused_at + timedelta(hours=2) - timedelta(minutes=1))
    env.log(10, paused_at + timedelta(hours=2), paused_at + timedelta(hours=4) - timedelta(minutes=1))
    env.log(600, paused_at + timedelta(hours=4), env.now - timedelta(minutes=1))
    outcomes = [env.run(lookback_hours=hours).outcomes[0] for _ in range(4)]
    runs = env.runs()[1:]
    assert [(r.window_end - r.window_start) for r in runs] == [timedelta(hours=hours)] * 3 + [timedelta(hours=1)]
    assert [r.window_start for r in runs[1:]] == [r.window_end for r in runs[:-1]]  # chunk after chunk
    assert runs[-1].window_end == env.now  # caught up
    assert [r.status for r in runs] == ["success", "sparse", "success", "success"]
    assert sum(o.rows or 0 for o in outcomes) == 910  # every row once
    assert env.run(lookback_hours=hours).outcomes[0].status == "skipped"  # nothing left


def test_reference_window_of_earlier_logs(env: DriftEnv) -> None:
    env.deploy(publish=False)  # no model version in storage at all: the logs are the reference
    env.log(500, env.now - timedelta(days=2), env.now - timedelta(days=1, hours=1))
    env.log(500, env.now - timedelta(hours=3), env.now - timedelta(minutes=1), shifted=True)
    outcome = env.run(reference_window="2d", lookback_hours=12).outcomes[0]
    assert outcome.status == "success" and set(outcome.drifted_columns) == BASE_COLUMNS
    (alert,) = env.alerts()
    assert alert.details is not None and alert.details["reference"].startswith("prediction_logs (")


# --- volume --------------------------------------------------------------------------------------------------


def test_volume_drop_alert_even_when_the_window_is_too_small(env: DriftEnv) -> None:
    env.deploy()
    for hour in range(1, 7):  # six earlier hourly windows with steady traffic
        end = env.now - timedelta(hours=hour)
        env.log(120, end - timedelta(hours=1), end - timedelta(seconds=1))
    env.log(4, env.now - timedelta(minutes=50), env.now - timedelta(minutes=10))
    outcome = env.run(lookback_hours=1).outcomes[0]
    assert outcome.status == "skipped"
    (alert,) = env.alerts()
    assert alert.alert_type == "volume" and alert.details is not None
    assert alert.details["direction"] == "drop" and alert.details["current"] == 4
    assert alert.details["previous"] == [120] * 6


# --- notifications -------------------------------------------------------------------------------------------


def test_webhook_failure_keeps_the_alert_and_the_next_run_delivers_it(env: DriftEnv, receiver: Receiver) -> None:
    env.deploy()
    env.log(500, env.now - timedelta(hours=3), env.now - timedelta(minutes=1), shifted=True)
    receiver.status = 503
    result = env.run(alert_webhook_url=receiver.url + "/hook", webhook_attempts=2)
    assert result.exit_code == 0 and (result.notified, result.notify_failed) == (0, 1)
    assert len(receiver.requests) == 2  # retried, then given up for this run
    (alert,) = env.alerts()
    assert alert.alert_type == "drift" and not alert.notified

    receiver.status = 200
    later = env.now + timedelta(hours=1)
    env.log(300, env.now, later - timedelta(minutes=1), shifted=True)
    result = env.run(later, alert_webhook_url=receiver.url + "/hook")
    assert (result.notified, result.notify_failed) == (1, 0)
    (alert,) = env.alerts()  # still exactly one alert
    assert alert.notified
    payload = json.loads(receiver.requests[-1]["body"])
    assert receiver.requests[-1]["path"] == "/hook"
    assert payload["text"].startswith("[CRITICAL] Data drift on ml/sentiment")
    fields = {f["title"]: f["value"] for f in payload["attachments"][0]["fields"]}
    assert fields["Report"] == alert.report_uri and fields["Deployment"] == DEPLOYMENT

    # Delivered once: a third run (still drifted) sends nothing new.
    sent_before = len(receiver.requests)
    env.log(300, later, later + timedelta(minutes=59), shifted=True)
    env.run(later + timedelta(hours=1), alert_webhook_url=receiver.url + "/hook")
    assert len(receiver.requests) == sent_before


def test_pushgateway_receives_share_scores_and_last_success(env: DriftEnv, receiver: Receiver) -> None:
    env.deploy()
    env.log(400, env.now - timedelta(hours=3), env.now - timedelta(minutes=1), shifted=True)
    outcome = env.run(pushgateway_url=receiver.url).outcomes[0]
    assert outcome.status == "success"
    (push,) = receiver.requests
    assert push["method"] == "PUT"
    encoded = base64.urlsafe_b64encode(DEPLOYMENT.encode()).decode()
    assert push["path"] == f"/metrics/job/mlpipeline_drift/deployment@base64/{encoded}/model_version/1"
    body = push["body"].decode()
    assert 'mlpipeline_drift_share{deployment="ml/sentiment",model_version="1"} 1.0' in body
    assert (
        'mlpipeline_drift_column_drifted{column="confidence",deployment="ml/sentiment",model_version="1"} 1.0' in body
    )
    assert "mlpipeline_drift_last_success_timestamp_seconds" in body


# --- failures ------------------------------------------------------------------------------------------------


def test_database_down_exits_non_zero(
    env: DriftEnv, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env.deploy()
    env.engine.dispose()
    monkeypatch.setenv("DRIFT_DB_RETRY_ATTEMPTS", "2")
    postgres_server.stop()  # the postgres_url fixture starts it again afterwards
    assert main([]) == EXIT_DATABASE
    assert "unreachable after 2 attempts" in caplog.text


def test_storage_down_exits_non_zero_and_records_the_failure(
    env: DriftEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env.deploy()
    env.log(300, env.now - timedelta(hours=3), env.now - timedelta(minutes=1))
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    get_settings.cache_clear()
    assert main(["--now", env.now.isoformat()]) == EXIT_STORAGE
    assert "StorageError" in caplog.text
    (run,) = env.runs()
    assert run.status == "failed" and "S3" in (run.reason or "")
    assert env.alerts() == []


def test_cli_runs_one_deployment_and_prints_a_summary(env: DriftEnv, capsys: pytest.CaptureFixture[str]) -> None:
    env.deploy("ml/a")
    env.deploy("ml/b")
    env.log(300, env.now - timedelta(hours=3), env.now - timedelta(minutes=1), deployment="ml/a")
    assert main(["--deployment", "ml/a", "--now", env.now.isoformat()]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(r["deployment_id"], r["status"]) for r in summary["runs"]] == [("ml/a", "success")]


# --- the slower checks behind flags --------------------------------------------------------------------------


@pytest.mark.slow
def test_text_descriptors_and_embeddings_of_the_deployed_model(env: DriftEnv, tmp_path: Path) -> None:
    from mlcore.storage import join_key, open_storage, publish_directory
    from tests.fixtures.models import make_tiny_model

    model_dir = make_tiny_model(tmp_path / "tiny")
    syn.sample(env.rng, 300).to_parquet(model_dir / "reference.parquet", index=False)  # a usable sample size
    storage = open_storage(env.bucket.uri())
    publish_directory(storage, join_key("models", "sentiment", "1"), model_dir)
    syn.record_deployment(env.engine, DEPLOYMENT, "sentiment", "1", storage.uri_for("models/sentiment/1"))
    env.log(300, env.now - timedelta(hours=3), env.now - timedelta(minutes=1), shifted=True)

    outcome = env.run(text_descriptors=True, embeddings=True, embeddings_max_rows=150, min_rows=50).outcomes[0]
    assert outcome.status == "success", outcome.reason
    with session_scope(env.engine) as session:
        rows = {
            m.column_name: m
            for m in session.scalars(
                select(DatasetMetric).where(
                    DatasetMetric.run_id == outcome.run_id, DatasetMetric.metric_name == "drift_score"
                )
            )
        }
    assert set(rows) == BASE_COLUMNS | {"sentence_count", "non_letter_share", "has_link", "text_embedding"}
    embedding = rows["text_embedding"]
    assert embedding.details is not None and embedding.details["kind"] == "embedding"
    assert embedding.details["threshold"] == 0.55 and "model" in embedding.details["method"]
    assert embedding.details["drift_detected"] == (embedding.value is not None and embedding.value > 0.55)
    assert outcome.report_uri is not None
    assert b"<html" in env.object(outcome.report_uri.replace(".html", "-embeddings.html")).lower()


# --- model versions ------------------------------------------------------------------------------------------


def test_class_ids_in_the_reference_are_mapped_to_label_names(env: DriftEnv) -> None:
    uri = env.publish("4", integer_labels=True)  # predicted_label 0/1 in reference.parquet, names in the logs
    syn.record_deployment(env.engine, DEPLOYMENT, "sentiment", "4", uri)
    env.log(600, env.now - timedelta(hours=3), env.now - timedelta(minutes=1), version="4")
    outcome = env.run().outcomes[0]
    assert outcome.status == "success" and "predicted_label" not in outcome.drifted_columns


def test_alerts_of_a_replaced_version_are_resolved(env: DriftEnv) -> None:
    env.deploy(version="1")
    env.log(400, env.now - timedelta(hours=3), env.now - timedelta(minutes=1), shifted=True)
    env.run()
    (alert,) = env.alerts()
    assert alert.model_version == "1" and not alert.resolved

    with session_scope(env.engine) as session:  # the operator promoted version 2 and retired version 1
        for row in session.scalars(select(ModelDeployment)):
            row.is_active = False
    env.deploy(version="2")
    later = env.now + timedelta(hours=1)
    env.log(300, env.now, later - timedelta(minutes=1), version="2")
    outcome = env.run(later).outcomes[0]
    assert (outcome.model_version, outcome.status) == ("2", "success")
    (resolved,) = env.alerts()
    assert resolved.resolved and resolved.details is not None
    assert resolved.details["resolved_reason"] == "the model version is no longer deployed"
