"""Evidently (0.7 API) drift report over the compared columns, read back as plain per-column results.

Each column gets a ValueDrift metric whose test says whether it drifted: the score alone cannot, since for p-value
methods (K-S, chi-square, Z) a LOW score means drift and for distances (Wasserstein, Jensen-Shannon) a HIGH one does.
DriftedColumnsCount gives the share of drifted columns and its own test (share >= drift_share = dataset drift).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.metric_types import MetricResult, TestStatus
from evidently.metrics import DriftedColumnsCount, EmbeddingsDrift, ValueDrift
from evidently.metrics.embeddings import ModelDriftMethod
from evidently.tests import lte

from drift_cronjob.features import EMBEDDING
from drift_cronjob.settings import DriftSettings
from mlcore.errors import DataValidationError


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # numerical | categorical | embedding
    method: str
    score: float
    threshold: float
    drifted: bool

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["drift_detected"] = data.pop("drifted")
        return data


@dataclass
class DriftResult:
    columns: list[ColumnDrift]
    drifted_count: int
    drift_share: float
    dataset_drift: bool
    html: str
    embedding: ColumnDrift | None = None
    embedding_html: str | None = None
    reference_rows: int = 0
    current_rows: int = 0

    @property
    def drifted_columns(self) -> list[str]:
        names = [c.column for c in self.columns if c.drifted]
        if self.embedding is not None and self.embedding.drifted:
            names.append(self.embedding.column)
        return names

    @property
    def alert(self) -> bool:
        return self.dataset_drift or bool(self.embedding and self.embedding.drifted)


def _finite(value: Any) -> float:
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _drift_flag(result: MetricResult, what: str) -> bool:
    statuses = [t.status for t in result.tests]
    if not statuses:
        raise DataValidationError(f"Evidently returned no drift test for {what}")
    return any(s == TestStatus.FAIL for s in statuses)


def compare(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    settings: DriftSettings,
    *,
    title: str = "drift",
) -> DriftResult:
    """Run the drift report of `current` against `reference` on the given columns."""
    columns = numerical + categorical
    for side, frame in (("current", current), ("reference", reference)):
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise DataValidationError(f"{side} data lacks the columns {absent}")
        if frame.empty:
            raise DataValidationError(f"{side} data is empty")
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    per_column: dict[str, tuple[str | None, float | None]] = {
        **{c: (settings.num_method, settings.num_threshold) for c in numerical},
        **{c: (settings.cat_method, settings.cat_threshold) for c in categorical},
    }
    metrics: list[Any] = [
        DriftedColumnsCount(
            columns=columns,
            drift_share=settings.drift_share,
            num_method=settings.num_method,
            cat_method=settings.cat_method,
            num_threshold=settings.num_threshold,
            cat_threshold=settings.cat_threshold,
        )
    ]
    metrics += [ValueDrift(column=c, method=per_column[c][0], threshold=per_column[c][1]) for c in columns]
    report = Report(metrics, include_tests=True, metadata={"title": title})
    # Constant columns (e.g. one sentence per text) make Evidently's summary statistics divide by zero: harmless.
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = report.run(
            Dataset.from_pandas(current[columns], data_definition=definition),
            Dataset.from_pandas(reference[columns], data_definition=definition),
        )

    results: list[ColumnDrift] = []
    drifted_count = 0
    share = 0.0
    dataset_drift = False
    for result in snapshot.metric_results.values():
        if not result.tests:
            continue
        params = result.tests[0].metric_config.params
        if "column" in params:
            column = str(params["column"])
            results.append(
                ColumnDrift(
                    column=column,
                    kind="numerical" if column in numerical else "categorical",
                    method=str(params.get("method")),
                    score=_finite(getattr(result, "value", np.nan)),
                    threshold=_finite(params.get("threshold")),
                    drifted=_drift_flag(result, column),
                )
            )
        elif "drift_share" in params:
            drifted_count = int(result.count.value)
            share = _finite(result.share.value)
            dataset_drift = _drift_flag(result, "the share of drifted columns")
    results.sort(key=lambda c: columns.index(c.column))
    if len(results) != len(columns):
        raise DataValidationError(f"Evidently returned drift for {len(results)} of {len(columns)} columns")
    return DriftResult(
        columns=results,
        drifted_count=drifted_count,
        drift_share=share,
        dataset_drift=dataset_drift,
        html=snapshot.get_html_str(as_iframe=False),
        reference_rows=len(reference),
        current_rows=len(current),
    )


def compare_embeddings(current: np.ndarray, reference: np.ndarray, settings: DriftSettings) -> tuple[ColumnDrift, str]:
    """Embedding drift by a domain classifier (ROC AUC above the threshold = drift), with its own HTML report."""
    if current.ndim != 2 or reference.ndim != 2 or current.shape[1] != reference.shape[1]:
        raise DataValidationError(f"embedding shapes differ: current {current.shape}, reference {reference.shape}")
    names = [f"emb_{i}" for i in range(current.shape[1])]
    definition = DataDefinition(embeddings={EMBEDDING: names})
    threshold = settings.embeddings_threshold
    metric = EmbeddingsDrift(
        embeddings_name=EMBEDDING, drift_method=ModelDriftMethod(threshold=threshold), tests=[lte(threshold)]
    )
    snapshot = Report([metric], include_tests=True).run(
        Dataset.from_pandas(pd.DataFrame(current, columns=names), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame(reference, columns=names), data_definition=definition),
    )
    result = next(iter(snapshot.metric_results.values()))
    drift = ColumnDrift(
        column=EMBEDDING,
        kind="embedding",
        method="model (domain classifier ROC AUC)",
        score=_finite(result.value),
        threshold=threshold,
        drifted=_drift_flag(result, EMBEDDING),
    )
    return drift, snapshot.get_html_str(as_iframe=False)
