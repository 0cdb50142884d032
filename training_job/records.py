"""Database records of the training job: experiment_runs (mirror of MLflow runs) and dataset_metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from mlcore.db import DatasetMetric, ExperimentRun, session_scope
from training_job.stats import DatasetStat


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, float) and value != value:  # NaN is not JSON
            out[key] = None
        elif isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
        else:
            out[key] = str(value)
    return out


class RunRecorder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self,
        run_id: str,
        *,
        experiment_name: str,
        run_name: str,
        params: dict[str, Any],
        parent_run_id: str | None = None,
        registered_model_name: str | None = None,
        dataset_hash: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        """Insert (or reset, on a resumed run) the row of one MLflow run as RUNNING."""
        with session_scope(self.engine) as session:
            row = session.scalar(select(ExperimentRun).where(ExperimentRun.run_id == run_id))
            if row is None:
                row = ExperimentRun(run_id=run_id)
                session.add(row)
            row.parent_run_id = parent_run_id
            row.experiment_name = experiment_name
            row.run_name = run_name
            row.status = "RUNNING"
            row.registered_model_name = registered_model_name
            row.dataset_hash = dataset_hash
            row.params = _jsonable(params)
            row.tags = _jsonable(tags)
            row.started_at = datetime.now(UTC)

    def finish(
        self,
        run_id: str,
        status: str,
        *,
        metrics: dict[str, Any] | None = None,
        model_version: str | None = None,
        storage_uri: str | None = None,
        is_champion: bool = False,
        tags: dict[str, Any] | None = None,
    ) -> None:
        with session_scope(self.engine) as session:
            row = session.scalar(select(ExperimentRun).where(ExperimentRun.run_id == run_id))
            if row is None:
                return
            if is_champion and row.registered_model_name:
                # One champion per registered model: the new one takes the flag from the old.
                session.execute(
                    update(ExperimentRun)
                    .where(ExperimentRun.registered_model_name == row.registered_model_name)
                    .values(is_champion=False)
                )
            row.status = status
            row.ended_at = datetime.now(UTC)
            if metrics is not None:
                row.metrics = _jsonable(metrics)
            if model_version is not None:
                row.model_version = model_version
            if storage_uri is not None:
                row.storage_uri = storage_uri
            if tags:
                row.tags = {**(row.tags or {}), **(_jsonable(tags) or {})}
            row.is_champion = is_champion

    def dataset_metrics(
        self,
        run_id: str,
        stats: list[DatasetStat],
        *,
        model_name: str | None = None,
        model_version: str | None = None,
    ) -> int:
        with session_scope(self.engine) as session:
            for stat in stats:
                session.add(
                    DatasetMetric(
                        run_id=run_id,
                        source="training",
                        model_name=model_name,
                        model_version=model_version,
                        split=stat.split,
                        column_name=stat.column_name,
                        metric_name=stat.metric_name,
                        value=stat.value,
                        details=stat.details or None,
                    )
                )
        return len(stats)

    def set_dataset_metrics_version(self, run_id: str, model_version: str) -> None:
        """Stamp the run's data statistics with the model version once it is known."""
        with session_scope(self.engine) as session:
            session.execute(
                update(DatasetMetric)
                .where(DatasetMetric.run_id == run_id, DatasetMetric.source == "training")
                .values(model_version=model_version)
            )
