"""The ONNX and torch runtimes agree (token ids, probabilities); --runtime choice; refused ONNX files."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlcore.errors import ModelError
from mlcore.storage import MANIFEST_NAME, open_storage, publish_directory
from predictor.model_source import resolve_model
from predictor.onnx_runtime import OnnxRuntime
from predictor.runtime_choice import load_runtime, preferred_onnx
from predictor.torch_runtime import TorchRuntime
from tests.fixtures.models import TINY_MAX_LENGTH, make_tiny_model

pytestmark = pytest.mark.unit

# Short, long (head+tail truncation), accents, markup, emoji, whitespace: where tokenizers could differ.
TEXTS = [
    "A wonderful film.",
    "The opening hour drags on and on. " * 30 + "But the ending is simply magnificent!",
    "Crème brûlée, naïve café — ÜBER cool; 東京 and 😀 emoji.",
    "Line one<br /><br />line two\tand\ttabs   and  spaces",
    "x",
]
HEAD_TAIL = {"strategy": "head+tail", "head_fraction": 0.5}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with its ONNX exports, not yet published (tests change it, then publish a copy)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "5")


def publish_copy(made: Path, root: Path, change: object = None) -> Path:
    """Copy `made`, let `change(directory)` alter it, publish it locally (manifest of what is there)."""
    staging = root / "staging"
    shutil.copytree(made, staging)
    if callable(change):
        change(staging)
    publish_directory(open_storage(str(root / "store")), "models/sentiment/5", staging)
    return root / "store" / "models" / "sentiment" / "5"


def card_with(directory: Path, **fields: object) -> dict[str, object]:
    card = json.loads((directory / "model_card.json").read_text())
    card.update(fields)
    return card  # type: ignore[no-any-return]


# --- the runtimes agree -----------------------------------------------------------------------------------


def test_token_ids_match_between_runtimes_and_training(made: Path) -> None:
    """One head+tail implementation (mlcore.text): tokenizers' file and transformers' tokenizer give the same ids."""
    from mlcore.text import encode_head_tail
    from training_job.tokenization import load_tokenizer

    card = card_with(made, truncation=HEAD_TAIL)
    torch_runtime, onnx_runtime = TorchRuntime(made), OnnxRuntime(made, variant="onnx")
    torch_runtime.load(card)
    onnx_runtime.load(card)
    ids_torch = torch_runtime.encode(TEXTS)["input_ids"]
    ids_onnx = onnx_runtime.encode(TEXTS)["input_ids"]
    training = encode_head_tail(load_tokenizer(str(made)), TEXTS, TINY_MAX_LENGTH, 0.5)["input_ids"]
    assert ids_onnx == ids_torch == training
    long_row = ids_onnx[1]
    assert len(long_row) == TINY_MAX_LENGTH  # truncated, keeping the verdict at the end between the special tokens
    ending = onnx_runtime.encode(["But the ending is simply magnificent!"])["input_ids"][0]
    assert long_row[-(len(ending) - 1) :] == ending[1:]
    assert long_row[0] == ending[0]


def test_onnx_probabilities_match_torch(made: Path) -> None:
    card = card_with(made, truncation=HEAD_TAIL)
    torch_p = TorchRuntime(made, threads=1)
    fp32 = OnnxRuntime(made, variant="onnx", threads=1)
    int8 = OnnxRuntime(made, variant="onnx-int8", threads=1)
    for runtime in (torch_p, fp32, int8):
        runtime.load(card)
    expected = torch_p.predict_proba(TEXTS)
    assert np.abs(fp32.predict_proba(TEXTS) - expected).max() < 1e-4
    assert np.abs(int8.predict_proba(TEXTS) - expected).max() < 0.05  # int8 weights: close, not equal
    # Padding to the batch's longest row does not change a text's answer.
    alone = np.concatenate([fp32.predict_proba([text]) for text in TEXTS])
    assert np.allclose(alone, fp32.predict_proba(TEXTS), atol=1e-5)


def test_the_card_lists_each_runtime_with_accuracy_and_the_torch_delta(made: Path) -> None:
    runtimes = card_with(made)["runtimes"]
    assert set(runtimes) == {"torch", "onnx", "onnx-int8"}  # type: ignore[arg-type]
    for name in ("onnx", "onnx-int8"):
        entry = runtimes[name]  # type: ignore[index]
        assert (made / entry["file"]).is_file()
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["check_rows"] == 12
    assert runtimes["onnx"]["max_abs_diff_vs_torch"] < 1e-4  # type: ignore[index]
    assert 0 < runtimes["onnx-int8"]["max_abs_diff_vs_torch"] < 0.05  # type: ignore[index]


# --- choosing the runtime ---------------------------------------------------------------------------------


def test_auto_prefers_int8_unless_it_costs_accuracy(made: Path) -> None:
    card = card_with(made)
    assert preferred_onnx(card) == "onnx-int8"
    runtimes = json.loads(json.dumps(card["runtimes"]))
    runtimes["onnx-int8"]["accuracy"] = runtimes["onnx"]["accuracy"] - 0.01
    assert preferred_onnx(card | {"runtimes": runtimes}) == "onnx"
    assert preferred_onnx(card | {"runtimes": {"torch": runtimes["torch"]}}) is None


@pytest.mark.parametrize(("requested", "expected"), [("auto", "onnx-int8"), ("onnx", "onnx"), ("torch", "torch")])
def test_requested_runtime_is_loaded(made: Path, tmp_path: Path, requested: str, expected: str) -> None:
    source = resolve_model(None, publish_copy(made, tmp_path), tmp_path / "dl")
    runtime = load_runtime(requested, source, threads=1)
    assert runtime.name == expected
    assert runtime.predict_proba(["fine"]).shape == (1, 2)


def without_onnx(directory: Path) -> None:
    """A version as published before ONNX export: no files, no `runtimes` in the card."""
    for name in ("model.onnx", "model_int8.onnx"):
        (directory / name).unlink()
    card = json.loads((directory / "model_card.json").read_text())
    del card["runtimes"]
    (directory / "model_card.json").write_text(json.dumps(card))


def test_a_version_without_onnx_is_served_by_torch_under_auto(made: Path, tmp_path: Path) -> None:
    source = resolve_model(None, publish_copy(made, tmp_path, without_onnx), tmp_path / "dl")
    assert load_runtime("auto", source, threads=1).name == "torch"


@pytest.mark.parametrize("variant", ["onnx", "onnx-int8"])
def test_onnx_on_a_version_without_onnx_fails_at_load_with_the_reason(made: Path, tmp_path: Path, variant: str) -> None:
    source = resolve_model(None, publish_copy(made, tmp_path, without_onnx), tmp_path / "dl")
    with pytest.raises(ModelError, match=f"--runtime {variant}: version 5 .* has no ONNX file"):
        load_runtime(variant, source)


# --- refused ONNX files -------------------------------------------------------------------------------------


def test_a_missing_onnx_file_is_named_and_auto_says_it_falls_back(
    made: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    version = publish_copy(made, tmp_path, lambda d: (d / "model_int8.onnx").unlink())  # the card still names it
    source = resolve_model(None, version, tmp_path / "dl")
    with pytest.raises(ModelError, match=r"model_int8\.onnx is not listed in MANIFEST\.json"):
        load_runtime("onnx-int8", source)
    with caplog.at_level(logging.WARNING, logger="predictor.runtime_choice"):
        assert load_runtime("auto", source, threads=1).name == "torch"
    assert "falling back to torch" in caplog.text and "model_int8.onnx" in caplog.text


def test_a_corrupt_onnx_file_is_named(made: Path, tmp_path: Path) -> None:
    version = publish_copy(made, tmp_path, lambda d: (d / "model.onnx").write_bytes(b"not a protobuf" * 100))
    source = resolve_model(None, version, tmp_path / "dl")  # the manifest matches the (corrupt) file
    with pytest.raises(ModelError, match=r"model\.onnx: not a loadable ONNX model"):
        load_runtime("onnx", source)


def test_an_onnx_file_that_disagrees_with_the_manifest_is_refused(made: Path, tmp_path: Path) -> None:
    version = publish_copy(made, tmp_path)
    data = bytearray((version / "model_int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (version / "model_int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"model_int8\.onnx does not match its manifest checksum"):
        resolve_model(None, version, tmp_path / "dl")


def test_an_onnx_file_missing_from_the_manifest_is_refused(made: Path, tmp_path: Path) -> None:
    version = publish_copy(made, tmp_path)
    manifest = json.loads((version / MANIFEST_NAME).read_text())
    manifest["files"] = [f for f in manifest["files"] if f["path"] != "model.onnx"]
    (version / MANIFEST_NAME).write_text(json.dumps(manifest))
    source = resolve_model(None, version, tmp_path / "dl")
    with pytest.raises(ModelError, match=r"model\.onnx is not listed in MANIFEST\.json"):
        load_runtime("onnx", source)
