"""The Evidently comparison: per-column method, score, threshold and flag, and the drifted share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drift_cronjob.analysis import compare, compare_embeddings
from drift_cronjob.features import (
    BASE_COLUMNS,
    HAS_LINK,
    NON_LETTERS,
    SENTENCES,
    columns_for,
    feature_frame,
    normalize_labels,
    text_lengths,
)
from drift_cronjob.settings import DriftSettings
from mlcore.errors import DataValidationError
from tests.integration.drift_cronjob.drift_synthetic import sample

pytestmark = pytest.mark.unit


def frame(n: int, *, shifted: bool = False, seed: int = 0, descriptors: bool = False) -> pd.DataFrame:
    data = sample(np.random.default_rng(seed), n, shifted=shifted)
    return feature_frame(
        data["text"].tolist(), data["predicted_label"].tolist(), data["confidence"].tolist(), descriptors=descriptors
    )


def test_text_lengths_count_characters_and_words() -> None:
    chars, words = text_lengths(["a bc", "  spaced   out  ", ""])
    assert chars.tolist() == [4, 16, 0]
    assert words.tolist() == [2, 2, 0]


def test_labels_are_normalized_from_ids_and_names() -> None:
    assert normalize_labels([0, 1, "1", "POSITIVE", None], ["negative", "positive"]) == [
        "negative",
        "positive",
        "positive",
        "positive",
        "unknown",
    ]
    assert normalize_labels([7], ["negative", "positive"]) == ["7"]


def test_same_distribution_has_no_drift() -> None:
    numerical, categorical = columns_for(False)
    result = compare(frame(2000, seed=1), frame(2000, seed=2), numerical, categorical, DriftSettings())
    assert [c.column for c in result.columns] == numerical + categorical
    assert not any(c.drifted for c in result.columns)
    assert result.drift_share == 0.0
    assert not result.dataset_drift
    assert not result.alert
    assert "<html" in result.html.lower()


def test_shifted_distribution_flags_every_shifted_column() -> None:
    numerical, categorical = columns_for(False)
    result = compare(frame(2000, shifted=True, seed=1), frame(2000, seed=2), numerical, categorical, DriftSettings())
    assert set(result.drifted_columns) == set(BASE_COLUMNS)
    assert result.drift_share == 1.0
    assert result.drifted_count == 4
    assert result.dataset_drift
    for column in result.columns:
        assert column.method and column.threshold > 0


def test_only_the_shifted_column_is_flagged_and_share_follows() -> None:
    current, reference = frame(2000, seed=1), frame(2000, seed=2)
    current["confidence"] = np.random.default_rng(3).uniform(0.5, 0.6, len(current))
    numerical, categorical = columns_for(False)
    result = compare(current, reference, numerical, categorical, DriftSettings())
    assert result.drifted_columns == ["confidence"]
    assert result.drift_share == pytest.approx(0.25)
    assert not result.dataset_drift  # below the default share of 0.5: a column drift, not a dataset drift


@pytest.mark.parametrize(("rows", "kind"), [(200, "p_value"), (3000, "distance")])
def test_flag_comes_from_the_test_whatever_the_score_direction(rows: int, kind: str) -> None:
    """Small samples get p-value tests (low score = drift), large ones distances (high score = drift)."""
    numerical, categorical = columns_for(False)
    drifted = compare(frame(rows, shifted=True, seed=1), frame(rows, seed=2), numerical, categorical, DriftSettings())
    stable = compare(frame(rows, seed=3), frame(rows, seed=2), numerical, categorical, DriftSettings())
    chars_drifted = next(c for c in drifted.columns if c.column == "text_length_chars")
    chars_stable = next(c for c in stable.columns if c.column == "text_length_chars")
    assert chars_drifted.drifted and not chars_stable.drifted
    if kind == "p_value":
        assert "p_value" in chars_drifted.method
        assert chars_drifted.score < chars_drifted.threshold < chars_stable.score
    else:
        assert "Wasserstein" in chars_drifted.method
        assert chars_drifted.score > chars_drifted.threshold > chars_stable.score


def test_configured_method_and_threshold_are_used() -> None:
    settings = DriftSettings(num_method="psi", num_threshold=0.2, cat_method="chisquare", cat_threshold=0.01)
    numerical, categorical = columns_for(False)
    result = compare(frame(1000, seed=1), frame(1000, seed=2), numerical, categorical, settings)
    by_name = {c.column: c for c in result.columns}
    assert by_name["confidence"].method == "psi" and by_name["confidence"].threshold == 0.2
    assert by_name["predicted_label"].method == "chisquare"
    assert by_name["predicted_label"].threshold == 0.01


def test_single_class_predictions_still_compare() -> None:
    current, reference = frame(500, seed=1), frame(500, seed=2)
    current["predicted_label"] = "negative"
    numerical, categorical = columns_for(False)
    result = compare(current, reference, numerical, categorical, DriftSettings())
    assert "predicted_label" in result.drifted_columns


def test_text_descriptors_are_compared_when_asked() -> None:
    current, reference = frame(800, seed=1, descriptors=True), frame(800, seed=2, descriptors=True)
    current[HAS_LINK] = "yes"
    numerical, categorical = columns_for(True)
    assert {SENTENCES, NON_LETTERS} <= set(numerical) and HAS_LINK in categorical
    result = compare(current, reference, numerical, categorical, DriftSettings())
    assert result.drifted_columns == [HAS_LINK]
    assert len(result.columns) == 7


def test_missing_or_empty_input_is_refused() -> None:
    numerical, categorical = columns_for(False)
    with pytest.raises(DataValidationError, match="lacks the columns"):
        compare(frame(100).drop(columns=["confidence"]), frame(100), numerical, categorical, DriftSettings())
    with pytest.raises(DataValidationError, match="empty"):
        compare(frame(100).iloc[:0], frame(100), numerical, categorical, DriftSettings())


def test_embedding_drift_flag_from_domain_classifier() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, (300, 8))
    same, _ = compare_embeddings(rng.normal(0, 1, (300, 8)), reference, DriftSettings())
    moved, html = compare_embeddings(rng.normal(1.5, 1, (300, 8)), reference, DriftSettings())
    assert not same.drifted and moved.drifted
    assert moved.score > moved.threshold == 0.55
    assert moved.kind == "embedding" and "<html" in html.lower()
    with pytest.raises(DataValidationError, match="shapes"):
        compare_embeddings(rng.normal(0, 1, (10, 4)), reference, DriftSettings())
