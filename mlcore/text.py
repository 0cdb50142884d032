"""Text normalisation and head+tail truncation shared by training and serving: a model sees at inference what it
saw in training.

`normalize_text` is the cleaning the training data went through (HTML line breaks and tags become spaces, entities
are decoded, whitespace collapses); `encode_head_tail` applies it, so raw text sent to the predictor ("<br />" in a
pasted review, "&amp;") reaches the model as training texts did. Casing is the tokenizer's business (uncased
vocabularies lower-case).

A text longer than the token budget keeps its first `head_fraction` of tokens and fills the rest from its end
(on reviews the closing lines often carry the verdict). `head_fraction=1.0` is plain truncation. The model card
records the strategy (`truncation: {strategy, head_fraction}`) and the predictor applies the same one.
"""

from __future__ import annotations

import html
import re
from typing import Any

from mlcore.errors import ModelError

DEFAULT_HEAD_FRACTION = 0.5
_CHUNK = 1000
_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]{0,200}>")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Line breaks and HTML tags become spaces, entities are decoded, whitespace is collapsed.

    A second pass changes nothing but double-escaped entities ("&amp;amp;"), so cleaned training text is stable.
    """
    text = _TAG.sub(" ", _BREAK.sub(" ", text))
    return _SPACE.sub(" ", html.unescape(text)).strip()


def head_tail(ids: list[int], budget: int, head_fraction: float) -> list[int]:
    if len(ids) <= budget:
        return ids
    head = int(budget * head_fraction)
    tail = budget - head
    return ids[:head] + (ids[-tail:] if tail else [])


def special_wrap(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens put before and after one sequence ([CLS] ... [SEP] for BERT), read off the tokenizer."""
    probe = "hello world"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    raise ModelError("cannot tell where the tokenizer puts its special tokens")


def encode_head_tail(
    tokenizer: Any, texts: list[str], max_length: int, head_fraction: float = DEFAULT_HEAD_FRACTION
) -> dict[str, list[list[int]]]:
    """input_ids and attention_mask (unpadded) of at most max_length tokens, special tokens included; each text is
    normalised first (normalize_text), as training texts were."""
    if not 0 < head_fraction <= 1:
        raise ModelError(f"head_fraction must be in (0, 1], got {head_fraction}")
    prefix, suffix = special_wrap(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 2:
        raise ModelError(f"max_length {max_length} leaves no room for text after the special tokens")
    input_ids: list[list[int]] = []
    for start in range(0, len(texts), _CHUNK):
        chunk = [normalize_text(text) for text in texts[start : start + _CHUNK]]
        # No truncation here: head+tail needs the whole sequence (verbose=False: long rows are expected).
        raw = tokenizer(chunk, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        for ids in raw:
            input_ids.append(prefix + head_tail(ids, budget, head_fraction) + suffix)
    return {"input_ids": input_ids, "attention_mask": [[1] * len(ids) for ids in input_ids]}
