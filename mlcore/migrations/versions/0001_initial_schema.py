"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 14:49:10.119432
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "dataset_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("deployment_id", sa.String(length=253), nullable=True),
        sa.Column("model_name", sa.String(length=128), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("split", sa.String(length=32), nullable=True),
        sa.Column("column_name", sa.String(length=128), nullable=True),
        sa.Column("metric_name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dataset_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_dataset_metrics_deployment_time", ["deployment_id", "created_at"], unique=False)
        batch_op.create_index("ix_dataset_metrics_run_id", ["run_id"], unique=False)

    op.create_table(
        "drift_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("deployment_id", sa.String(length=253), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("drift_share", sa.Float(), nullable=True),
        sa.Column("report_uri", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id"),
    )
    with op.batch_alter_table("drift_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_drift_runs_deployment_status", ["deployment_id", "status", "window_end"], unique=False
        )

    op.create_table(
        "experiment_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("parent_run_id", sa.String(length=64), nullable=True),
        sa.Column("experiment_name", sa.String(length=256), nullable=False),
        sa.Column("run_name", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("registered_model_name", sa.String(length=128), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("storage_uri", sa.Text(), nullable=True),
        sa.Column("dataset_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("is_champion", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id"),
    )
    with op.batch_alter_table("experiment_runs", schema=None) as batch_op:
        batch_op.create_index("ix_experiment_runs_model", ["registered_model_name", "model_version"], unique=False)

    op.create_table(
        "model_deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.String(length=253), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=True),
        sa.Column("rollout_id", sa.String(length=128), nullable=False),
        sa.Column("deployment_type", sa.String(length=16), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("storage_uri", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("traffic_percent", sa.Integer(), nullable=False),
        sa.Column(
            "model_metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "deployment_type IN ('stable', 'canary', 'shadow')", name="ck_model_deployments_deployment_type"
        ),
        sa.CheckConstraint("traffic_percent BETWEEN 0 AND 100", name="ck_model_deployments_traffic_percent"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("deployment_id", "rollout_id", "deployment_type", name="uq_model_deployments_event"),
    )
    with op.batch_alter_table("model_deployments", schema=None) as batch_op:
        batch_op.create_index("ix_model_deployments_active", ["is_active"], unique=False)
        batch_op.create_index("ix_model_deployments_deployment_id", ["deployment_id"], unique=False)

    op.create_table(
        "monitoring_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.String(length=253), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("alert_type", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("report_uri", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("alert_type IN ('drift', 'performance', 'volume')", name="ck_monitoring_alerts_alert_type"),
        sa.CheckConstraint("severity IN ('info', 'warning', 'critical')", name="ck_monitoring_alerts_severity"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitoring_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_monitoring_alerts_open", ["deployment_id", "alert_type", "resolved"], unique=False)

    op.create_table(
        "prediction_logs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("input_text", sa.Text(), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("predicted_sentiment", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column(
            "probabilities",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("deployment_id", sa.String(length=253), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="ok", nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feedback_label", sa.String(length=64), nullable=True),
        sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('ok', 'error')", name="ck_prediction_logs_status"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prediction_logs", schema=None) as batch_op:
        batch_op.create_index("ix_prediction_logs_deployment_id", ["deployment_id"], unique=False)
        batch_op.create_index(
            "ix_prediction_logs_deployment_role_time", ["deployment_id", "role", "predicted_at"], unique=False
        )
        batch_op.create_index("ix_prediction_logs_predicted_at", ["predicted_at"], unique=False)
        batch_op.create_index("ix_prediction_logs_predicted_sentiment", ["predicted_sentiment"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("prediction_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_logs_predicted_sentiment")
        batch_op.drop_index("ix_prediction_logs_predicted_at")
        batch_op.drop_index("ix_prediction_logs_deployment_role_time")
        batch_op.drop_index("ix_prediction_logs_deployment_id")

    op.drop_table("prediction_logs")
    with op.batch_alter_table("monitoring_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_monitoring_alerts_open")

    op.drop_table("monitoring_alerts")
    with op.batch_alter_table("model_deployments", schema=None) as batch_op:
        batch_op.drop_index("ix_model_deployments_deployment_id")
        batch_op.drop_index("ix_model_deployments_active")

    op.drop_table("model_deployments")
    with op.batch_alter_table("experiment_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_experiment_runs_model")

    op.drop_table("experiment_runs")
    with op.batch_alter_table("drift_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_drift_runs_deployment_status")

    op.drop_table("drift_runs")
    with op.batch_alter_table("dataset_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_dataset_metrics_run_id")
        batch_op.drop_index("ix_dataset_metrics_deployment_time")

    op.drop_table("dataset_metrics")
