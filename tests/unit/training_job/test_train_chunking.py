"""Sentence runs of reviews for training, and the evaluation slices built from held-out reviews."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlcore.errors import DataValidationError
from training_job.chunking import chunk_frame, edge_sentences, is_opinionated, review_chunks, sentences, windows
from training_job.slices import HANDWRITTEN_SET, build_slices, load_eval_set, parse_eval_sets

pytestmark = pytest.mark.unit

REVIEW = (
    "I rented this on a Tuesday. The acting is wonderful and the score is lovely. "
    "It runs for two hours. Sadly the ending is a mess! Still, I recommend it."
)


def test_sentences_split_at_sentence_ends_only() -> None:
    assert sentences('It was 3.5 hours long. Dull! Was it worth it? "Yes." Maybe') == [
        "It was 3.5 hours long.",
        "Dull!",
        "Was it worth it?",
        '"Yes."',
        "Maybe",
    ]


def test_opinion_filter() -> None:
    assert is_opinionated("The acting is wonderful.")
    assert is_opinionated("What a WASTE of time")
    assert not is_opinionated("I rented this on a Tuesday.")


def test_windows_keep_runs_within_the_word_range() -> None:
    parts = ["one two", "three four five", "six", "seven eight nine ten"]
    assert list(windows(parts, 4, 6)) == [
        "one two three four five",
        "three four five six",
        "six seven eight nine ten",
        "seven eight nine ten",
    ]
    assert list(windows(parts, 5, 5)) == ["one two three four five", "six seven eight nine ten"]


def test_review_chunks_drop_neutral_runs() -> None:
    chunks = review_chunks(REVIEW, 4, 12)
    assert "The acting is wonderful and the score is lovely." in chunks
    assert all(is_opinionated(chunk) for chunk in chunks)
    assert not any(chunk.startswith("I rented this") and "wonderful" not in chunk for chunk in chunks)
    assert review_chunks("A single sentence that is great.", 2, 40) == []  # that would be the review itself


def test_chunk_frame_labels_chunks_by_their_review_and_is_seeded() -> None:
    frame = pd.DataFrame({"text": [REVIEW, "Awful. Just awful and boring. Bad acting too."], "label": [1, 0]})
    first = chunk_frame(frame, per_review=2, min_words=2, max_words=12, seed=7)
    again = chunk_frame(frame, per_review=2, min_words=2, max_words=12, seed=7)
    pd.testing.assert_frame_equal(first, again)
    assert len(first) == 4 and first["label"].tolist() == [1, 1, 0, 0]
    assert set(first["text"]) <= set(review_chunks(REVIEW, 2, 12)) | set(review_chunks(frame["text"][1], 2, 12))


def test_edge_sentences_are_the_opening_and_the_verdict() -> None:
    assert edge_sentences(REVIEW, 3, 19) == ["I rented this on a Tuesday.", "Still, I recommend it."]
    assert edge_sentences(REVIEW, 6, 19) == ["I rented this on a Tuesday."]


def _held_out(n: int) -> pd.DataFrame:
    good = "I watched it last night N. The cast is great and the story is moving. Top marks from me, gem N."
    bad = "I saw it last night N. The plot is dull and the dialogue is awful. Avoid it, a waste of N hours."
    rows = [(good.replace("N", str(i)), 1) for i in range(n)] + [(bad.replace("N", str(i)), 0) for i in range(n)]
    return pd.DataFrame(rows, columns=["text", "label"])


def test_slices_come_from_held_out_reviews_and_are_stable(tmp_path: Path) -> None:
    extra = tmp_path / "mine.csv"
    pd.DataFrame({"text": ["Lovely staff.", "Rude staff.", "Lovely staff."], "label": ["pos", "neg", "pos"]}).to_csv(
        extra, index=False
    )
    test = _held_out(30)
    built = {s.name: s for s in build_slices(test, (("mine", str(extra)),), {"short_snippets": 10})}
    assert set(built) == {"short_snippets", "short_snippets_any", "mid_length", "mine"}
    snippets = built["short_snippets"].frame
    assert len(snippets) == 10 and snippets["label"].nunique() == 2
    assert all(len(t.split()) < 20 and is_opinionated(t) for t in snippets["text"])
    # "I watched it last night N." is neutral: only in the unfiltered slice.
    assert any(t.startswith("I watched") for t in built["short_snippets_any"].frame["text"])
    assert all(20 <= len(t.split()) <= 80 for t in built["mid_length"].frame["text"]) or built["mid_length"].frame.empty
    assert built["mine"].frame.to_dict("list") == {"text": ["Lovely staff.", "Rude staff."], "label": [1, 0]}
    again = {s.name: s for s in build_slices(test, (), {"short_snippets": 10})}
    pd.testing.assert_frame_equal(again["short_snippets"].frame, snippets)


def test_the_hand_written_set_is_balanced_and_short() -> None:
    frame = load_eval_set(HANDWRITTEN_SET)
    assert len(frame) >= 100
    assert abs(frame["label"].mean() - 0.5) < 0.05
    assert frame["text"].str.split().str.len().max() < 20


def test_eval_set_arguments() -> None:
    assert parse_eval_sets(None) == (("handwritten", str(HANDWRITTEN_SET)),)
    assert parse_eval_sets([]) == ()
    assert parse_eval_sets(["tweets=/data/t.csv", "/data/shop_reviews.jsonl"]) == (
        ("tweets", "/data/t.csv"),
        ("shop_reviews", "/data/shop_reviews.jsonl"),
    )
    with pytest.raises(DataValidationError, match="identifier"):
        parse_eval_sets(["my set=/x.csv"])
    with pytest.raises(DataValidationError, match="does not exist"):
        load_eval_set(Path("/nonexistent/set.csv"))
