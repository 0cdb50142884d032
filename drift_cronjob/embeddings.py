"""Sentence embeddings from the deployed model itself: its encoder, mean-pooled over the attention mask.

Only used behind --embeddings: it downloads the model version (sha256-checked through the core) and needs torch and
transformers (the `drift-embeddings` extra).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drift_cronjob.db import Target
from drift_cronjob.reference import open_model_version
from mlcore.config import Settings
from mlcore.errors import ConfigurationError, ModelError
from mlcore.storage import fetch_version

log = logging.getLogger(__name__)


class SentenceEncoder:
    """The encoder of a sequence-classification checkpoint, used as a sentence embedder."""

    def __init__(self, model_dir: Path, *, max_length: int = 128, batch_size: int = 64) -> None:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise ConfigurationError(
                "embedding drift needs torch and transformers: install the `drift-embeddings` extra"
            ) from exc
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            # AutoModel loads the base encoder of a *ForSequenceClassification checkpoint; the head is not needed.
            self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the model in {model_dir} for embeddings: {exc}") from exc
        self.model.eval()
        self._torch = torch
        self.max_length = max_length
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        chunks: list[np.ndarray] = []
        with torch.inference_mode():
            for begin in range(0, len(texts), self.batch_size):
                batch = list(texts[begin : begin + self.batch_size])
                encoded = self.tokenizer(
                    batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                )
                hidden = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
                chunks.append(pooled.float().cpu().numpy())
        hidden_size = int(getattr(self.model.config, "hidden_size", 0))
        return np.concatenate(chunks) if chunks else np.zeros((0, hidden_size), dtype=np.float32)


def sample_texts(texts: Sequence[str], limit: int, seed: int) -> list[str]:
    if len(texts) <= limit:
        return list(texts)
    picked = np.random.default_rng(seed).choice(len(texts), size=limit, replace=False)
    return [texts[i] for i in sorted(picked)]


def embed_both(
    target: Target,
    core: Settings,
    current_texts: Sequence[str],
    reference_texts: Sequence[str],
    *,
    max_rows: int,
    seed: int,
    batch_size: int,
    max_length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fetch the served version into a temporary directory and embed a sample of both sides."""
    storage, prefix = open_model_version(target, core)
    with tempfile.TemporaryDirectory(prefix="drift-model-") as tmp:
        model_dir = Path(tmp) / "model"
        fetch_version(storage, prefix, model_dir)
        encoder = SentenceEncoder(model_dir, max_length=max_length, batch_size=batch_size)
        current = encoder.encode(sample_texts(current_texts, max_rows, seed))
        reference = encoder.encode(sample_texts(reference_texts, max_rows, seed))
    log.info("embedded %d current and %d reference texts", len(current), len(reference))
    return current, reference
