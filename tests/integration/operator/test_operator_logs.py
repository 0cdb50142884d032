"""The analysis aggregates computed in the database (PostgreSQL percentile_cont, SQLite OFFSET reads) equal the
same figures computed from the rows in Python."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from mlcore.db import PredictionLog, create_db_engine, session_scope, upgrade_to_head
from mlpipeline_operator.logs import arm_figures, baseline_figures, quantile_fractions, role_figures

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(n: int, role: str, version: str, rng: np.random.Generator, start: datetime) -> list[dict]:
    latencies = rng.gamma(2.0, 15.0, n)
    labels = rng.choice(["negative", "positive", "neutral"], n, p=[0.5, 0.4, 0.1])
    failed = rng.random(n) < 0.03
    feedback = rng.random(n) < 0.3
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": uuid.uuid4(),
                "input_text": "t",
                "input_hash": "h",
                "predicted_sentiment": None if failed[i] else str(labels[i]),
                "confidence": None if failed[i] else 0.5 + (i % 50) / 100,
                "model_name": "sentiment",
                "model_version": version,
                "deployment_id": "ns/m",
                "role": role,
                "latency_ms": float(latencies[i]),
                "status": "error" if failed[i] else "ok",
                "predicted_at": start + timedelta(milliseconds=i),
                "feedback_label": ("positive" if i % 3 else str(labels[i])) if feedback[i] and not failed[i] else None,
            }
        )
    return rows


@pytest.fixture(params=["postgresql", "sqlite"])
def filled(request: pytest.FixtureRequest, tmp_path) -> tuple[Engine, list[dict]]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/a.db"
    engine = create_db_engine(url)
    upgrade_to_head(engine)
    rng = np.random.default_rng(7)
    old = _rows(300, "canary", "2", rng, T0 - timedelta(hours=1))  # before the window
    rows = _rows(3000, "canary", "2", rng, T0)
    noise = _rows(200, "stable", "1", rng, T0) + _rows(100, "canary", "3", rng, T0)
    with session_scope(engine) as session:
        session.execute(PredictionLog.__table__.insert(), old + rows + noise)
    yield engine, rows
    engine.dispose()


def test_role_figures_equal_python_over_the_rows(filled: tuple[Engine, list[dict]]) -> None:
    engine, rows = filled
    figures = role_figures(engine, "ns/m", "canary", "2", T0)
    ok = [r for r in rows if r["status"] == "ok"]
    assert (figures.requests, figures.errors) == (len(rows), len(rows) - len(ok))
    latencies = np.array([r["latency_ms"] for r in ok])
    assert figures.latency_p95_ms == pytest.approx(float(np.percentile(latencies, 95)))
    _, low, high = quantile_fractions(len(ok))
    assert figures.latency_p95_ci_ms == pytest.approx(
        (float(np.percentile(latencies, low * 100)), float(np.percentile(latencies, high * 100)))
    )
    assert figures.mean_confidence == pytest.approx(float(np.mean([r["confidence"] for r in ok])))
    labels, counts = np.unique([r["predicted_sentiment"] for r in ok], return_counts=True)
    assert dict(figures.label_counts) == dict(zip(labels.tolist(), counts.tolist(), strict=True))
    labelled = [r for r in ok if r["feedback_label"] is not None]
    assert figures.labelled == len(labelled) > 0
    assert figures.correct == sum(r["feedback_label"] == r["predicted_sentiment"] for r in labelled)


def test_arms_read_together_equal_each_read_alone(filled: tuple[Engine, list[dict]]) -> None:
    engine, _ = filled
    together = arm_figures(engine, "ns/m", {"canary": "2", "stable": "1"}, T0)
    for role, version in (("canary", "2"), ("stable", "1")):
        alone = role_figures(engine, "ns/m", role, version, T0)
        # Sums of floats may add up in another order (parallel workers): the mean agrees to rounding.
        assert together[role].mean_confidence == pytest.approx(alone.mean_confidence, rel=1e-12)
        assert replace(together[role], mean_confidence=None) == replace(alone, mean_confidence=None)
    assert together["stable"].requests == 200 and together["stable"].window == "window"
    assert role_figures(engine, "ns/m", "shadow", "2", T0).requests == 0


def test_baseline_is_the_newest_rows_whatever_the_window(filled: tuple[Engine, list[dict]]) -> None:
    engine, _ = filled
    later = T0 + timedelta(hours=1)
    assert role_figures(engine, "ns/m", "stable", "1", later).requests == 0
    latest = baseline_figures(engine, "ns/m", "1", later, min_rows=50)
    assert (latest.window, latest.requests) == ("latest", 200)  # up to max(min_rows, 1000) newest rows
