"""The ONNX Runtime runtime: tokenizers' fast tokenizer (tokenizer.json) + an onnxruntime CPU session.

No torch, no transformers: this is what the lean `serve` install runs. The file to load (fp32 or int8) is the one
the model card's `runtimes` section names for the variant; the training job's export wrote and checked it.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mlcore.errors import ModelError
from mlcore.model_version import ModelCard
from predictor.runtime import RuntimeName, SentimentRuntime, softmax

TOKENIZER_FILE = "tokenizer.json"
_INPUTS = {"input_ids", "attention_mask", "token_type_ids"}


class FastTokenizer:
    """A `tokenizers.Tokenizer` called the way mlcore.text calls a transformers tokenizer (input_ids only)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
            raise ModelError(f"{path}: not a loadable tokenizer: {exc}") from None
        # Truncation and padding are ours (head+tail, pad to the batch's longest): switch off any saved in the file.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    def __call__(
        self, texts: str | list[str], *, add_special_tokens: bool = True, **_ignored: Any
    ) -> dict[str, list[Any]]:
        if isinstance(texts, str):
            return {"input_ids": self._tokenizer.encode(texts, add_special_tokens=add_special_tokens).ids}
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
        return {"input_ids": [encoding.ids for encoding in encodings]}


def release_free_heap() -> None:
    """Give the heap that loading freed back to the OS (glibc keeps it otherwise).

    Parsing the protobuf and optimising the graph free tens of MB of temporaries that glibc keeps mapped, and the
    arena's growth under load then comes on top. In process, an fp32 session's RSS after load fell from 300-330 to
    299 MB trimmed. With the memory pattern off as well, the fp32 predictor's peak RSS after 1200 requests at c=16
    fell from 490 to 414 MB. A no-op where the C library has no malloc_trim.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return


class OnnxRuntime(SentimentRuntime):
    variants: ClassVar[tuple[RuntimeName, ...]] = ("onnx", "onnx-int8")

    def __init__(self, *args: Any, variant: RuntimeName = "onnx", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if variant not in self.variants:
            raise ModelError(f"unknown ONNX variant {variant!r}; expected one of {', '.join(self.variants)}")
        self.variant = variant
        self.name = variant
        self.platform = "onnxruntime_onnx_int8" if variant == "onnx-int8" else "onnxruntime_onnx"
        self.model_path: Path | None = None
        self._session: Any = None
        self._input_names: list[str] = []
        self._pad_id = 0

    def _load(self, card: ModelCard, config: dict[str, Any]) -> None:
        file = card.runtime_file(self.variant)
        if file is None:
            raise ModelError(
                f"{self.directory}: this version offers no {self.variant} runtime "
                "(its model_card.json lists no ONNX file for it; it was published before ONNX export)"
            )
        path = self.directory / file
        if not path.is_file():
            raise ModelError(f"{path} is missing (the model card names it for the {self.variant} runtime)")
        tokenizer_path = self.directory / TOKENIZER_FILE
        if not tokenizer_path.is_file():
            raise ModelError(f"{tokenizer_path} is missing: the ONNX runtime needs the fast tokenizer file")
        tokenizer = FastTokenizer(tokenizer_path)
        session = self._open_session(path)
        names = [i.name for i in session.get_inputs()]
        if "input_ids" not in names or not set(names) <= _INPUTS:
            raise ModelError(f"{path}: unexpected model inputs {names}; expected input_ids and attention_mask")
        self._input_names = names
        self._pad_id = int(config.get("pad_token_id") or 0)
        self.model_path = path
        self._tokenizer = tokenizer
        self._session = session

    def _open_session(self, path: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Idle workers sleep instead of spinning (as OMP_WAIT_POLICY=PASSIVE does for torch): a server has other
        # threads, and usually neighbours on its CPUs, that spinning workers would starve.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Inputs vary in shape from pass to pass, so a memory pattern planned for one shape is rarely reused; without
        # it each pass takes what it needs from the arena (in process, fp32 peak RSS under load 15-20 MB lower at
        # the same speed).
        options.enable_mem_pattern = False
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind exception types (InvalidProtobuf, Fail, ...)
            raise ModelError(f"{path}: not a loadable ONNX model: {str(exc).splitlines()[0][:300]}") from None
        release_free_heap()
        return session

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def pad(self, encoded: dict[str, list[list[int]]]) -> dict[str, np.ndarray]:
        """int64 arrays padded to the longest row, named as the model's inputs."""
        rows = encoded["input_ids"]
        width = max((len(ids) for ids in rows), default=0)
        input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = ids
            attention_mask[i, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        return {name: feeds[name] for name in self._input_names}

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        feeds = self.pad(self.encode(texts))
        logits = self._session.run(None, feeds)[0]
        return softmax(np.asarray(logits))
