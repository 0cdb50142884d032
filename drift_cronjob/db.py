"""Database reads and writes of the drift job: targets, watermark, run records and windows of prediction logs."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import and_, case, func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from drift_cronjob.features import feature_frame, normalize_labels
from mlcore.db import DriftRun, ModelDeployment, PredictionLog, session_scope
from mlcore.errors import ConfigurationError, DatabaseError
from mlcore.timeutil import as_utc, utc_now

log = logging.getLogger(__name__)

REQUIRED_TABLES = ("prediction_logs", "model_deployments", "dataset_metrics", "monitoring_alerts", "drift_runs")


def wait_for_database(engine: Engine, attempts: int, first_wait_s: float) -> None:
    """Connect (with retries) and check the schema is there; DatabaseError when it is not reachable."""

    def probe() -> list[str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            return [t for t in REQUIRED_TABLES if not inspect(connection).has_table(t)]

    retrying = Retrying(
        retry=retry_if_exception_type((OperationalError, InterfaceError)),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=first_wait_s, max=30),
        before_sleep=lambda state: log.warning(
            "database not reachable (attempt %d of %d), retrying", state.attempt_number, attempts
        ),
        reraise=True,
    )
    try:
        missing = retrying(probe)
    except (OperationalError, InterfaceError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = first[0] if first else type(exc).__name__
        raise DatabaseError(
            f"database {engine.url.render_as_string(hide_password=True)} unreachable after {attempts} attempts: "
            f"{reason}"
        ) from exc
    if missing:
        raise DatabaseError(
            f"database schema is missing tables {missing}: apply the migrations first (alembic upgrade)"
        )


# --------------------------------------------------------------------------------------------------------------
# targets and runs
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One deployed model version to watch: a deployment id with the version its predictors serve."""

    deployment_id: str
    model_name: str
    model_version: str
    storage_uri: str | None = None
    model_metrics: dict[str, Any] | None = field(default=None, compare=False)


def find_targets(session: Session, deployment_id: str | None = None, model_version: str | None = None) -> list[Target]:
    """Active (deployment, model version) pairs, newest record of each; for an explicit deployment, its latest."""
    query = select(ModelDeployment).order_by(ModelDeployment.updated_at.desc(), ModelDeployment.id.desc())
    if deployment_id:
        query = query.where(ModelDeployment.deployment_id == deployment_id)
    if model_version:
        query = query.where(ModelDeployment.model_version == model_version)
    rows = list(session.scalars(query.where(ModelDeployment.is_active.is_(True))))
    if not rows and deployment_id:
        # An explicit deployment that is no longer active can still be analysed (e.g. a post-mortem).
        rows = list(session.scalars(query.limit(1)))
        if not rows:
            raise ConfigurationError(
                f"deployment {deployment_id!r}{f' version {model_version!r}' if model_version else ''} "
                "is not recorded in model_deployments"
            )
    seen: dict[tuple[str, str], Target] = {}
    for row in rows:
        key = (row.deployment_id, row.model_version)
        if key not in seen:
            seen[key] = Target(row.deployment_id, row.model_name, row.model_version, row.storage_uri, row.model_metrics)
    return sorted(seen.values(), key=lambda t: (t.deployment_id, t.model_version))


# Runs whose window the next one starts after: analysed, or passed over as too sparse while catching up.
WATERMARK_STATUSES = ("success", "sparse")


def watermark(session: Session, target: Target) -> datetime | None:
    """End of the newest window of this deployment and version that was analysed (or passed over as sparse)."""
    value = session.scalar(
        select(func.max(DriftRun.window_end)).where(
            DriftRun.deployment_id == target.deployment_id,
            DriftRun.model_version == target.model_version,
            DriftRun.status.in_(WATERMARK_STATUSES),
        )
    )
    return as_utc(value) if value is not None else None


def start_run(engine: Engine, run_id: str, target: Target, start: datetime, end: datetime) -> None:
    with session_scope(engine) as session:
        session.add(
            DriftRun(
                run_id=run_id,
                deployment_id=target.deployment_id,
                model_version=target.model_version,
                status="running",
                window_start=start,
                window_end=end,
            )
        )


def finish_run(session: Session, run_id: str, status: str, **values: Any) -> None:
    run = session.scalars(select(DriftRun).where(DriftRun.run_id == run_id)).one()
    run.status = status
    run.finished_at = utc_now()
    for key, value in values.items():
        setattr(run, key, value)


# --------------------------------------------------------------------------------------------------------------
# windows of prediction logs
# --------------------------------------------------------------------------------------------------------------


def _window_filter(target: Target, start: datetime, end: datetime, column: Any = PredictionLog.logged_at) -> Any:
    """Rows of the target in (start, end] by `column`: by default the time a row reached the database, so a row
    that arrived late (a retry, a spill replay after an outage) lands in a later window instead of none."""
    return and_(
        PredictionLog.deployment_id == target.deployment_id,
        PredictionLog.model_version == target.model_version,
        column > start,
        column <= end,
    )


@dataclass
class Window:
    """The compared columns of the successful predictions in a window, and the texts when embeddings need them."""

    frame: pd.DataFrame
    texts: list[str]

    @property
    def rows(self) -> int:
        return len(self.frame)


def load_window(
    session: Session,
    target: Target,
    start: datetime,
    end: datetime,
    *,
    descriptors: bool = False,
    keep_texts: bool = False,
    batch_rows: int = 20_000,
    labels: list[str] | None = None,
) -> Window:
    """Stream the window in batches, keeping only the derived columns (texts only when asked)."""
    query = (
        select(PredictionLog.input_text, PredictionLog.predicted_sentiment, PredictionLog.confidence)
        .where(
            _window_filter(target, start, end),
            PredictionLog.status == "ok",
            PredictionLog.predicted_sentiment.is_not(None),
            PredictionLog.confidence.is_not(None),
        )
        .execution_options(yield_per=batch_rows)
    )
    frames: list[pd.DataFrame] = []
    kept: list[str] = []
    for batch in session.execute(query).partitions():
        texts = [row[0] or "" for row in batch]
        frames.append(
            feature_frame(
                texts,
                normalize_labels((row[1] for row in batch), labels),
                [row[2] for row in batch],
                descriptors=descriptors,
            )
        )
        if keep_texts:
            kept.extend(texts)
    if not frames:
        return Window(feature_frame([], [], [], descriptors=descriptors), [])
    return Window(pd.concat(frames, ignore_index=True), kept)


def request_counts(
    session: Session, target: Target, start: datetime, end: datetime, previous: int
) -> tuple[int, list[int]]:
    """Requests (ok and error) in the window, and in each of `previous` windows of equal length before it."""
    length = end - start
    edges = [start - length * k for k in range(previous, 0, -1)] + [start, end]
    # One scan of the index range, one conditional count per window; windows are (lower, upper].
    buckets = [
        func.coalesce(
            func.sum(case((and_(PredictionLog.predicted_at > lo, PredictionLog.predicted_at <= hi), 1), else_=0)), 0
        )
        for lo, hi in itertools.pairwise(edges)
    ]
    # Traffic volume is counted by prediction time (when the requests came), not by when their rows arrived.
    row = session.execute(
        select(*buckets).where(_window_filter(target, edges[0], end, PredictionLog.predicted_at))
    ).one()
    counts = [int(value) for value in row]
    return counts[-1], counts[:-1]


def feedback_pairs(
    session: Session, target: Target, start: datetime, end: datetime, labels: list[str] | None = None
) -> pd.DataFrame:
    """Predicted and true label of each row whose feedback arrived in the window."""
    received = func.coalesce(PredictionLog.feedback_at, PredictionLog.predicted_at)
    query = select(PredictionLog.predicted_sentiment, PredictionLog.feedback_label).where(
        _window_filter(target, start, end, received),
        PredictionLog.status == "ok",
        PredictionLog.feedback_label.is_not(None),
        PredictionLog.predicted_sentiment.is_not(None),
    )
    rows = session.execute(query).all()
    return pd.DataFrame(
        {
            "predicted": normalize_labels((r[0] for r in rows), labels),
            "actual": normalize_labels((r[1] for r in rows), labels),
        }
    )
