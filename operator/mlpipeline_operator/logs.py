"""Aggregate the prediction logs of one role of one deployment over an analysis window, in the database.

Nothing row by row reaches Python: one GROUP BY (label x status) gives the counts, errors, confidences and (for A/B)
the feedback tallies; percentiles come from percentile_cont on PostgreSQL and from two ORDER BY ... OFFSET reads
elsewhere (SQLite). The index (deployment_id, role, predicted_at) bounds both scans to the window.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased

from mlcore.db import PredictionLog, session_scope
from mlpipeline_operator.analysis import RoleFigures
from mlpipeline_operator.shadow import Pairs
from mlpipeline_operator.stats import z_critical

P95 = 0.95


def _filters(deployment_id: str, role: str, model_version: str, since: datetime | None) -> list[Any]:
    conditions = [
        PredictionLog.deployment_id == deployment_id,
        PredictionLog.role == role,
        PredictionLog.model_version == model_version,
    ]
    if since is not None:
        conditions.append(PredictionLog.predicted_at >= since)
    return conditions


def role_figures(
    engine: Engine,
    deployment_id: str,
    role: str,
    model_version: str,
    since: datetime | None,
    *,
    latest: int | None = None,
    confidence: float = 0.95,
) -> RoleFigures:
    """Figures of (deployment, role, version) logged at or after `since`; `latest` limits to the newest rows."""
    with session_scope(engine) as session:
        source = _source(_filters(deployment_id, role, model_version, since), latest)
        figures = _grouped(session, source)
        ok = figures["requests"] - figures["errors"]
        p95, ci = _p95(session, engine.dialect.name, source, ok, confidence)
    return RoleFigures(
        requests=figures["requests"],
        errors=figures["errors"],
        latency_p95_ms=p95,
        latency_p95_ci_ms=ci,
        mean_confidence=figures["mean_confidence"],
        label_counts=figures["labels"],
        labelled=figures["labelled"],
        correct=figures["correct"],
        window="latest" if latest else "window",
    )


def baseline_figures(
    engine: Engine, deployment_id: str, model_version: str, since: datetime, min_rows: int, confidence: float = 0.95
) -> RoleFigures:
    """The stable model over the window; when it got too little traffic there (the canary at 100%), its newest
    rows instead, marked window=latest in the status."""
    figures = role_figures(engine, deployment_id, "stable", model_version, since, confidence=confidence)
    if figures.requests >= min_rows:
        return figures
    return role_figures(
        engine, deployment_id, "stable", model_version, None, latest=max(min_rows, 1000), confidence=confidence
    )


def _source(conditions: list[Any], latest: int | None) -> Any:
    columns = (
        PredictionLog.status,
        PredictionLog.latency_ms,
        PredictionLog.predicted_sentiment,
        PredictionLog.confidence,
        PredictionLog.feedback_label,
    )
    query: Select[Any] = select(*columns).where(*conditions)
    if latest is not None:
        query = query.order_by(PredictionLog.predicted_at.desc()).limit(latest)
    return query.subquery("window_rows")


def _grouped(session: Session, source: Any) -> dict[str, Any]:
    ok = source.c.status == "ok"
    labelled = and_(ok, source.c.feedback_label.is_not(None))
    query = select(
        source.c.predicted_sentiment,
        ok.label("ok"),
        func.count().label("n"),
        func.sum(source.c.confidence).label("confidence_sum"),
        func.count(source.c.confidence).label("confidence_n"),
        func.sum(case((labelled, 1), else_=0)).label("labelled"),
        func.sum(case((and_(labelled, source.c.feedback_label == source.c.predicted_sentiment), 1), else_=0)).label(
            "correct"
        ),
    ).group_by(source.c.predicted_sentiment, ok)
    requests = errors = confidence_n = labelled_n = correct = 0
    confidence_sum = 0.0
    labels: dict[str, int] = {}
    for row in session.execute(query):
        requests += row.n
        if not row.ok:
            errors += row.n
            continue
        if row.predicted_sentiment is not None:
            labels[row.predicted_sentiment] = labels.get(row.predicted_sentiment, 0) + row.n
        confidence_sum += float(row.confidence_sum or 0.0)
        confidence_n += row.confidence_n
        labelled_n += int(row.labelled or 0)
        correct += int(row.correct or 0)
    return {
        "requests": requests,
        "errors": errors,
        "mean_confidence": confidence_sum / confidence_n if confidence_n else None,
        "labels": dict(sorted(labels.items())),
        "labelled": labelled_n,
        "correct": correct,
    }


def quantile_fractions(n: int, q: float = P95, confidence: float = 0.95) -> tuple[float, float, float]:
    """The quantile and the fractions of its distribution-free interval: the order statistics at ranks
    n*q -/+ z*sqrt(n*q*(1-q)) (normal approximation of the binomial), as fractions for percentile_cont."""
    if n <= 1:
        return q, q, q
    half = z_critical(confidence) * math.sqrt(n * q * (1 - q))
    low = max(0.0, math.floor(n * q - half) - 1) / (n - 1)
    high = min(float(n - 1), math.ceil(n * q + half) - 1) / (n - 1)
    return q, max(0.0, low), min(1.0, high)


def _p95(
    session: Session, dialect: str, source: Any, ok: int, confidence: float
) -> tuple[float | None, tuple[float, float] | None]:
    if ok == 0:
        return None, None
    fractions = quantile_fractions(ok, P95, confidence)
    latency = source.c.latency_ms
    if dialect == "postgresql":
        query = select(*(func.percentile_cont(f).within_group(latency) for f in fractions))
        values = session.execute(query.where(source.c.status == "ok")).one()
        p95, low, high = (float(v) for v in values)
    else:
        p95, low, high = (_percentile_by_offset(session, source, ok, f) for f in fractions)
    return p95, (low, high)


def _percentile_by_offset(session: Session, source: Any, n: int, fraction: float) -> float:
    """Linear interpolation between the two order statistics around rank fraction*(n-1), read with OFFSET."""
    rank = fraction * (n - 1)
    below = math.floor(rank)
    values = [
        float(v)
        for (v,) in session.execute(
            select(source.c.latency_ms)
            .where(source.c.status == "ok")
            .order_by(source.c.latency_ms)
            .offset(below)
            .limit(2)
        )
    ]
    if len(values) == 1:
        return values[0]
    return values[0] + (values[1] - values[0]) * (rank - below)


# A mirrored copy is logged after the stable prediction it mirrors: look that far back for the stable side.
MIRROR_LAG = timedelta(minutes=1)


def paired_figures(
    engine: Engine, deployment_id: str, shadow_version: str, stable_version: str, since: datetime
) -> Pairs:
    """Successful shadow predictions joined to the successful stable predictions they mirror (same request id,
    same input): how many pairs, how many agree on the label, and the mean |confidence difference|."""
    shadow = aliased(PredictionLog, name="shadow")
    stable = aliased(PredictionLog, name="stable")
    query = (
        select(
            func.count().label("pairs"),
            func.sum(case((shadow.predicted_sentiment == stable.predicted_sentiment, 1), else_=0)).label("agree"),
            func.avg(func.abs(shadow.confidence - stable.confidence)).label("delta"),
        )
        .select_from(shadow)
        .join(
            stable,
            and_(
                stable.request_id == shadow.mirrored_request_id,
                stable.input_hash == shadow.input_hash,
                stable.deployment_id == deployment_id,
                stable.role == "stable",
                stable.model_version == stable_version,
                stable.status == "ok",
                stable.predicted_at >= since - MIRROR_LAG,
            ),
        )
        .where(
            shadow.deployment_id == deployment_id,
            shadow.role == "shadow",
            shadow.model_version == shadow_version,
            shadow.status == "ok",
            shadow.predicted_at >= since,
        )
    )
    with session_scope(engine) as session:
        row = session.execute(query).one()
    return Pairs(int(row.pairs or 0), int(row.agree or 0), None if row.delta is None else float(row.delta))
