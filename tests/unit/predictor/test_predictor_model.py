"""Model verification and loading, the runtime, and the kserve model end to end in-process (tiny model, SQLite)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from mlcore.db import create_db_engine, upgrade_to_head
from mlcore.errors import ModelError
from predictor.model import SentimentModel
from predictor.model_source import resolve_model
from predictor.onnx_runtime import OnnxRuntime
from predictor.prediction_log import PredictionLogWriter
from predictor.runtime import SentimentRuntime
from predictor.settings import load_predictor_settings
from predictor.torch_runtime import TorchRuntime
from tests.fixtures.models import TINY_LABELS, TINY_MAX_LENGTH, publish_tiny_model

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
# Every test that runs inference runs on each runtime a version can be served with.
RUNTIMES = ("torch", "onnx", "onnx-int8")
# Dynamic int8 quantizes activations per batch tensor: a text's probabilities move slightly with its batch company.
BATCH_TOLERANCE = {"torch": 1e-4, "onnx": 1e-4, "onnx-int8": 0.02}


def make_runtime(kind: str, directory: Path, **options: object) -> SentimentRuntime:
    if kind == "torch":
        return TorchRuntime(directory, **options)  # type: ignore[arg-type]
    return OnnxRuntime(directory, variant=kind, **options)  # type: ignore[arg-type]


def card_of(directory: Path) -> dict[str, object]:
    return json.loads((directory / "model_card.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model published (with manifest) to local storage; returns the version directory."""
    root = tmp_path_factory.mktemp("store")
    uri = publish_tiny_model(root.as_uri(), "sentiment", "4")
    return Path(uri.removeprefix("file://"))


@pytest.fixture
def version_copy(published: Path, tmp_path: Path) -> Path:
    target = tmp_path / "version"
    shutil.copytree(published, target)
    return target


# --- verification -----------------------------------------------------------------------------------------


def test_a_mounted_version_is_verified_in_place(published: Path, tmp_path: Path) -> None:
    source = resolve_model(None, published, tmp_path / "downloads")
    assert source.directory == published
    assert source.version == "4"
    assert source.card.max_length == TINY_MAX_LENGTH
    assert not (tmp_path / "downloads").exists()


def test_a_storage_uri_is_fetched_with_checksums(published: Path, tmp_path: Path) -> None:
    source = resolve_model(published.as_uri(), None, tmp_path / "downloads")
    assert source.directory.parent == tmp_path / "downloads"
    assert (source.directory / "config.json").is_file()
    assert source.uri == published.as_uri()


def test_missing_manifest_is_a_model_error(version_copy: Path, tmp_path: Path) -> None:
    (version_copy / "MANIFEST.json").unlink()
    with pytest.raises(ModelError, match=r"MANIFEST\.json"):
        resolve_model(None, version_copy, tmp_path)


def test_tampered_weights_are_a_model_error(version_copy: Path, tmp_path: Path) -> None:
    weights = version_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"model\.safetensors.*checksum"):
        resolve_model(None, version_copy, tmp_path)
    with pytest.raises(ModelError, match="checksum"):
        resolve_model(version_copy.as_uri(), None, tmp_path / "downloads")


def test_missing_directory_and_unpublished_uri_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(None, tmp_path / "nowhere", tmp_path)
    with pytest.raises(ModelError, match=r"MANIFEST\.json"):
        resolve_model((tmp_path / "empty").as_uri(), None, tmp_path / "downloads")


# --- runtime ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", RUNTIMES)
def test_runtime_labels_truncation_and_probabilities(published: Path, kind: str) -> None:
    runtime = make_runtime(kind, published)
    runtime.load(card_of(published) | {"max_length": TINY_MAX_LENGTH})
    assert runtime.name == kind
    assert runtime.labels == list(TINY_LABELS)
    assert runtime.max_length == TINY_MAX_LENGTH
    probabilities = runtime.predict_proba(["short", "a much longer review " * 200])  # truncated, not an error
    assert probabilities.shape == (2, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # Dynamic padding must not change a text's answer.
    alone = runtime.predict_proba(["short"])
    assert np.allclose(alone[0], probabilities[0], atol=BATCH_TOLERANCE[kind])


def test_torch_runtime_int8_gives_the_same_shape(published: Path) -> None:
    runtime = TorchRuntime(published, optimize="int8")
    runtime.load()
    probabilities = runtime.predict_proba(["short", "another"])
    assert probabilities.shape == (2, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", RUNTIMES)
def test_runtime_refuses_a_config_without_labels(version_copy: Path, kind: str) -> None:
    config = json.loads((version_copy / "config.json").read_text())
    config["id2label"] = {"0": "same", "1": "same"}
    (version_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="id2label"):
        make_runtime(kind, version_copy).load(card_of(version_copy))


# --- the kserve model in-process -----------------------------------------------------------------------------


class BrokenRuntime(SentimentRuntime):
    """A runtime whose forward pass fails, to see the server-side error path (500 + an 'error' log row)."""

    name = "torch"
    platform = "broken"

    def _load(self, card: dict[str, object], config: dict[str, object]) -> None:
        self._tokenizer = object()

    @property
    def loaded(self) -> bool:
        return True

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError("CUDA error: device lost")


@pytest.fixture(params=RUNTIMES)
def served_model(
    request: pytest.FixtureRequest, published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SentimentModel, sa.Engine]:
    monkeypatch.setenv("DEPLOYMENT_ID", "ns/sentiment")
    monkeypatch.setenv("DEPLOYMENT_ROLE", "canary")
    monkeypatch.delenv("MODEL_VERSION", raising=False)
    url = f"sqlite:///{tmp_path / 'logs.db'}"
    upgrade_to_head(url)
    engine = create_db_engine(url)
    settings = load_predictor_settings(
        model_dir=str(published), max_request_items=4, torch_threads=1, runtime=request.param
    )
    writer = PredictionLogWriter(engine, spill_dir=tmp_path / "spill")
    model = SentimentModel(settings, writer=writer)
    model.load()
    yield model, engine
    writer.close()


def logged(engine: sa.Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM prediction_logs"))]


def test_model_predicts_v1_and_v2_and_logs_each_text(served_model: tuple[SentimentModel, sa.Engine]) -> None:
    model, engine = served_model
    assert model.ready and model.model_version == "4"  # from the model card: no MODEL_VERSION given
    assert model.runtime_name == model.settings.runtime

    async def both() -> tuple[object, object]:
        v1 = await model.predict({"instances": ["good", {"text": "bad"}]}, {"x-request-id": "v1-req"})
        request = InferRequest("sentiment", [InferInput("text", [1], "BYTES", ["okay"])], request_id="v2-req")
        v2 = await model.predict(request, {})
        return v1, v2

    v1, v2 = asyncio.run(both())
    assert all(p["label"] in TINY_LABELS for p in v1["predictions"])  # type: ignore[index]
    body, _ = v2.to_rest()  # type: ignore[attr-defined]
    assert body["model_version"] == "4" and body["id"] == "v2-req"
    assert model.writer is not None and model.writer.flush(30)
    rows = {r["input_text"]: r for r in logged(engine)}
    assert set(rows) == {"good", "bad", "okay"}
    assert rows["good"]["request_id"] == "v1-req" and rows["okay"]["request_id"] == "v2-req"
    assert rows["bad"]["role"] == "canary" and rows["bad"]["deployment_id"] == "ns/sentiment"
    ids = {str(uuid.UUID(p["prediction_id"])) for p in v1["predictions"]}  # type: ignore[index]
    assert ids == {str(uuid.UUID(str(rows[t]["id"]))) for t in ("good", "bad")}


def test_client_errors_become_invalid_input(served_model: tuple[SentimentModel, sa.Engine]) -> None:
    model, engine = served_model
    with pytest.raises(InvalidInput, match="over the maximum of 4"):
        asyncio.run(model.predict({"instances": ["a"] * 5}))
    assert model.writer is not None and model.writer.flush(30)
    assert logged(engine) == []


def test_server_errors_are_logged_with_status_error(served_model: tuple[SentimentModel, sa.Engine]) -> None:
    model, engine = served_model
    assert model.runtime is not None
    broken = BrokenRuntime(model.runtime.directory)
    broken.labels = model.runtime.labels
    model.runtime = broken
    with pytest.raises(InferenceError, match="see the predictor log") as caught:
        asyncio.run(model.predict({"instances": ["boom", "bang"]}, {"x-request-id": "failing"}))
    assert "device lost" not in str(caught.value)  # internals stay in the log, not in the answer
    assert model.writer is not None and model.writer.flush(30)
    rows = logged(engine)
    assert {r["input_text"] for r in rows} == {"boom", "bang"}
    for r in rows:
        assert r["status"] == "error" and "device lost" in str(r["error_message"])
        assert r["predicted_sentiment"] is None and r["request_id"] == "failing"


def test_metadata_describes_the_tensors(served_model: tuple[SentimentModel, sa.Engine]) -> None:
    model, _ = served_model
    assert model.get_input_types() == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in model.get_output_types()] == ["label", "score", "prediction_id", "probabilities"]


# --- start-up failure of the real command ---------------------------------------------------------------


@pytest.mark.slow
def test_command_refuses_an_unverified_model_with_exit_2(version_copy: Path, tmp_path: Path) -> None:
    (version_copy / "MANIFEST.json").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "predictor", "--model_name", "sentiment", "--model_dir", str(version_copy)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "MLP_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "MANIFEST.json" in result.stderr and "error:" in result.stderr
