"""The torch runtime: transformers' tokenizer + AutoModelForSequenceClassification (GPU, or versions without ONNX).

Needs the `serve-torch` extra; nothing here is imported unless this runtime is chosen.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from mlcore.errors import ModelError
from mlcore.model_version import ModelCard
from predictor.runtime import RuntimeName, SentimentRuntime


def configure_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    # Inter-op parallelism only helps graph-parallel models; one thread avoids oversubscribing the CPU.
    # It can be set once per process only (tests and benchmarks load several models).
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


class TorchRuntime(SentimentRuntime):
    name: RuntimeName = "torch"
    platform: str = "pytorch_huggingface"

    def __init__(self, *args: Any, optimize: str = "none", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optimize = optimize
        self._model: Any = None

    def _load(self, card: ModelCard, config: dict[str, Any]) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if self.threads:
            configure_torch_threads(self.threads)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.directory))
            model = AutoModelForSequenceClassification.from_pretrained(str(self.directory))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load the model in {self.directory}: {exc}") from exc
        model.eval()
        if self.optimize == "int8":
            model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
        self._model = model
        self._tokenizer = tokenizer

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        import torch

        encoded = self.encode(texts)
        with torch.inference_mode():
            batch = self._tokenizer.pad(encoded, padding=True, return_tensors="pt")
            logits = self._model(**batch).logits
            probabilities = torch.softmax(logits.float(), dim=-1)
        return probabilities.numpy()
