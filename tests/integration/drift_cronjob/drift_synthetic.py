"""Synthetic prediction logs and published model versions for the drift job's tests and benchmark (no model).

Same distribution: ~60-word texts, balanced labels, confident predictions. Shifted: ~180-word texts, labels
flipped towards negative, low confidence.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from mlcore.db import ModelDeployment, PredictionLog, session_scope
from mlcore.storage import join_key, open_storage, publish_directory

VOCAB = [
    "movie", "film", "plot", "actor", "great", "boring", "story", "scene", "good", "bad", "music", "director",
    "wonderful", "awful", "character", "ending", "script", "funny", "slow", "brilliant", "the", "a", "and", "was",
]  # fmt: skip
LABELS = ["negative", "positive"]
CARD_METRICS = {"accuracy": 0.9, "f1": 0.9, "precision": 0.9, "recall": 0.9, "roc_auc": 0.95}


def texts(rng: np.random.Generator, n: int, mean_words: float) -> list[str]:
    counts = np.maximum(3, rng.normal(mean_words, mean_words * 0.15, n).astype(int))
    words = rng.choice(VOCAB, size=int(counts.sum()))
    out, pos = [], 0
    for c in counts:
        out.append(" ".join(words[pos : pos + c]) + ".")
        pos += c
    return out


def sample(rng: np.random.Generator, n: int, *, shifted: bool = False) -> pd.DataFrame:
    """text, predicted_label, confidence (and the true label: the prediction, 90% of the time)."""
    predicted = rng.choice(LABELS, size=n, p=[0.85, 0.15] if shifted else [0.5, 0.5])
    confidence = rng.uniform(0.5, 0.65, n) if shifted else rng.uniform(0.8, 0.99, n)
    flip = rng.random(n) < 0.1
    label = np.where(flip, np.where(predicted == "positive", "negative", "positive"), predicted)
    return pd.DataFrame(
        {
            "text": texts(rng, n, 180 if shifted else 60),
            "label": label,
            "predicted_label": predicted,
            "confidence": confidence,
        }
    )


def publish_model_version(
    storage_uri: str,
    name: str,
    version: str,
    reference: pd.DataFrame,
    *,
    metrics: dict[str, float] | None = None,
    integer_labels: bool = False,
) -> str:
    """Publish reference.parquet + model_card.json (+ MANIFEST last) at models/<name>/<version>; returns its URI."""
    storage = open_storage(storage_uri)
    prefix = join_key("models", name, version)
    table = reference.copy()
    if integer_labels:
        table["label"] = table["label"].map(LABELS.index)
        table["predicted_label"] = table["predicted_label"].map(LABELS.index)
    card = {
        "name": name,
        "version": version,
        "labels": LABELS,
        "max_length": 32,
        "base_model": "synthetic",
        "metrics": metrics or CARD_METRICS,
        "dataset": {"hash": hashlib.sha256(b"synthetic").hexdigest(), "rows": len(table)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        table.to_parquet(directory / "reference.parquet", index=False)
        (directory / "model_card.json").write_text(json.dumps(card))
        publish_directory(storage, prefix, directory, metadata={"model": name, "version": version})
    return storage.uri_for(prefix)


def record_deployment(
    engine: Engine,
    deployment_id: str,
    name: str,
    version: str,
    storage_uri: str | None,
    *,
    deployment_type: str = "stable",
    active: bool = True,
    metrics: dict[str, Any] | None = None,
) -> None:
    with session_scope(engine) as session:
        session.add(
            ModelDeployment(
                deployment_id=deployment_id,
                namespace=deployment_id.split("/")[0],
                rollout_id=uuid.uuid4().hex[:12],
                deployment_type=deployment_type,
                model_name=name,
                model_version=version,
                storage_uri=storage_uri,
                is_active=active,
                traffic_percent=100 if deployment_type == "stable" else 10,
                model_metrics=metrics,
            )
        )


def log_rows(
    frame: pd.DataFrame,
    deployment_id: str,
    name: str,
    version: str,
    start: datetime,
    end: datetime,
    *,
    feedback: str | None = None,
    rng: np.random.Generator | None = None,
    logged_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """prediction_logs rows spread evenly over (start, end]; feedback 'true' / 'wrong' labels every row.

    Each row reached the database when it was predicted, unless `logged_at` says when they all arrived (late)."""
    rng = rng or np.random.default_rng(0)
    n = len(frame)
    step = (end - start) / (n + 1)
    rows = []
    for i, rec in enumerate(frame.itertuples(index=False)):
        predicted_at = start + step * (i + 1)
        pred = str(rec.predicted_label)
        row: dict[str, Any] = {
            "id": uuid.uuid4(),
            "input_text": rec.text,
            "input_hash": hashlib.sha256(rec.text.encode()).hexdigest(),
            "predicted_sentiment": pred,
            "confidence": float(rec.confidence),
            "probabilities": None,
            "model_name": name,
            "model_version": version,
            "deployment_id": deployment_id,
            "role": "stable",
            "latency_ms": float(rng.uniform(5, 20)),
            "request_id": None,
            "status": "ok",
            "error_message": None,
            "predicted_at": predicted_at,
            "feedback_label": None,
            "feedback_at": None,
            "logged_at": logged_at or predicted_at,
        }
        if feedback == "true":
            row["feedback_label"] = str(rec.label)
        elif feedback == "wrong":
            row["feedback_label"] = "negative" if pred == "positive" else "positive"
        if feedback:
            row["feedback_at"] = predicted_at + timedelta(seconds=1)
        rows.append(row)
    return rows


def insert_logs(engine: Engine, rows: list[dict[str, Any]], batch: int = 10_000) -> None:
    with session_scope(engine) as session:
        for begin in range(0, len(rows), batch):
            session.execute(insert(PredictionLog), rows[begin : begin + batch])
