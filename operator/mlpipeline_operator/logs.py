"""Aggregate the prediction logs of one role of one deployment over an analysis window, in the database.

Nothing row by row reaches Python. Every arm of an analysis (canary and stable, say) is
read together: one GROUP BY (arm x label x status) gives the counts, errors, confidences and feedback tallies; on
PostgreSQL one percentile_cont per arm over a fixed grid of fractions gives the p95 and its interval (read off the
grid); elsewhere (SQLite) ORDER BY ... OFFSET reads do. The index (deployment_id, role, predicted_at) bounds both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased

from mlcore.db import PredictionLog, session_scope
from mlpipeline_operator.analysis import RoleFigures
from mlpipeline_operator.shadow import Pairs
from mlpipeline_operator.stats import z_critical

P95 = 0.95
# Fractions 0.7000, 0.7005, ..., 1.0000: the p95 and the bounds of its interval are read off this grid (the bounds
# rounded outwards to it), so one sort serves them all. Interval bounds below 0.70 mean under ~10 samples.
_GRID_STEP = 5  # in 1/10000
GRID_LOW = 7_000
GRID = tuple(i / 10_000 for i in range(GRID_LOW, 10_001, _GRID_STEP))
WORK_MEM = "64MB"


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
    return arm_figures(engine, deployment_id, {role: model_version}, since, latest=latest, confidence=confidence)[role]


def arm_figures(
    engine: Engine,
    deployment_id: str,
    arms: dict[str, str],
    since: datetime | None,
    *,
    latest: int | None = None,
    confidence: float = 0.95,
) -> dict[str, RoleFigures]:
    """Figures of each arm (role -> model version) from the same two reads of the window: the arms' rows share
    the heap pages, so reading them together costs about what reading one does."""
    conditions = [
        PredictionLog.deployment_id == deployment_id,
        PredictionLog.role.in_(sorted(arms)),
        PredictionLog.model_version.in_(sorted(set(arms.values()))),
    ]
    if since is not None:
        conditions.append(PredictionLog.predicted_at >= since)
    source = _source(conditions, latest)
    with session_scope(engine) as session:
        tallies = _grouped(session, source)
        if engine.dialect.name == "postgresql":
            grids = _percentile_grids(session, source, arms)
        figures = {}
        for role, version in arms.items():
            tally = tallies.get((role, version), _tally([]))
            ok = tally["requests"] - tally["errors"]
            if engine.dialect.name == "postgresql":
                p95, ci = _read_grid(grids.get((role, version)), ok, confidence)
            else:
                arm = select(source).where(source.c.role == role, source.c.model_version == version).subquery()
                p95, ci = _p95_by_offset(session, arm, ok, confidence)
            figures[role] = RoleFigures(
                requests=tally["requests"],
                errors=tally["errors"],
                latency_p95_ms=p95,
                latency_p95_ci_ms=ci,
                mean_confidence=tally["mean_confidence"],
                label_counts=tally["labels"],
                labelled=tally["labelled"],
                correct=tally["correct"],
                window="latest" if latest else "window",
            )
    return figures


def baseline_figures(
    engine: Engine, deployment_id: str, model_version: str, since: datetime, min_rows: int, confidence: float = 0.95
) -> RoleFigures:
    """The stable model's newest rows: for when it got too little traffic in the window (the canary at 100%);
    marked window=latest in the status."""
    return role_figures(
        engine, deployment_id, "stable", model_version, None, latest=max(min_rows, 1000), confidence=confidence
    )


def _source(conditions: list[Any], latest: int | None) -> Any:
    columns = (
        PredictionLog.role,
        PredictionLog.model_version,
        PredictionLog.status,
        PredictionLog.latency_ms,
        PredictionLog.predicted_sentiment,
        PredictionLog.confidence,
        PredictionLog.feedback_label,
    )
    query = select(*columns).where(*conditions)
    if latest is not None:
        query = query.order_by(PredictionLog.predicted_at.desc()).limit(latest)
    return query.subquery("window_rows")


def _grouped(session: Session, source: Any) -> dict[tuple[str, str], dict[str, Any]]:
    ok = source.c.status == "ok"
    labelled = and_(ok, source.c.feedback_label.is_not(None))
    correct = and_(labelled, source.c.feedback_label == source.c.predicted_sentiment)
    query = select(
        source.c.role,
        source.c.model_version,
        source.c.predicted_sentiment,
        ok.label("ok"),
        func.count().label("n"),
        func.sum(source.c.confidence).label("confidence_sum"),
        func.count(source.c.confidence).label("confidence_n"),
        func.sum(case((labelled, 1), else_=0)).label("labelled"),
        func.sum(case((correct, 1), else_=0)).label("correct"),
    ).group_by(source.c.role, source.c.model_version, source.c.predicted_sentiment, ok)
    by_arm: dict[tuple[str, str], list[Any]] = {}
    for row in session.execute(query):
        by_arm.setdefault((row.role, row.model_version), []).append(row)
    return {arm: _tally(rows) for arm, rows in by_arm.items()}


def _percentile_grids(session: Session, source: Any, arms: dict[str, str]) -> dict[tuple[str, str], list[float]]:
    """PostgreSQL: percentile_cont over GRID of each arm's successful requests, in one read: one aggregate per arm
    with a FILTER (a GROUP BY would sort every row once more before the aggregates sort them again)."""
    # The window's latencies must sort in memory: more than PostgreSQL's default 4MB, for this transaction only.
    session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    keys = list(arms.items())
    grid = literal(list(GRID), ARRAY(Float))
    columns = [
        func.percentile_cont(grid)
        .within_group(source.c.latency_ms)
        .filter(and_(source.c.role == role, source.c.model_version == version))
        .label(f"arm{i}")
        for i, (role, version) in enumerate(keys)
    ]
    row = session.execute(select(*columns).where(source.c.status == "ok")).one()
    return {key: [float(v) for v in values] for key, values in zip(keys, row, strict=True) if values is not None}


def _read_grid(
    values: list[float] | None, ok: int, confidence: float
) -> tuple[float | None, tuple[float, float] | None]:
    if not ok or values is None:
        return None, None
    by_fraction = dict(zip(GRID, values, strict=True))
    p95, low, high = quantile_fractions(ok, P95, confidence)
    return by_fraction[p95], (by_fraction[low], by_fraction[high])


def _tally(rows: Any) -> dict[str, Any]:
    requests = errors = confidence_n = labelled_n = correct = 0
    confidence_sum = 0.0
    labels: dict[str, int] = {}
    for row in rows:
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
    n*q -/+ z*sqrt(n*q*(1-q)) (normal approximation of the binomial), as fractions for percentile_cont, rounded
    outwards to GRID (so the interval is never narrower than the exact one)."""
    if n <= 1:
        return q, q, q
    half = z_critical(confidence) * math.sqrt(n * q * (1 - q))
    low = max(0.0, math.floor(n * q - half) - 1) / (n - 1)
    high = min(float(n - 1), math.ceil(n * q + half) - 1) / (n - 1)
    return q, _on_grid(low, math.floor), _on_grid(high, math.ceil)


def _on_grid(fraction: float, rounding: Callable[[float], int]) -> float:
    steps: int = rounding(round(fraction * 10_000, 6) / _GRID_STEP) * _GRID_STEP
    return min(max(steps, GRID_LOW), 10_000) / 10_000


def _p95_by_offset(
    session: Session, source: Any, ok: int, confidence: float
) -> tuple[float | None, tuple[float, float] | None]:
    if ok == 0:
        return None, None
    p95, low, high = (_percentile_by_offset(session, source, ok, f) for f in quantile_fractions(ok, P95, confidence))
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
