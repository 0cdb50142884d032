"""The training job end to end: real MLflow server (Postgres backend, S3 artifacts), S3 storage, Postgres records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from mlcore.config import get_settings
from mlcore.errors import ManifestError, StorageError
from mlcore.model_version import ModelCard
from mlcore.storage import Storage, fetch_version, list_versions, open_storage, verify_version
from tests.fixtures.s3 import S3Bucket
from training_job import checkpoints
from training_job.cli import main
from training_job.publishing import publish_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL_NAME = "imdb-tiny"


@pytest.fixture
def job_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, postgres_url: str, s3_bucket: S3Bucket, mlflow_server: str
) -> dict[str, Any]:
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.chdir(tmp_path)  # models/final lands here
    get_settings.cache_clear()
    yield {"db": postgres_url, "tracking": mlflow_server, "bucket": s3_bucket, "cwd": tmp_path}
    get_settings.cache_clear()


def run_job(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    # Not a terminal: no carriage-return progress bars, only log lines; the job's summary is printed last.
    assert "\r" not in captured.out + captured.err
    return dict(json.loads(captured.out[captured.out.rindex('{\n  "run_id"') :]))


def tiny_args(dataset: Path, model: Path, bucket: S3Bucket, *extra: str) -> list[str]:
    return [
        "--dataset",
        str(dataset),
        "--model",
        str(model),
        "--output",
        bucket.uri(),
        "--model-name",
        MODEL_NAME,
        "--max-train-samples",
        "64",
        "--max-validation-samples",
        "32",
        "--max-test-samples",
        "48",
        "--reference-rows",
        "40",
        "--max-length",
        "32",
        "--batch-size",
        "16",
        "--epochs",
        "1",
        *extra,
    ]


def test_train_publish_register_and_record(
    job_env: dict[str, Any], small_imdb_csv: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket: S3Bucket = job_env["bucket"]
    first = run_job(tiny_args(small_imdb_csv, tiny_base_model, bucket, "--chunks-per-review", "1"), capsys)

    # --- storage: version 1, manifest last and checksums right, the contract's layout at the root ---
    storage = open_storage(bucket.uri())
    prefix = f"models/{MODEL_NAME}/1"
    assert first["model_version"] == "1"
    assert first["storage_uri"] == f"{bucket.uri()}/{prefix}"
    manifest = verify_version(storage, prefix)
    listed = {entry.path for entry in manifest.files}
    assert {"config.json", "model.safetensors", "tokenizer.json", "model_card.json", "reference.parquet"} <= listed
    fetched = job_env["cwd"] / "fetched"
    fetch_version(storage, prefix, fetched)  # sha256 of every file checked
    config = json.loads((fetched / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    card = json.loads((fetched / "model_card.json").read_text())
    assert card["version"] == "1" and card["name"] == MODEL_NAME
    assert set(card["metrics"]) == {"accuracy", "f1", "precision", "recall", "roc_auc"}
    assert card["max_length"] == 32 and card["labels"] == ["negative", "positive"]
    assert len(card["dataset"]["hash"]) == 64 and card["libraries"]["transformers"]
    assert card["evaluation"]["rows"] == 48
    # --- ONNX exports: in the manifest, checked against torch, accuracy of each runtime on the test split ---
    assert {"model.onnx", "model_int8.onnx"} <= listed
    runtimes = card["runtimes"]
    assert set(runtimes) == {"torch", "onnx", "onnx-int8"}
    assert runtimes["torch"]["accuracy"] == card["metrics"]["accuracy"]
    assert runtimes["onnx"]["max_abs_diff_vs_torch"] < 1e-3 and runtimes["onnx"]["check_rows"] == 48
    assert {entry["rows"] for entry in runtimes.values()} == {48}  # every runtime on the same rows
    assert all(0.0 <= runtimes[name]["accuracy"] <= 1.0 for name in runtimes)
    slices = card["evaluation"]["slices"]
    assert {"reviews", "short_snippets", "handwritten"} <= set(slices)
    assert slices["reviews"]["rows"] == 48 and slices["reviews"]["accuracy"] == card["metrics"]["accuracy"]
    assert slices["handwritten"]["rows"] >= 100 and 0 <= slices["short_snippets"]["accuracy"] <= 1

    # --- the reference sample: held-out rows with this model's predictions ---
    reference = pd.read_parquet(fetched / "reference.parquet")
    assert list(reference.columns) == ["text", "label", "predicted_label", "confidence"]
    assert len(reference) == 40
    assert set(reference["label"]) <= {"negative", "positive"}
    assert set(reference["predicted_label"]) <= {"negative", "positive"}
    assert reference["confidence"].between(0.5, 1.0).all()
    assert not reference["text"].str.contains("<br", regex=False).any()

    # --- local copy ---
    final = job_env["cwd"] / "models" / "final"
    assert json.loads((final / "model_card.json").read_text())["version"] == "1"
    from mlcore.storage import verify_local_directory

    verify_local_directory(final)

    # --- MLflow: registered version 1 with alias challenger and (first model) champion ---
    client = MlflowClient(job_env["tracking"])
    challenger = client.get_model_version_by_alias(MODEL_NAME, "challenger")
    assert challenger.version == first["registry_version"] == "1"
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == "1"
    assert challenger.tags["storage_uri"] == first["storage_uri"]
    run = client.get_run(first["run_id"])
    assert run.data.tags["champion_decision"] == "no champion yet"
    assert "test_accuracy" in run.data.metrics and "data.train.rows" in run.data.metrics
    assert "loss" in run.data.metrics  # per-step training logs reached MLflow
    assert run.data.metrics["slice.handwritten.accuracy"] == slices["handwritten"]["accuracy"]
    assert "slice.short_snippets.roc_auc" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(first["run_id"])}
    assert {"model", "evaluation", "champion_decision.json", "dataset.json"} <= artifacts
    evaluation = {a.path for a in client.list_artifacts(first["run_id"], "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/slices.json"} <= evaluation
    # The artifacts went through the server into the bucket.
    assert any(key.startswith("mlflow/") for key in storage.list("mlflow"))

    # --- database records ---
    engine = sa.create_engine(job_env["db"])
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT status, model_version, storage_uri, metrics, is_champion FROM experiment_runs "
                    "WHERE run_id = :r"
                ),
                {"r": first["run_id"]},
            ).one()
            stats = conn.execute(
                sa.text(
                    "SELECT split, metric_name, value, model_version FROM dataset_metrics "
                    "WHERE run_id = :r AND source = 'training'"
                ),
                {"r": first["run_id"]},
            ).all()
    finally:
        engine.dispose()
    assert row.status == "FINISHED" and row.model_version == "1" and row.is_champion
    assert row.storage_uri == first["storage_uri"] and row.metrics["accuracy"] == pytest.approx(
        first["metrics"]["accuracy"]
    )
    by_key = {(s.split, s.metric_name): s.value for s in stats}
    assert by_key[("train", "rows")] == 64 and by_key[("validation", "rows")] == 32 and by_key[("test", "rows")] == 48
    assert ("all", "duplicates_dropped") in by_key and ("train", "positive_fraction") in by_key
    assert by_key[("train_chunks", "rows")] > 0  # sentence runs of the training reviews were mixed in
    assert {s.model_version for s in stats} == {"1"}

    # --- a second model on the same test split: challenger moves, the decision uses the recorded figures ---
    second = run_job(tiny_args(small_imdb_csv, tiny_base_model, bucket, "--seed", "7"), capsys)
    assert second["model_version"] == "2" and second["registry_version"] == "2"
    assert client.get_model_version_by_alias(MODEL_NAME, "challenger").version == "2"
    decision = client.get_model_version(MODEL_NAME, "2").tags["champion_decision"]
    assert "recorded accuracy on the same test split" in decision
    champion = "2" if second["metrics"]["accuracy"] > first["metrics"]["accuracy"] else "1"
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == champion
    assert client.get_run(second["run_id"]).data.tags["champion_decision"] == decision

    # --- a third on another test subset: the champion is downloaded (through the server) and scored again ---
    third = run_job(
        tiny_args(small_imdb_csv, tiny_base_model, bucket, "--max-test-samples", "40", "--runtime-eval-rows", "24"),
        capsys,
    )
    decision = client.get_model_version(MODEL_NAME, "3").tags["champion_decision"]
    assert f"champion v{champion}" in decision and "re-scored on this test split" in decision
    assert client.get_model_version_by_alias(MODEL_NAME, "challenger").version == "3"
    assert list_versions(storage, f"models/{MODEL_NAME}") == ["1", "2", "3"]
    assert third["model_version"] == "3"
    third_card = json.loads((job_env["cwd"] / "models" / "final" / "model_card.json").read_text())
    assert {entry["rows"] for entry in third_card["runtimes"].values()} == {24}  # the first 24 of 40 test rows
    assert third_card["evaluation"]["rows"] == 40


class FailingStorage(Storage):
    """Delegates to a real storage, but the upload dies after `allowed` files."""

    def __init__(self, inner: Storage, allowed: int) -> None:
        self.inner = inner
        self.allowed = allowed
        self.root_uri = inner.root_uri

    def _count(self) -> None:
        if self.allowed <= 0:
            raise StorageError("simulated network failure during upload")
        self.allowed -= 1

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._count()
        self.inner.put_bytes(key, data, content_type)

    def put_file(self, key: str, path: Path) -> None:
        self._count()
        self.inner.put_file(key, path)

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(key)

    def get_file(self, key: str, destination: Path) -> None:
        self.inner.get_file(key, destination)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def list(self, prefix: str = "") -> list[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_failure_mid_upload_publishes_nothing_readable(
    s3_bucket: S3Bucket, tmp_path: Path, tiny_base_model: Path
) -> None:
    get_settings.cache_clear()
    storage = open_storage(s3_bucket.uri())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for item in tiny_base_model.iterdir():
        (model_dir / item.name).write_bytes(item.read_bytes())
    (model_dir / "model_card.json").write_text("{}")
    with pytest.raises(StorageError, match="simulated"):
        publish_model(FailingStorage(storage, allowed=2), MODEL_NAME, model_dir, ModelCard(name=MODEL_NAME))
    prefix = f"models/{MODEL_NAME}/1"
    assert storage.list(prefix), "some files were uploaded before the failure"
    with pytest.raises(ManifestError, match="not a published version"):
        verify_version(storage, prefix)
    assert list_versions(storage, f"models/{MODEL_NAME}") == []
    # The next publish does not reuse the half-written number.
    version, _ = publish_model(storage, MODEL_NAME, model_dir, ModelCard(name=MODEL_NAME))
    assert version == "2"
    verify_version(storage, f"models/{MODEL_NAME}/2")


class SimulatedKillError(Exception):
    """Stands in for a pod killed right after a checkpoint reached storage."""


def test_rerun_resumes_from_the_checkpoint_in_storage(
    job_env: dict[str, Any],
    small_imdb_csv: Path,
    tiny_base_model: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket: S3Bucket = job_env["bucket"]
    original = checkpoints.CheckpointSyncCallback.on_save

    def save_then_die(self: checkpoints.CheckpointSyncCallback, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        raise SimulatedKillError

    monkeypatch.setattr(checkpoints.CheckpointSyncCallback, "on_save", save_then_die)
    args = tiny_args(small_imdb_csv, tiny_base_model, bucket, "--epochs", "2", "--run-key", "job-1", "--no-register")
    with pytest.raises(SimulatedKillError):
        main(args)
    storage = open_storage(bucket.uri())
    saved = checkpoints.CheckpointStore(storage, f"checkpoints/{MODEL_NAME}/job-1").published()
    assert saved == ["checkpoint-4"]  # 64 rows / batch 16, one epoch
    assert list_versions(storage, f"models/{MODEL_NAME}") == []

    monkeypatch.setattr(checkpoints.CheckpointSyncCallback, "on_save", original)
    # A fresh pod: no local state, only what is in storage.
    monkeypatch.setenv("MLP_HOME", str(job_env["cwd"] / "other-home"))
    get_settings.cache_clear()
    result = run_job(args, capsys)
    assert result["resumed_from"].endswith("checkpoint-4")
    assert result["model_version"] == "1" and result["registry_version"] is None
    assert checkpoints.CheckpointStore(storage, f"checkpoints/{MODEL_NAME}/job-1").published() == []


def test_optuna_search_logs_nested_runs_and_resumes_its_study(
    job_env: dict[str, Any], small_imdb_csv: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    from training_job import search

    bucket: S3Bucket = job_env["bucket"]
    base = tiny_args(small_imdb_csv, tiny_base_model, bucket, "--optimize", "--run-key", "search-1", "--no-register")
    first = run_job([*base, "--n-trials", "2"], capsys)

    client = MlflowClient(job_env["tracking"])
    experiment = client.get_experiment_by_name(get_settings().mlflow_experiment)
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first['run_id']}'"
    )
    assert len(children) == 2
    assert all("learning_rate" in child.data.params and "optuna_trial" in child.data.params for child in children)
    assert all(
        child.data.tags.get("pruned") == "True" or "best_eval_accuracy" in child.data.metrics for child in children
    )
    parent = client.get_run(first["run_id"])
    assert "best_learning_rate" in parent.data.params and "final_learning_rate" in parent.data.params

    # The study lives in Postgres, in its own schema (Optuna's alembic_version must not meet the core's).
    storage_url = search.storage_url(get_settings())
    assert "search_path" in storage_url and storage_url.startswith("postgresql")
    study = optuna.load_study(study_name=f"{MODEL_NAME}-search-1", storage=storage_url)
    assert len(study.trials) == 2
    engine = sa.create_engine(job_env["db"])
    try:
        with engine.connect() as conn:
            trial_rows = conn.execute(
                sa.text("SELECT status FROM experiment_runs WHERE parent_run_id = :r"), {"r": first["run_id"]}
            ).all()
            core_tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert sorted(r.status for r in trial_rows) in (["FINISHED", "FINISHED"], ["FINISHED", "PRUNED"])
    assert "trials" not in core_tables and "experiment_runs" in core_tables

    # Asked for 3 trials now: the study already holds 2, so only one more runs.
    second = run_job([*base, "--n-trials", "3"], capsys)
    assert len(optuna.load_study(study_name=f"{MODEL_NAME}-search-1", storage=storage_url).trials) == 3
    more = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{second['run_id']}'"
    )
    assert len(more) == 1
