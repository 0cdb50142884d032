"""Sentences and short chunks of reviews, labelled by their review, for training and for evaluation slices.

A review's sentiment is carried by some of its sentences, not all: "I saw it on a Tuesday." says nothing. A chunk
counts as opinionated when it holds at least one word of a small hand-written opinion lexicon (below); neutral
chunks are dropped, because labelled by their review they would only teach noise. The lexicon only filters: it
never decides a label.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

# Words that nearly always carry an opinion in reviews, comments and posts (either way round). Hand-written.
OPINION_WORDS = frozenset(
    """
    amazing awesome beautiful beautifully best brilliant brilliantly captivating charming clever compelling
    delightful enjoy enjoyable enjoyed excellent exceptional fantastic fun funny glad good gorgeous great greatest
    happy impressive incredible inspiring love loved lovely loves marvelous masterpiece memorable moving nice
    outstanding perfect perfectly pleasant powerful recommend recommended refreshing remarkable riveting solid
    splendid stunning superb sweet terrific touching wonderful wonderfully worth favorite favourite fine
    entertaining engaging hilarious fascinating gem underrated beloved superior thrilling satisfying pleased
    awful bad badly boring bored disappointing disappointed disappointment dreadful dull garbage horrible
    horrendous lame laughable mediocre mess pathetic pointless poor poorly rubbish stupid terrible trash ugly
    unwatchable waste wasted weak worse worst annoying awkward bland cheesy cliched confusing crap dumb fail
    failed fails forgettable hate hated ridiculous silly tedious tiresome unbearable unfunny useless painful
    lousy sloppy incoherent overrated predictable shallow worthless insulting embarrassing nonsense
    """.split()  # noqa: SIM905 - a block of words reads better than a 140-item list
)
_WORD = re.compile(r"[a-z']+")
# A sentence ends at . ! ? (and runs of them) followed by space and a capital, a quote or a digit.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[A-Z0-9\"'(])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def word_count(text: str) -> int:
    return len(text.split())


def is_opinionated(text: str) -> bool:
    return any(word in OPINION_WORDS for word in _WORD.findall(text.lower()))


def windows(parts: list[str], min_words: int, max_words: int) -> Iterator[str]:
    """Runs of consecutive sentences whose word count lies in [min_words, max_words]: one per start sentence."""
    for start in range(len(parts)):
        words = 0
        for end in range(start, len(parts)):
            words += word_count(parts[end])
            if words > max_words:
                break
            if words >= min_words:
                yield " ".join(parts[start : end + 1])
                break


def review_chunks(text: str, min_words: int, max_words: int) -> list[str]:
    """Opinionated sentence runs of a review in the word range; the whole review itself is not among them."""
    parts = sentences(text)
    if len(parts) < 2:
        return []
    return [chunk for chunk in windows(parts, min_words, max_words) if is_opinionated(chunk)]


def chunk_frame(frame: pd.DataFrame, *, per_review: int, min_words: int, max_words: int, seed: int) -> pd.DataFrame:
    """Up to `per_review` opinionated chunks drawn (seeded) from each review, with the review's label."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[int] = []
    for text, label in zip(frame["text"], frame["label"], strict=True):
        candidates = review_chunks(text, min_words, max_words)
        if not candidates:
            continue
        picks = rng.choice(len(candidates), size=min(per_review, len(candidates)), replace=False)
        for index in sorted(int(i) for i in picks):
            texts.append(candidates[index])
            labels.append(int(label))
    return pd.DataFrame({"text": texts, "label": labels}, dtype=object).astype({"text": str, "label": "int64"})


def edge_sentences(text: str, min_words: int, max_words: int) -> list[str]:
    """The first and the last sentence of a review when their length fits (a review's opening and its verdict)."""
    parts = sentences(text)
    if len(parts) < 2:
        return []
    return [s for s in (parts[0], parts[-1]) if min_words <= word_count(s) <= max_words]
