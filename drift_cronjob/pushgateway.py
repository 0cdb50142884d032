"""Prometheus metrics of a run, pushed to a Pushgateway (a CronJob lives too briefly to be scraped)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from drift_cronjob.analysis import DriftResult
from drift_cronjob.checks import Quality
from drift_cronjob.db import Target
from drift_cronjob.settings import DriftSettings

log = logging.getLogger(__name__)


def build_registry(
    target: Target, result: DriftResult | None, quality: Quality | None, rows: int, finished_at: float
) -> CollectorRegistry:
    registry = CollectorRegistry()
    labels = ["deployment", "model_version"]
    ident = {"deployment": target.deployment_id, "model_version": target.model_version}
    Gauge(
        "mlpipeline_drift_last_success_timestamp_seconds",
        "Unix time of the last successful drift run",
        labels,
        registry=registry,
    ).labels(**ident).set(finished_at)
    Gauge("mlpipeline_drift_window_rows", "Predictions analysed in the last window", labels, registry=registry).labels(
        **ident
    ).set(rows)
    if result is not None:
        Gauge("mlpipeline_drift_share", "Share of drifted columns", labels, registry=registry).labels(**ident).set(
            result.drift_share
        )
        Gauge("mlpipeline_drift_dataset_drift", "1 when the dataset drifted", labels, registry=registry).labels(
            **ident
        ).set(1.0 if result.alert else 0.0)
        score = Gauge(
            "mlpipeline_drift_column_score",
            "Drift score of a column (its method decides the direction)",
            [*labels, "column", "method"],
            registry=registry,
        )
        drifted = Gauge(
            "mlpipeline_drift_column_drifted", "1 when the column drifted", [*labels, "column"], registry=registry
        )
        columns = list(result.columns) + ([result.embedding] if result.embedding else [])
        for column in columns:
            score.labels(**ident, column=column.column, method=column.method).set(column.score)
            drifted.labels(**ident, column=column.column).set(1.0 if column.drifted else 0.0)
    if quality is not None:
        Gauge("mlpipeline_feedback_accuracy", "Accuracy against feedback labels", labels, registry=registry).labels(
            **ident
        ).set(quality.accuracy)
        Gauge("mlpipeline_feedback_f1", "F1 against feedback labels", labels, registry=registry).labels(**ident).set(
            quality.f1
        )
    return registry


def push(settings: DriftSettings, target: Target, registry: CollectorRegistry) -> bool:
    """Push one deployment's metrics (grouped by deployment and version); a failure is logged, never fatal."""
    if not settings.pushgateway_url:
        return False
    try:
        push_to_gateway(
            settings.pushgateway_url,
            job=settings.pushgateway_job,
            registry=registry,
            grouping_key={"deployment": target.deployment_id, "model_version": target.model_version},
            timeout=10,
        )
    except OSError as exc:
        log.error("pushgateway %s unreachable: %s", settings.pushgateway_url, exc)
        return False
    return True
