"""Text cleaning, label validation and de-duplication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlcore.errors import DataValidationError
from mlcore.text import normalize_text

LABEL_NAMES = ("negative", "positive")
# Raw label values (lower-cased strings) that name a class; anything else is refused rather than guessed.
_KNOWN_LABELS = {
    "negative": 0,
    "neg": 0,
    "0": 0,
    "false": 0,
    "positive": 1,
    "pos": 1,
    "1": 1,
    "true": 1,
}


def clean_text(value: Any) -> str:
    """mlcore.text.normalize_text (what the predictor applies too); missing values become ''."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return normalize_text(str(value))


def _label_key(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().lower()


def normalize_labels(labels: pd.Series) -> pd.Series:
    """Map raw labels to 0 (negative) / 1 (positive); anything but exactly two known classes is an error."""
    present = labels.dropna()
    found = sorted({_label_key(v) for v in present})
    if len(found) != 2:
        raise DataValidationError(f"labels must be exactly two classes, found {len(found)}: {found[:20]}")
    unknown = [v for v in found if v not in _KNOWN_LABELS]
    if unknown or {_KNOWN_LABELS[v] for v in found} != {0, 1}:
        raise DataValidationError(
            f"labels {found} are not a negative/positive pair: use negative/positive, neg/pos, 0/1 or false/true"
        )
    return labels.map(lambda v: _KNOWN_LABELS.get(_label_key(v)) if pd.notna(v) else None)


@dataclass(frozen=True)
class CleaningReport:
    rows_in: int
    empty_dropped: int
    unlabelled_dropped: int
    duplicates_dropped: int
    conflicts_dropped: int
    rows_out: int


def prepare(raw: pd.DataFrame) -> tuple[pd.DataFrame, CleaningReport]:
    """Clean texts, validate labels, drop empties and duplicates; texts seen with both labels are dropped."""
    if raw.empty:
        raise DataValidationError("the data set is empty")
    frame = pd.DataFrame({"text": raw["text"].map(clean_text), "label": normalize_labels(raw["label"])})
    rows_in = len(frame)
    unlabelled = frame["label"].isna()
    empty = frame["text"].str.len() == 0
    frame = frame[~unlabelled & ~empty]
    # The same text with both labels is noise no split can use: drop every copy.
    label_counts = frame.groupby("text")["label"].nunique()
    conflicting = set(label_counts[label_counts > 1].index)
    conflict_rows = int(frame["text"].isin(conflicting).sum())
    frame = frame[~frame["text"].isin(conflicting)]
    before = len(frame)
    frame = frame.drop_duplicates(subset="text", keep="first")
    report = CleaningReport(
        rows_in=rows_in,
        empty_dropped=int((empty & ~unlabelled).sum()),
        unlabelled_dropped=int(unlabelled.sum()),
        duplicates_dropped=before - len(frame),
        conflicts_dropped=conflict_rows,
        rows_out=len(frame),
    )
    if frame.empty:
        raise DataValidationError(f"no usable rows left after cleaning ({rows_in} rows in, all empty or unlabelled)")
    if frame["label"].nunique() != 2:
        raise DataValidationError(
            f"after cleaning only label {LABEL_NAMES[int(frame['label'].iloc[0])]!r} is left: need both classes"
        )
    frame = frame.astype({"label": "int64"}).reset_index(drop=True)
    return frame, report
