"""Deterministic, stratified splits with a test split that does not move."""

from __future__ import annotations

import pandas as pd
import pytest

from mlcore.errors import DataValidationError
from training_job.splitting import frame_hash, sample, split_dataset, stable_subset, stable_unit

pytestmark = pytest.mark.unit


def make_frame(n: int, positive_share: float = 0.5) -> pd.DataFrame:
    positives = int(n * positive_share)
    return pd.DataFrame(
        {"text": [f"review number {i}" for i in range(n)], "label": [1] * positives + [0] * (n - positives)}
    )


def test_split_is_deterministic_and_disjoint() -> None:
    frame = make_frame(2000)
    first = split_dataset(frame, seed=7)
    second = split_dataset(frame, seed=7)
    for (_, a), (_, b) in zip(first.items(), second.items(), strict=True):
        pd.testing.assert_frame_equal(a, b)
    sets = [set(part["text"]) for _, part in first.items()]
    assert not sets[0] & sets[1] and not sets[0] & sets[2] and not sets[1] & sets[2]
    assert sum(len(s) for s in sets) == len(frame)


def test_split_sizes_follow_the_fractions() -> None:
    splits = split_dataset(make_frame(5000), test_fraction=0.2, validation_fraction=0.1, seed=1)
    assert abs(len(splits.test) - 1000) < 100  # hash-based: close to, not exactly, 20 %
    assert len(splits.validation) == 500


def test_split_is_stratified() -> None:
    splits = split_dataset(make_frame(4000, positive_share=0.3), seed=3)
    for _, part in splits.items():
        assert abs(part["label"].mean() - 0.3) < 0.05


def test_test_split_ignores_the_seed_and_the_rest_of_the_data() -> None:
    frame = make_frame(3000)
    test_a = set(split_dataset(frame, seed=1).test["text"])
    test_b = set(split_dataset(frame, seed=99).test["text"])
    assert test_a == test_b
    # A smaller data set: every one of its rows lands where it did in the big one.
    small = frame.sample(900, random_state=5)
    test_small = set(split_dataset(small, seed=4).test["text"])
    assert test_small == test_a & set(small["text"])
    # Validation does depend on the seed.
    assert set(split_dataset(frame, seed=1).validation["text"]) != set(split_dataset(frame, seed=2).validation["text"])


def test_stable_subset_is_balanced_and_stable() -> None:
    test = split_dataset(make_frame(6000), seed=0).test
    subset = stable_subset(test, 200)
    assert len(subset) == 200
    # Classes in the proportion of the whole test split (which is hash-chosen, so only about 50/50).
    assert abs(subset["label"].sum() - round(200 * test["label"].mean())) <= 1
    assert subset.equals(stable_subset(test.sample(frac=1.0, random_state=11), 200))
    assert stable_subset(test, None) is test


def test_sample_is_seeded_and_stratified() -> None:
    frame = make_frame(1000, positive_share=0.4)
    a = sample(frame, 100, seed=5)
    assert a.equals(sample(frame, 100, seed=5))
    assert not a.equals(sample(frame, 100, seed=6))
    assert len(a) == 100 and a["label"].sum() == 40
    assert sample(frame, None, seed=5) is frame


def test_too_small_data_is_refused() -> None:
    with pytest.raises(DataValidationError, match="too few"):
        split_dataset(make_frame(3), seed=0)


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(DataValidationError, match="fractions"):
        split_dataset(make_frame(100), test_fraction=0.6, validation_fraction=0.5)


def test_hashes_are_order_independent() -> None:
    frame = make_frame(50)
    assert frame_hash(frame) == frame_hash(frame.iloc[::-1])
    assert frame_hash(frame) != frame_hash(frame.iloc[1:])
    assert 0.0 <= stable_unit("x") < 1.0
    assert stable_unit("x") == stable_unit("x")
