"""Read the prediction logs of one role of one deployment over an analysis window (mlcore.db)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from mlcore.db import PredictionLog, session_scope
from mlpipeline_operator.analysis import LogRow

# A window larger than this is sampled by recency: enough for a p95 and a label distribution.
MAX_ROWS = 20_000


def fetch_rows(
    engine: Engine,
    deployment_id: str,
    role: str,
    model_version: str,
    since: datetime | None,
    limit: int = MAX_ROWS,
) -> list[LogRow]:
    """Rows of (deployment, role, version) logged at or after `since` (all time when None), newest first."""
    query = (
        select(
            PredictionLog.status,
            PredictionLog.latency_ms,
            PredictionLog.predicted_sentiment,
            PredictionLog.confidence,
        )
        .where(
            PredictionLog.deployment_id == deployment_id,
            PredictionLog.role == role,
            PredictionLog.model_version == model_version,
        )
        .order_by(PredictionLog.predicted_at.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(PredictionLog.predicted_at >= since)
    with session_scope(engine) as session:
        return [
            LogRow(r.status, float(r.latency_ms), r.predicted_sentiment, r.confidence) for r in session.execute(query)
        ]


def fetch_baseline(
    engine: Engine, deployment_id: str, model_version: str, since: datetime, min_rows: int
) -> list[LogRow]:
    """The stable rows of the window; when the stable got too little traffic (the canary at 100%), its latest rows."""
    rows = fetch_rows(engine, deployment_id, "stable", model_version, since)
    if len(rows) >= min_rows:
        return rows
    return fetch_rows(engine, deployment_id, "stable", model_version, None, limit=max(min_rows, 1000))
