"""Deterministic, stratified train/validation/test splits with a test split that never moves.

The test split is chosen by a salted hash of each cleaned text, independent of the seed, the sample size and the
other rows: the same review is in the test split in every run, so models trained at different times, with
different seeds or subsets, are compared on the same examples. Validation is a seeded stratified draw from the
rest. Subsets of the test split (quick mode) are the rows with the lowest hashes in each class: stable as well.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlcore.errors import DataValidationError

TEST_SALT = "ml-pipeline/test-split/v1"


def stable_unit(text: str, salt: str = TEST_SALT) -> float:
    """A number in [0, 1) fixed by the text alone."""
    digest = hashlib.sha256(f"{salt}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def frame_hash(frame: pd.DataFrame) -> str:
    """sha256 over the (label, text) rows in a canonical order: the identity of a data set or split."""
    rows = sorted(f"{label}\t{text}" for text, label in zip(frame["text"], frame["label"], strict=True))
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row.encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        return [("train", self.train), ("validation", self.validation), ("test", self.test)]


def _stratified_draw(frame: pd.DataFrame, n: int, seed: int) -> pd.Index:
    """Index of n rows drawn per class in proportion to the class sizes (seeded)."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    total = len(frame)
    groups = sorted(frame.groupby("label").groups.items())
    remaining = n
    for position, (_label, index) in enumerate(groups):
        take = remaining if position == len(groups) - 1 else round(n * len(index) / total)
        take = min(take, len(index))
        chosen.extend(rng.choice(np.asarray(index), size=take, replace=False).tolist())
        remaining -= take
    return pd.Index(sorted(chosen))


def split_dataset(
    frame: pd.DataFrame, *, test_fraction: float = 0.2, validation_fraction: float = 0.1, seed: int = 42
) -> Splits:
    """Split a cleaned, de-duplicated frame (columns text, label)."""
    if not 0 < test_fraction < 1 or not 0 < validation_fraction < 1 or test_fraction + validation_fraction >= 1:
        raise DataValidationError(
            f"split fractions must be in (0, 1) and sum below 1 (test {test_fraction}, "
            f"validation {validation_fraction})"
        )
    units = frame["text"].map(stable_unit)
    test = frame[units < test_fraction]
    rest = frame[units >= test_fraction]
    n_validation = round(len(frame) * validation_fraction)
    if len(test) == 0 or n_validation == 0 or len(rest) - n_validation <= 0:
        raise DataValidationError(f"{len(frame)} rows are too few to split into train, validation and test")
    validation_index = _stratified_draw(rest, n_validation, seed)
    validation = rest.loc[validation_index]
    train = rest.drop(index=validation_index)
    for name, part in (("train", train), ("test", test)):
        if part["label"].nunique() < 2:
            raise DataValidationError(f"the {name} split has a single class: the data set is too small or skewed")
    return Splits(train.reset_index(drop=True), validation.reset_index(drop=True), test.reset_index(drop=True))


def sample(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """A seeded stratified sample of at most n rows (the frame itself when n is None or large enough)."""
    if n is None or n >= len(frame):
        return frame
    if n < 2:
        raise DataValidationError(f"a sample needs at least 2 rows (one per class), got {n}")
    return frame.loc[_stratified_draw(frame, n, seed)].reset_index(drop=True)


def stable_subset(frame: pd.DataFrame, n: int | None) -> pd.DataFrame:
    """At most n rows, per class in proportion, taking the lowest hashes: the same rows for every seed."""
    if n is None or n >= len(frame):
        return frame
    keyed = frame.assign(_unit=frame["text"].map(lambda t: stable_unit(t, TEST_SALT + "/subset")))
    parts = []
    groups = sorted(keyed.groupby("label"))
    remaining = n
    for position, (_label, group) in enumerate(groups):
        take = remaining if position == len(groups) - 1 else round(n * len(group) / len(keyed))
        parts.append(group.nsmallest(min(take, len(group)), "_unit"))
        remaining -= len(parts[-1])
    chosen = pd.concat(parts).sort_values("_unit").drop(columns="_unit")
    return chosen.reset_index(drop=True)
