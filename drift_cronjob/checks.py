"""Verdicts of one run: drift, quality against feedback labels, request volume. Pure functions, no I/O."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from drift_cronjob.analysis import DriftResult
from drift_cronjob.settings import DriftSettings


@dataclass
class Condition:
    """The state of one alert type after a run: active, clear, or unknown (not evaluated: leave alerts as they are)."""

    alert_type: str  # drift | performance | volume
    active: bool | None
    severity: str = "warning"
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why the verdict is unknown


def drift_condition(result: DriftResult, settings: DriftSettings, where: str) -> Condition:
    details: dict[str, Any] = {
        "drift_share": result.drift_share,
        "drifted_columns": result.drifted_columns,
        "threshold_share": settings.drift_share,
        "columns": [c.as_dict() for c in result.columns],
        "current_rows": result.current_rows,
        "reference_rows": result.reference_rows,
    }
    if result.embedding is not None:
        details["embedding"] = result.embedding.as_dict()
    if not result.alert:
        return Condition("drift", False, details=details)
    critical = result.drift_share >= settings.drift_share_critical
    total = len(result.columns) + (1 if result.embedding is not None else 0)
    message = (
        f"Data drift on {where}: {len(result.drifted_columns)} of {total} columns drifted "
        f"({', '.join(result.drifted_columns)}; share {result.drift_share:.2f}, threshold {settings.drift_share:.2f})"
    )
    return Condition("drift", True, "critical" if critical else "warning", message, details)


@dataclass(frozen=True)
class Quality:
    rows: int
    accuracy: float
    f1: float
    f1_average: str


def quality_of(pairs: pd.DataFrame, positive_label: str) -> Quality:
    """Accuracy and F1 of the predictions against the feedback labels (binary F1 when the labels are binary)."""
    y_true, y_pred = pairs["actual"].tolist(), pairs["predicted"].tolist()
    labels = set(y_true) | set(y_pred)
    accuracy = float(accuracy_score(y_true, y_pred))
    if len(labels) <= 2 and positive_label in labels:
        f1 = float(f1_score(y_true, y_pred, pos_label=positive_label, average="binary", zero_division=0))
        average = "binary"
    else:
        f1 = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
        average = "macro"
    return Quality(len(pairs), accuracy, f1, average)


def quality_condition(
    pairs: pd.DataFrame, baseline: dict[str, Any] | None, settings: DriftSettings, where: str
) -> tuple[Condition, Quality | None]:
    if len(pairs) < settings.min_feedback_rows:
        reason = f"{len(pairs)} feedback labels in the window, fewer than {settings.min_feedback_rows}"
        return Condition("performance", None, reason=reason), None
    quality = quality_of(pairs, settings.positive_label)
    if not baseline or not any(isinstance(baseline.get(k), int | float) for k in ("accuracy", "f1")):
        return Condition("performance", None, reason="the model card has no test accuracy or f1"), quality
    drops: dict[str, float] = {}
    checked: dict[str, Any] = {"feedback_rows": quality.rows, "f1_average": quality.f1_average}
    for name, value, limit in (
        ("accuracy", quality.accuracy, settings.max_accuracy_drop),
        ("f1", quality.f1, settings.max_f1_drop),
    ):
        expected = baseline.get(name)
        if not isinstance(expected, int | float):
            continue
        drop = float(expected) - value
        checked[name] = {"observed": value, "model_card": float(expected), "drop": drop, "max_drop": limit}
        if drop > limit:
            drops[name] = drop
    if not drops:
        return Condition("performance", False, details=checked), quality
    worst = max(drops[k] / checked[k]["max_drop"] for k in drops)
    message = f"Performance drop on {where} over {quality.rows} feedback labels: " + ", ".join(
        f"{k} {checked[k]['observed']:.3f} vs {checked[k]['model_card']:.3f} on the test set (-{drops[k]:.3f})"
        for k in drops
    )
    return Condition("performance", True, "critical" if worst >= 2 else "warning", message, checked), quality


def volume_condition(current: int, previous: list[int], settings: DriftSettings, where: str) -> Condition:
    """Current request count against the median of the previous windows of the same length."""
    history = [c for c in previous if c > 0]
    details: dict[str, Any] = {"current": current, "previous": previous}
    if len(history) < settings.volume_min_baseline_windows:
        reason = f"{len(history)} earlier windows with traffic, fewer than {settings.volume_min_baseline_windows}"
        return Condition("volume", None, details=details, reason=reason)
    baseline = float(statistics.median(history))
    ratio = current / baseline
    details.update(baseline_median=baseline, ratio=ratio)
    if ratio < settings.volume_drop_ratio:
        details["direction"] = "drop"
        severity = "critical" if current == 0 else "warning"
        message = f"Request volume drop on {where}: {current} requests vs a median of {baseline:.0f} ({ratio:.0%})"
        return Condition("volume", True, severity, message, details)
    if ratio > settings.volume_surge_ratio:
        details["direction"] = "surge"
        message = f"Request volume surge on {where}: {current} requests vs a median of {baseline:.0f} ({ratio:.1f}x)"
        return Condition("volume", True, "warning", message, details)
    return Condition("volume", False, details=details)
