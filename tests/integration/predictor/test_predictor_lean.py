"""The lean install: with torch and transformers blocked from import, the predictor loads and serves the ONNX files,
and refuses what needs torch with the reason."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.models import publish_tiny_model
from tests.fixtures.predictor_server import REPO_ROOT, PredictorProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LEAN = "tests.fixtures.without_torch"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lean-store")
    publish_tiny_model(root.as_uri(), "sentiment", "1")
    publish_tiny_model(root.as_uri(), "sentiment", "2", onnx=False)  # published before ONNX export
    return root / "models" / "sentiment"


def lean_command(model_dir: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", LEAN, "--model_name", "sentiment", "--model_dir", str(model_dir), *flags],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "MLP_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
        check=False,
    )


def test_the_onnx_path_serves_without_torch_or_transformers(store: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked-imports.txt"
    process = PredictorProcess(
        ["--model_name", "sentiment", "--model_dir", str(store / "1"), "--no-log-predictions"],
        env={"PREDICTOR_TORCH_THREADS": "1", "MLP_BLOCKED_IMPORTS_LOG": str(blocked)},
        workdir=tmp_path,
        module=LEAN,
    )
    process.start()
    try:
        body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["Loved it.", "Awful."]}]}
        with httpx.Client(base_url=process.base_url, timeout=60) as http:
            response = http.post("/v2/models/sentiment/infer", json=body)
            metadata = http.get("/v2/models/sentiment").json()
        assert response.status_code == 200, response.text
        labels = next(o for o in response.json()["outputs"] if o["name"] == "label")["data"]
        assert set(labels) <= {"negative", "positive"} and len(labels) == 2
        assert metadata["platform"] == "onnxruntime_onnx_int8"  # auto picked the int8 file
        libraries = Path(f"/proc/{process.pid}/maps").read_text()
        assert "libtorch" not in libraries and "onnxruntime" in libraries
    finally:
        process.stop()
    # Nothing even tried: no library on the serving path reaches for torch or transformers.
    assert not blocked.exists(), blocked.read_text()
    assert '"message": "predictor ready"' in process.log_text() and '"runtime": "onnx-int8"' in process.log_text()


def test_torch_runtime_without_torch_fails_at_load_with_the_reason(store: Path, tmp_path: Path) -> None:
    result = lean_command(store / "1", tmp_path, "--runtime", "torch")
    assert result.returncode == 2, result.stderr
    assert "needs torch and transformers" in result.stderr and "serve-torch" in result.stderr


def test_a_version_without_onnx_needs_torch_and_says_so(store: Path, tmp_path: Path) -> None:
    auto = lean_command(store / "2", tmp_path, "--runtime", "auto")
    assert auto.returncode == 2 and "needs torch and transformers" in auto.stderr, auto.stderr
    explicit = lean_command(store / "2", tmp_path, "--runtime", "onnx")
    assert explicit.returncode == 2, explicit.stderr
    assert "--runtime onnx: version 2" in explicit.stderr and "has no ONNX file" in explicit.stderr


def test_a_corrupt_onnx_file_without_torch_is_refused_naming_it(store: Path, tmp_path: Path) -> None:
    """auto cannot fall back when torch is missing: the ModelError names the file."""
    from mlcore.storage import open_storage, publish_directory

    staging = tmp_path / "staging"
    shutil.copytree(store / "1", staging)
    (staging / "MANIFEST.json").unlink()
    (staging / "model_int8.onnx").write_bytes(b"\x00garbage" * 64)
    publish_directory(open_storage(str(tmp_path / "store")), "models/sentiment/3", staging)
    result = lean_command(tmp_path / "store" / "models" / "sentiment" / "3", tmp_path)
    assert result.returncode == 2, result.stderr
    assert "model_int8.onnx: not a loadable ONNX model" in result.stderr
