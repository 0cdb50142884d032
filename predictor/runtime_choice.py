"""Which runtime serves a version: `--runtime auto|onnx|onnx-int8|torch` against what the version and install offer.

auto = the best on offer: the int8 ONNX file when the model card shows it within 0.5 accuracy points of fp32,
else the fp32 ONNX file, else torch. An ONNX file the card names but that is missing, corrupt or outside the
manifest is a ModelError naming the file; auto falls back to torch only if torch is installed, and says so.
An explicit choice never falls back.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from mlcore.errors import ModelError
from mlcore.model_version import CardLike, as_card
from mlcore.storage import MANIFEST_NAME
from predictor.model_source import ModelSource
from predictor.onnx_runtime import OnnxRuntime
from predictor.runtime import SentimentRuntime

log = logging.getLogger(__name__)

# int8 is preferred only while it costs at most this much accuracy against fp32 on the card's test split.
INT8_MAX_ACCURACY_DROP = 0.005


def installed(*modules: str) -> bool:
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):  # a blocked or half-installed package
            return False
    return True


def torch_installed() -> bool:
    return installed("torch", "transformers")


def onnx_installed() -> bool:
    return installed("onnxruntime", "tokenizers")


def preferred_onnx(card: CardLike) -> str | None:
    """The ONNX variant auto takes from what the card offers, or None if it offers none."""
    card = as_card(card)
    if card.runtime_file("onnx-int8"):
        fp32_entry = "onnx" if "onnx" in card.runtimes else "torch"
        fp32 = card.runtime_accuracy(fp32_entry)
        int8 = card.runtime_accuracy("onnx-int8")
        if fp32 is None or int8 is None or fp32 - int8 <= INT8_MAX_ACCURACY_DROP:
            return "onnx-int8"
    return "onnx" if card.runtime_file("onnx") else None


def check_onnx_file(source: ModelSource, variant: str) -> None:
    """The card's file for `variant` must be listed in the manifest (resolve_model checked listed files' sha256)."""
    file = source.card.runtime_file(variant)
    if file is None:
        version = source.version or source.directory.name
        raise ModelError(
            f"--runtime {variant}: version {version} ({source.directory}) has no ONNX file for it "
            "(model_card.json lists none: published before ONNX export); use --runtime torch or auto"
        )
    if source.manifest.entry(file) is None:
        raise ModelError(f"{source.directory / file} is not listed in {MANIFEST_NAME}: refusing an unverified file")


def _torch_runtime(source: ModelSource, **options: Any) -> SentimentRuntime:
    if not torch_installed():
        raise ModelError(
            f"the torch runtime needs torch and transformers (install ml-pipeline[serve-torch]) to serve "
            f"{source.directory}"
        )
    from predictor.torch_runtime import TorchRuntime

    runtime = TorchRuntime(source.directory, **options)
    runtime.load(source.card)
    return runtime


def _onnx_runtime(source: ModelSource, variant: str, **options: Any) -> SentimentRuntime:
    if not onnx_installed():
        raise ModelError(f"--runtime {variant} needs onnxruntime and tokenizers (install ml-pipeline[serve])")
    check_onnx_file(source, variant)
    options.pop("optimize", None)  # torch's dynamic quantization; the int8 ONNX file is the ONNX equivalent
    runtime = OnnxRuntime(source.directory, variant=variant, **options)  # type: ignore[arg-type]
    runtime.load(source.card)
    return runtime


def load_runtime(
    requested: str,
    source: ModelSource,
    *,
    max_length: int | None = None,
    threads: int | None = None,
    optimize: str = "none",
) -> SentimentRuntime:
    """A loaded runtime for `source`, as `requested` (auto, onnx, onnx-int8, torch); ModelError if impossible."""
    options: dict[str, Any] = {"max_length": max_length, "threads": threads, "optimize": optimize}
    if requested == "torch":
        return _torch_runtime(source, **options)
    if requested in OnnxRuntime.variants:
        return _onnx_runtime(source, requested, **options)
    if requested != "auto":
        raise ModelError(f"unknown runtime {requested!r}; expected auto, onnx, onnx-int8 or torch")
    variant = preferred_onnx(source.card) if onnx_installed() else None
    if variant is None:
        reason = "onnxruntime is not installed" if not onnx_installed() else "the version has no ONNX files"
        log.info("runtime auto: torch (%s)", reason)
        return _torch_runtime(source, **options)
    try:
        return _onnx_runtime(source, variant, **options)
    except ModelError as exc:
        if not torch_installed():
            raise
        log.warning("runtime auto: %s cannot be served, falling back to torch: %s", variant, exc)
        return _torch_runtime(source, **options)
