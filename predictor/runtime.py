"""The model runtime interface (MLServer style): load a sequence classifier once, then texts -> probabilities.

Two implementations: `predictor.onnx_runtime.OnnxRuntime` (tokenizers + onnxruntime, the lean CPU path) and
`predictor.torch_runtime.TorchRuntime` (transformers + torch, for GPUs and versions without ONNX files).
Both read labels and position limits from config.json and tokenize through `mlcore.text.encode_head_tail`, the one
head+tail truncation that training used, so they see the same token ids for the same text.
It knows nothing about transports or protocols; the codecs and the kserve model wrap it.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mlcore.errors import ModelError
from mlcore.model_version import CardLike, ModelCard, as_card
from mlcore.text import encode_head_tail

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 256
RuntimeName = Literal["torch", "onnx", "onnx-int8"]
RUNTIME_CHOICES = ("auto", "onnx", "onnx-int8", "torch")


def read_model_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    try:
        config = json.loads(path.read_text())
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} must hold a JSON object")
    return config


def labels_of(config: dict[str, Any], directory: Path) -> list[str]:
    """Label names in logit order, from config.json's id2label."""
    id2label = config.get("id2label") or {}
    try:
        labels = [str(id2label[key]) for key in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        labels = []
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ModelError(f"{directory}/config.json: id2label must name at least two distinct labels")
    return labels


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=-1, keepdims=True), dtype=np.float32)


class SentimentRuntime(ABC):
    """A loaded classifier: `labels`, `max_length`, `encode(texts)` (token ids) and `predict_proba(texts)`."""

    name: RuntimeName  # what --runtime calls it; reported in metadata and logs
    platform: str  # the Open Inference Protocol metadata's platform: which runtime serves the model

    def __init__(self, directory: Path, *, max_length: int | None = None, threads: int | None = None) -> None:
        self.directory = Path(directory)
        self.requested_max_length = max_length
        self.threads = threads
        self.labels: list[str] = []
        self.max_length = max_length or DEFAULT_MAX_LENGTH
        self.head_fraction = 1.0
        self._tokenizer: Any = None

    def load(self, card: CardLike = None) -> None:
        """Load the model (ModelError if it cannot be), then take max_length and truncation from the card."""
        card = as_card(card)
        config = read_model_config(self.directory)
        labels = labels_of(config, self.directory)
        self._load(card, config)
        positions = int(config.get("max_position_embeddings") or 512)
        wanted = self.requested_max_length or card.max_length or DEFAULT_MAX_LENGTH
        self.max_length = min(wanted, positions)
        # Truncate long texts the way training did (the model card says how); plain head truncation otherwise.
        self.head_fraction = card.head_fraction
        self.labels = labels
        log.info(
            "model loaded",
            extra={
                "model_dir": str(self.directory),
                "runtime": self.name,
                "labels": labels,
                "max_length": self.max_length,
                "threads": self.threads,
            },
        )

    @abstractmethod
    def _load(self, card: ModelCard, config: dict[str, Any]) -> None:
        """Load tokenizer and model; set self._tokenizer (called like a transformers tokenizer)."""

    @property
    @abstractmethod
    def loaded(self) -> bool: ...

    def encode(self, texts: list[str]) -> dict[str, list[list[int]]]:
        """Unpadded input_ids and attention_mask, truncated to max_length the shared head+tail way."""
        if not self.loaded:
            raise ModelError("the runtime is not loaded")
        return encode_head_tail(self._tokenizer, texts, self.max_length, self.head_fraction)

    @abstractmethod
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities [len(texts), num_labels]; padding to the longest text of the batch only."""
