"""The model runtime (MLServer style): load a sequence classifier once, then turn lists of texts into probabilities.

It knows nothing about transports or protocols; the codecs and the kserve model wrap it.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from mlcore.errors import ModelError
from mlcore.text import encode_head_tail, truncation_of

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 256


def configure_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    # Inter-op parallelism only helps graph-parallel models; one thread avoids oversubscribing the CPU.
    # It can be set once per process only (tests and benchmarks load several models).
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


class SentimentRuntime:
    """Tokenizer + AutoModelForSequenceClassification with the label names of the model's config."""

    def __init__(self, directory: Path, *, max_length: int | None = None, optimize: str = "none") -> None:
        self.directory = Path(directory)
        self.requested_max_length = max_length
        self.optimize = optimize
        self.labels: list[str] = []
        self.max_length = max_length or DEFAULT_MAX_LENGTH
        self.head_fraction = 1.0
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self, card: dict[str, Any] | None = None) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.directory))
            model = AutoModelForSequenceClassification.from_pretrained(str(self.directory))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load the model in {self.directory}: {exc}") from exc
        model.eval()
        id2label = getattr(model.config, "id2label", None) or {}
        labels = [str(id2label[i]) for i in sorted(int(k) for k in id2label)]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ModelError(f"{self.directory}/config.json: id2label must name at least two distinct labels")
        if self.optimize == "int8":
            model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
        positions = int(getattr(model.config, "max_position_embeddings", 512) or 512)
        wanted = self.requested_max_length or int((card or {}).get("max_length") or DEFAULT_MAX_LENGTH)
        self.max_length = min(wanted, positions)
        # Truncate long texts the way training did (the model card says how); plain head truncation otherwise.
        self.head_fraction = truncation_of(card)
        self.labels = labels
        self._model = model
        self._tokenizer = tokenizer
        log.info(
            "model loaded",
            extra={"model_dir": str(self.directory), "labels": labels, "max_length": self.max_length},
        )

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities [len(texts), num_labels]; truncation to max_length, padding to the longest text only."""
        import torch

        if not self.loaded:
            raise ModelError("the runtime is not loaded")
        with torch.inference_mode():
            if self.head_fraction < 1.0:
                encoded = encode_head_tail(self._tokenizer, texts, self.max_length, self.head_fraction)
                batch = self._tokenizer.pad(encoded, padding=True, return_tensors="pt")
            else:
                batch = self._tokenizer(
                    texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
                )
            logits = self._model(**batch).logits
            probabilities = torch.softmax(logits.float(), dim=-1)
        return probabilities.numpy()
