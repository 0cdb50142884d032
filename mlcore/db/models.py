"""The schema every component shares. Changes go through an Alembic migration in mlcore/migrations.

Who writes what (see docs/architecture.md): the predictor writes prediction_logs, the operator model_deployments, the
training job experiment_runs and dataset_metrics (data statistics), the drift job dataset_metrics (drift),
monitoring_alerts and drift_runs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mlcore.timeutil import utc_now

# JSONB on PostgreSQL (indexable, compact), plain JSON on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


utcnow = utc_now  # the column default


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, datetime: DateTime(timezone=True)}


class PredictionLog(Base):
    """One row per prediction served, stamped with the identity the operator gave the predictor."""

    __tablename__ = "prediction_logs"
    __table_args__ = (
        Index("ix_prediction_logs_predicted_at", "predicted_at"),
        Index("ix_prediction_logs_predicted_sentiment", "predicted_sentiment"),
        Index("ix_prediction_logs_deployment_id", "deployment_id"),
        # The operator's analysis window: one deployment, one role, a time range.
        Index("ix_prediction_logs_deployment_role_time", "deployment_id", "role", "predicted_at"),
        # The drift job's windows: one deployment version, rows by the time they reached the database.
        Index("ix_prediction_logs_deployment_version_logged", "deployment_id", "model_version", "logged_at"),
        CheckConstraint("status IN ('ok', 'error')", name="ck_prediction_logs_status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    input_text: Mapped[str] = mapped_column(Text)
    input_hash: Mapped[str] = mapped_column(String(64))
    predicted_sentiment: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    probabilities: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    deployment_id: Mapped[str | None] = mapped_column(String(253))
    role: Mapped[str | None] = mapped_column(String(16))
    latency_ms: Mapped[float] = mapped_column(Float)
    request_id: Mapped[str | None] = mapped_column(String(128))
    # Shadow rows: the request_id of the stable prediction this one mirrors (the shadow analysis joins on it).
    mirrored_request_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="ok", server_default="ok")
    error_message: Mapped[str | None] = mapped_column(Text)
    predicted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    feedback_label: Mapped[str | None] = mapped_column(String(64))
    feedback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the row reached the database (set by it): a row retried or replayed from a spill file arrives after
    # its predicted_at, and windows cut on this column still count it once.
    logged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ModelDeployment(Base):
    """One row per (rollout, role) of a ModelDeployment (stable, canary or shadow), upserted on its key as the rollout
    moves: traffic_percent, outcome and model_metrics hold the latest step. Per-step history is not kept here (it is
    in the ModelDeployment's status.history and its Events)."""

    __tablename__ = "model_deployments"
    __table_args__ = (
        # A restarted operator re-records the same event with the same key: no duplicate rows.
        UniqueConstraint("deployment_id", "rollout_id", "deployment_type", name="uq_model_deployments_event"),
        Index("ix_model_deployments_deployment_id", "deployment_id"),
        Index("ix_model_deployments_active", "is_active"),
        CheckConstraint(
            "deployment_type IN ('stable', 'canary', 'shadow', 'retraining')",
            name="ck_model_deployments_deployment_type",
        ),
        CheckConstraint("traffic_percent BETWEEN 0 AND 100", name="ck_model_deployments_traffic_percent"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(String(253))
    namespace: Mapped[str | None] = mapped_column(String(63))
    rollout_id: Mapped[str] = mapped_column(String(128))
    deployment_type: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    storage_uri: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    traffic_percent: Mapped[int] = mapped_column(Integer, default=0)
    model_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    outcome: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ExperimentRun(Base):
    """Mirror of an MLflow run, so SQL users see training history without MLflow."""

    __tablename__ = "experiment_runs"
    __table_args__ = (Index("ix_experiment_runs_model", "registered_model_name", "model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    parent_run_id: Mapped[str | None] = mapped_column(String(64))
    experiment_name: Mapped[str] = mapped_column(String(256))
    run_name: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(32))
    registered_model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(64))
    storage_uri: Mapped[str | None] = mapped_column(Text)
    dataset_hash: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    tags: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    is_champion: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DatasetMetric(Base):
    """One figure about data: a training split statistic or one drift test on one column."""

    __tablename__ = "dataset_metrics"
    __table_args__ = (
        Index("ix_dataset_metrics_run_id", "run_id"),
        Index("ix_dataset_metrics_deployment_time", "deployment_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # training | drift
    deployment_id: Mapped[str | None] = mapped_column(String(253))
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(64))
    split: Mapped[str | None] = mapped_column(String(32))
    column_name: Mapped[str | None] = mapped_column(String(128))
    metric_name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MonitoringAlert(Base):
    """An alert raised by the drift job; open until the condition clears."""

    __tablename__ = "monitoring_alerts"
    __table_args__ = (
        Index("ix_monitoring_alerts_open", "deployment_id", "alert_type", "resolved"),
        CheckConstraint("alert_type IN ('drift', 'performance', 'volume')", name="ck_monitoring_alerts_alert_type"),
        CheckConstraint("severity IN ('info', 'warning', 'critical')", name="ck_monitoring_alerts_severity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(String(253))
    model_version: Mapped[str | None] = mapped_column(String(64))
    alert_type: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    report_uri: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(64))
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DriftRun(Base):
    """One run of the drift job for one deployment; the newest successful window_end is the watermark."""

    __tablename__ = "drift_runs"
    __table_args__ = (Index("ix_drift_runs_deployment_status", "deployment_id", "status", "window_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    deployment_id: Mapped[str] = mapped_column(String(253))
    model_version: Mapped[str | None] = mapped_column(String(64))
    # running | success | skipped | failed | sparse (a window behind the clock with too few rows: not analysed,
    # but the watermark moves past it so a job that fell behind catches up chunk by chunk)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows: Mapped[int | None] = mapped_column(Integer)
    drift_share: Mapped[float | None] = mapped_column(Float)
    report_uri: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
