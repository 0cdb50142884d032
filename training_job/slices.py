"""Evaluation slices beyond whole IMDB reviews: what users will send (short texts, other domains).

All review-derived slices come from the held-out test split (never trained on), labelled by their review, and are
picked by stable hashes (the same rows in every run):
- `reviews`: the in-domain test rows themselves (the run's test subset; evaluated by the main test step);
- `short_snippets`: the first or last sentence of a held-out review, 3-19 words, opinionated (see chunking.py);
- `short_snippets_any`: the same sentences without the opinion filter (many are neutral: a floor, not a goal);
- `mid_length`: runs of consecutive sentences of 20-80 words from a held-out review, opinionated;
- `handwritten` (and any `--eval-set NAME=PATH`): short texts with their labels from a CSV/JSONL file; the
  repository's own set is tests/data/short_texts.csv (products, restaurants, apps, posts: written for this).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcore.errors import DataValidationError
from training_job.chunking import edge_sentences, is_opinionated, review_chunks
from training_job.cleaning import prepare
from training_job.data import load_raw
from training_job.splitting import stable_subset

SNIPPET_WORDS = (3, 19)
MID_WORDS = (20, 80)
DEFAULT_SIZES = {"short_snippets": 1000, "short_snippets_any": 1000, "mid_length": 500}
HANDWRITTEN_SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "short_texts.csv"


@dataclass(frozen=True)
class EvalSlice:
    name: str
    description: str
    frame: pd.DataFrame  # text, label (0/1)


def _dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per text; a text that came from reviews of both labels says nothing and is dropped."""
    labels = frame.groupby("text")["label"].nunique()
    frame = frame[~frame["text"].isin(set(labels[labels > 1].index))]
    return frame.drop_duplicates("text").reset_index(drop=True)


def _from_reviews(test: pd.DataFrame, pieces: list[list[str]]) -> pd.DataFrame:
    rows = [(piece, int(label)) for parts, label in zip(pieces, test["label"], strict=True) for piece in parts]
    return _dedupe(pd.DataFrame(rows, columns=["text", "label"]))


def snippet_frame(test: pd.DataFrame, *, opinionated: bool) -> pd.DataFrame:
    low, high = SNIPPET_WORDS
    pieces = [
        [s for s in edge_sentences(text, low, high) if not opinionated or is_opinionated(s)] for text in test["text"]
    ]
    return _from_reviews(test, pieces)


def mid_frame(test: pd.DataFrame) -> pd.DataFrame:
    low, high = MID_WORDS
    # The last fitting run of each review: where reviews tend to sum up.
    pieces = [chunks[-1:] for chunks in (review_chunks(text, low, high) for text in test["text"])]
    return _from_reviews(test, pieces)


def load_eval_set(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataValidationError(f"evaluation set {path} does not exist")
    frame, _report = prepare(load_raw(str(path)))
    return frame[["text", "label"]]


def parse_eval_sets(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    """`NAME=PATH` (or a bare PATH, named after its file) -> ((name, path), ...); default: the hand-written set."""
    if values is None:
        return (("handwritten", str(HANDWRITTEN_SET)),) if HANDWRITTEN_SET.is_file() else ()
    parsed = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).stem, value
        if not name.isidentifier():
            raise DataValidationError(f"evaluation set name {name!r} must be a plain identifier (NAME=PATH)")
        parsed.append((name, path))
    return tuple(parsed)


def build_slices(
    test_split: pd.DataFrame, eval_sets: tuple[tuple[str, str], ...], sizes: dict[str, int] | None = None
) -> list[EvalSlice]:
    """The review-derived slices (from the whole held-out test split) and the named evaluation sets."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    derived = [
        (
            "short_snippets",
            "first/last sentence of a held-out review, 3-19 words, opinionated",
            snippet_frame(test_split, opinionated=True),
        ),
        (
            "short_snippets_any",
            "first/last sentence of a held-out review, 3-19 words, unfiltered",
            snippet_frame(test_split, opinionated=False),
        ),
        ("mid_length", "last run of sentences of a held-out review, 20-80 words, opinionated", mid_frame(test_split)),
    ]
    slices = []
    for name, description, frame in derived:
        if frame["label"].nunique() == 2:
            slices.append(EvalSlice(name, description, stable_subset(frame, sizes[name])))
    for name, path in eval_sets:
        slices.append(EvalSlice(name, f"evaluation set {Path(path).name}", load_eval_set(Path(path))))
    return slices
