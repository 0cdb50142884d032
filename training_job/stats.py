"""Dataset statistics: rows per split, label balance, text lengths, rows dropped by cleaning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from training_job.cleaning import LABEL_NAMES, CleaningReport


@dataclass(frozen=True)
class DatasetStat:
    split: str
    metric_name: str
    value: float
    column_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def mlflow_key(self) -> str:
        column = f"{self.column_name}." if self.column_name else ""
        return f"data.{self.split}.{column}{self.metric_name}"


def split_stats(split: str, frame: pd.DataFrame) -> list[DatasetStat]:
    counts = {LABEL_NAMES[k]: int(v) for k, v in frame["label"].value_counts().sort_index().items()}
    chars = frame["text"].str.len()
    words = frame["text"].str.split().str.len()
    length_details = {
        "p05": float(words.quantile(0.05)),
        "p50": float(words.quantile(0.50)),
        "p95": float(words.quantile(0.95)),
        "max": float(words.max()),
    }
    return [
        DatasetStat(split, "rows", float(len(frame))),
        DatasetStat(split, "positive_fraction", float(frame["label"].mean()), "label", {"counts": counts}),
        DatasetStat(split, "mean_chars", float(chars.mean()), "text"),
        DatasetStat(split, "mean_words", float(words.mean()), "text", length_details),
        DatasetStat(split, "p95_words", length_details["p95"], "text"),
    ]


def cleaning_stats(report: CleaningReport) -> list[DatasetStat]:
    return [
        DatasetStat("all", "rows_raw", float(report.rows_in)),
        DatasetStat("all", "rows_clean", float(report.rows_out)),
        DatasetStat("all", "duplicates_dropped", float(report.duplicates_dropped)),
        DatasetStat("all", "conflicting_labels_dropped", float(report.conflicts_dropped)),
        DatasetStat("all", "empty_dropped", float(report.empty_dropped)),
        DatasetStat("all", "unlabelled_dropped", float(report.unlabelled_dropped)),
    ]
