"""ONNX export at publish time: files written, checked against torch on the given reviews, broken exports refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlcore.errors import ModelError
from tests.fixtures.models import REFERENCE_TEXTS, TINY_LABELS, TINY_MAX_LENGTH, make_tiny_model
from training_job import export

pytestmark = pytest.mark.unit

TEXTS = [text for text, _ in REFERENCE_TEXTS]
LABELS = [TINY_LABELS.index(label) for _, label in REFERENCE_TEXTS]


@pytest.fixture(scope="module")
def hf_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Hugging Face files of a tiny model, as write_model_dir leaves them before the export."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "m", onnx=False)


def test_export_writes_both_files_and_reports_each_runtime(hf_only: Path, tmp_path: Path) -> None:
    directory = tmp_path / "m"
    directory.mkdir()
    for path in hf_only.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    runtimes = export.export_runtimes(
        directory, TEXTS, LABELS, max_length=TINY_MAX_LENGTH, head_fraction=0.5, torch_accuracy=0.75, check_rows=8
    )
    assert (directory / export.ONNX_FILE).is_file() and (directory / export.INT8_FILE).is_file()
    assert runtimes["torch"] == {"file": "model.safetensors", "accuracy": 0.75, "rows": len(TEXTS)}
    fp32, int8 = runtimes["onnx"], runtimes["onnx-int8"]
    assert fp32["file"] == "model.onnx" and int8["file"] == "model_int8.onnx"
    assert fp32["check_rows"] == 8 and fp32["max_abs_diff_vs_torch"] < 1e-4
    assert 0 < int8["max_abs_diff_vs_torch"] < 0.05
    assert int8["size_bytes"] < fp32["size_bytes"] / 2  # int8 weights
    json.dumps(runtimes)  # the card is JSON


def test_exported_graph_has_dynamic_batch_and_sequence(hf_only: Path, tmp_path: Path) -> None:
    model, tokenizer = export.load_for_export(hf_only)
    encoded = {"input_ids": [tokenizer("a b c")["input_ids"], tokenizer("a")["input_ids"]]}
    path = export.export_fp32(model, encoded, 0, tmp_path / "m.onnx")
    forward = export.onnx_forward(path, threads=1)
    long_rows = {"input_ids": [tokenizer("word " * n)["input_ids"][:TINY_MAX_LENGTH] for n in (1, 7, 30)]}
    onnx_p = export.batched_probabilities(forward, long_rows, 0)
    torch_p = export.batched_probabilities(export.torch_forward(model), long_rows, 0)
    assert onnx_p.shape == (3, 2) and np.abs(onnx_p - torch_p).max() < 1e-4


def test_an_export_that_disagrees_with_torch_is_refused(
    hf_only: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "m"
    directory.mkdir()
    for path in hf_only.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    real_forward = export.onnx_forward

    def skewed(path: Path, threads: int | None = None):  # type: ignore[no-untyped-def]
        forward = real_forward(path, threads)
        return lambda ids, mask: forward(ids, mask) + np.array([0.0, 0.5], dtype=np.float32)

    monkeypatch.setattr(export, "onnx_forward", skewed)
    with pytest.raises(ModelError, match=r"model\.onnx: the fp32 ONNX export disagrees with torch"):
        export.export_runtimes(directory, TEXTS, LABELS, max_length=TINY_MAX_LENGTH, head_fraction=1.0)


def test_export_needs_texts(hf_only: Path) -> None:
    with pytest.raises(ModelError, match="needs test texts"):
        export.export_runtimes(hf_only, [], [], max_length=TINY_MAX_LENGTH, head_fraction=1.0)
