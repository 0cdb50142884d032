"""The columns compared between reference and current data, computed the same way on both sides."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

TEXT_CHARS = "text_length_chars"
TEXT_WORDS = "text_length_words"
PREDICTED_LABEL = "predicted_label"
CONFIDENCE = "confidence"

NUMERICAL = [TEXT_CHARS, TEXT_WORDS, CONFIDENCE]
CATEGORICAL = [PREDICTED_LABEL]
BASE_COLUMNS = [TEXT_CHARS, TEXT_WORDS, PREDICTED_LABEL, CONFIDENCE]

# Text descriptors (behind --text-descriptors): Evidently's, restricted to those that need no downloaded corpora.
SENTENCES = "sentence_count"
NON_LETTERS = "non_letter_share"
HAS_LINK = "has_link"
DESCRIPTOR_NUMERICAL = [SENTENCES, NON_LETTERS]
DESCRIPTOR_CATEGORICAL = [HAS_LINK]

EMBEDDING = "text_embedding"


def text_lengths(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Characters and whitespace-separated words of each text."""
    chars = np.fromiter((len(t) for t in texts), dtype=np.float64, count=len(texts))
    words = np.fromiter((len(t.split()) for t in texts), dtype=np.float64, count=len(texts))
    return chars, words


def normalize_labels(values: Iterable[Any], labels: Sequence[str] | None = None) -> list[str]:
    """Labels as strings: class ids (0, 1, '1') become names via the model card's label list."""
    names = list(labels or [])
    out = []
    for value in values:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append("unknown")
            continue
        text = str(value)
        if names and text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
            out.append(names[int(text)])
        else:
            out.append(text.lower())
    return out


def feature_frame(
    texts: Sequence[str],
    predicted: Sequence[str],
    confidence: Sequence[float | None],
    *,
    descriptors: bool = False,
) -> pd.DataFrame:
    """The compared columns for one batch of rows (descriptors only when asked: they cost more)."""
    chars, words = text_lengths(texts)
    frame = pd.DataFrame(
        {
            TEXT_CHARS: chars,
            TEXT_WORDS: words,
            PREDICTED_LABEL: pd.Series(list(predicted), dtype="object"),
            CONFIDENCE: np.asarray(confidence, dtype=np.float64),
        }
    )
    if descriptors:
        frame = pd.concat([frame, text_descriptors(texts)], axis=1)
    return frame


def text_descriptors(texts: Sequence[str]) -> pd.DataFrame:
    """Evidently text descriptors for a batch of texts (no model, no corpus downloads)."""
    from evidently import DataDefinition, Dataset
    from evidently.descriptors import ContainsLink, NonLetterCharacterPercentage, SentenceCount

    source = pd.DataFrame({"text": list(texts)})
    dataset = Dataset.from_pandas(
        source,
        data_definition=DataDefinition(text_columns=["text"]),
        descriptors=[
            SentenceCount("text", alias=SENTENCES),
            NonLetterCharacterPercentage("text", alias=NON_LETTERS),
            ContainsLink("text", alias=HAS_LINK),
        ],
    )
    computed = dataset.as_dataframe()
    return pd.DataFrame(
        {
            SENTENCES: computed[SENTENCES].astype(np.float64).to_numpy(),
            NON_LETTERS: computed[NON_LETTERS].astype(np.float64).to_numpy(),
            HAS_LINK: computed[HAS_LINK].map(lambda v: "yes" if bool(v) else "no").to_numpy(dtype=object),
        }
    )


def columns_for(descriptors: bool) -> tuple[list[str], list[str]]:
    """(numerical, categorical) column names compared in a run."""
    numerical = NUMERICAL + (DESCRIPTOR_NUMERICAL if descriptors else [])
    categorical = CATEGORICAL + (DESCRIPTOR_CATEGORICAL if descriptors else [])
    return numerical, categorical
